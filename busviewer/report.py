"""Patient report as PDF (headless: matplotlib's PDF backend, no Qt).

A summary (patient, the reader's label with BI-RADS and the biopsy flag, the models with
name, version and weights sha256, the operating point and indeterminate band in force,
per-model verdicts with the tie note, the disagreement flag, images outside the models'
training data, a line per image), then one page per image: the image with its ROIs and
an optional Grad-CAM overlay, the per-model (calibrated) results, and each ROI's crop
with its stored classification. Images are numbered as in the app (#1, #2... in the
store's order, :func:`busviewer.ai.results.image_numbers`). Every text line is wrapped
to the page width (a test renders the pages and checks every character box lies on the
page), and the research-use notice is printed on every page.
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from busviewer.ai.results import image_numbers
from busviewer.core.imageio import ImageReadError, read_image
from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.numbering import image_list
from busviewer.core.operating import TITLES as POINT_TITLES
from busviewer.core.operating import describe, describe_band
from busviewer.core.store import Store

TITLES = {"ensemble": "Ensemble (AlexNet + ResNet-18)", "vgg16": "VGG-16"}
ARCHS = ("ensemble", "vgg16")
PAGE = (8.27, 11.69)  # A4, inches
LEFT, RIGHT = 0.07, 0.95  # figure fractions
_CHAR_EM = 0.60  # widest average glyph advance of DejaVu Sans in ems (digits, capitals): wrap on it


class _Flow:
    """Text flowing down the pages: wraps to the width, starts a new page when full."""

    def __init__(self, pdf: Any, title: str) -> None:
        self.pdf, self.title, self.fig, self.y = pdf, title, None, 0.0
        self.new_page()

    def new_page(self) -> None:
        from matplotlib.figure import Figure

        if self.fig is not None:
            self.pdf.savefig(self.fig)
        self.fig = Figure(figsize=PAGE)
        _footer(self.fig, self.title)
        self.y = 0.95

    def text(self, s: str, size: float = 10, indent: float = 0.0, gap: float = 0.4, **kw: Any) -> None:
        width_in = (RIGHT - LEFT - indent) * PAGE[0]
        chars = max(20, int(width_in * 72 / (size * _CHAR_EM)))
        line_h = size * 1.35 / 72 / PAGE[1]
        for para in str(s).split("\n"):
            for line in textwrap.wrap(para, chars, break_long_words=True, break_on_hyphens=False) or [""]:
                if self.y - line_h < 0.06:
                    self.new_page()
                self.fig.text(LEFT + indent, self.y, line, fontsize=size, va="top", **kw)
                self.y -= line_h
        self.y -= gap * line_h

    def finish(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.fig = None


def export_patient_report(
    store: Store,
    patient_key: str,
    out_path: str | Path,
    analysis: object | None = None,
    cams: dict[tuple[int, str], np.ndarray] | None = None,
) -> Path:
    """Write the report of ``patient_key`` to ``out_path`` (atomically) and return the path.

    ``analysis`` is a :class:`busviewer.ai.results.PatientAnalysis` (None: the stored
    results, summarised at the default operating point with the input guard's findings);
    ``cams`` maps (image_id, architecture) to a Grad-CAM map.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_pdf import PdfPages

    out_path = Path(out_path)
    summary = store.patient(patient_key)
    images = store.images(patient_key)
    if analysis is None:
        from busviewer.ai.results import stored_analysis

        analysis = stored_analysis(store, patient_key)
    numbers = image_numbers(images)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".pdf", dir=out_path.parent)
    os.close(fd)
    try:
        with PdfPages(tmp) as pdf:
            info = pdf.infodict()
            info["Title"] = f"busviewer report {patient_key}"
            info["Subject"] = RESEARCH_NOTICE
            flow = _Flow(pdf, f"Patient {patient_key}")
            _summary(flow, store, summary, images, numbers, analysis)
            flow.finish()
            for rec in images:
                _image_page(pdf, store, rec, numbers[rec.id], analysis, cams or {}, patient_key)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


def _label_text(label: Any) -> str:
    if label is None:
        return "not labelled"
    parts = [f"{label.label} ({label.source}{', ' + label.user if label.source == 'reader' else ''})"]
    parts.append(f"BI-RADS {label.birads}" if label.birads else "BI-RADS not given")
    parts.append("biopsy confirmed" if label.biopsy_confirmed else "not biopsy confirmed")
    return "; ".join(parts)


def _call(analysis: Any, image_id: int, arch: str, p: Any) -> str:
    if image_id in (getattr(analysis, "outside", {}) or {}):
        return "outside the training data"
    check = getattr(analysis, "is_indeterminate", None)
    if check is not None and check(image_id, arch):
        return f"indeterminate (leans {p.label})"
    return str(p.label)


def _summary(flow: _Flow, store: Store, summary: Any, images: list, numbers: dict[int, int], analysis: Any) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    flow.text(f"Patient {summary.patient_key}", size=18, weight="bold", gap=0.2)
    flow.text(f"{summary.name + '; ' if summary.name else ''}report generated {stamp}", size=9)
    flow.text(RESEARCH_NOTICE, size=10, color="#a00000", weight="bold")
    labels = store.patient_label(summary.patient_key)
    plabel = next((labels[s] for s in ("biopsy", "reader", "import") if s in labels), None)
    flow.text(
        f"Images: {summary.image_count}. Reviewed: {'yes' if summary.reviewed else 'no'}. "
        f"Patient label: {_label_text(plabel)}.",
        size=10,
    )
    predictions = dict(getattr(analysis, "predictions", {}) or {})
    verdicts = dict(getattr(analysis, "verdicts", {}) or {})
    flow.text("Models", size=12, weight="bold", gap=0.2)
    models = {}
    for (_iid, arch), p in predictions.items():
        models.setdefault(arch, set()).add((p.model_name, p.model_version, p.model_sha256))
    if not models:
        flow.text("No model results.", indent=0.02)
    for arch in sorted(models, key=lambda a: (a not in ARCHS, a)):
        for name, version, sha in sorted(models[arch]):
            flow.text(f"{TITLES.get(arch, arch)}: {name} v{version}", indent=0.02, gap=0.0)
            flow.text(f"weights sha256 {sha}", size=8, indent=0.04, family="monospace")
    point = getattr(analysis, "operating_point", None)
    if verdicts and point:
        flow.text(
            f"Operating point: {POINT_TITLES.get(point, point)}. An image is called malignant when its "
            "calibrated probability reaches the threshold; a probability inside the indeterminate band is "
            "not a call and does not vote.",
            size=9,
            indent=0.02,
        )
    flow.text(
        "Patient verdict (majority vote of the determinate images; a tie counts as malignant)",
        size=12,
        weight="bold",
        gap=0.2,
    )
    for arch, v in verdicts.items():
        unsure = tuple(v.indeterminate_images)
        more = f", {len(unsure)} indeterminate (not counted)" if unsure else ""
        tie = " Tie: counted as malignant." if v.tie_decided else ""
        band = f"; {describe_band(v.band)}" if v.band else ""
        flow.text(
            f"{TITLES.get(arch, arch)}: {v.label.upper()} ({v.malignant_votes} malignant / {v.benign_votes} "
            f"benign image(s){more}; mean malignant probability {_fmt(v.mean_malignant_probability)}). "
            f"{describe(v.operating_point, v.threshold)}{band}.{tie}",
            indent=0.02,
        )
    if not verdicts:
        flow.text("No model results.", indent=0.02)
    split = len({v.label for v in verdicts.values()}) > 1
    dis = tuple(getattr(analysis, "disagreements", ()) or ())
    if split or dis:
        flow.text(
            ("The models disagree on the patient verdict. " if split else "")
            + (f"The models disagree on image(s) {image_list(dis, numbers)}." if dis else ""),
            color="#a05000",
            indent=0.02,
        )
    for iid, reason in sorted((getattr(analysis, "outside", {}) or {}).items(), key=lambda kv: numbers.get(kv[0], 0)):
        flow.text(f"Image #{numbers.get(iid, iid)}: {reason}; not classified.", color="#a05000", indent=0.02)
    for iid, who in sorted((getattr(analysis, "overridden", {}) or {}).items()):
        flow.text(
            f"Image #{numbers.get(iid, iid)} was flagged as outside the training data and classified on "
            f"{who}'s override.",
            color="#a05000",
            indent=0.02,
        )
    flow.text("Images", size=12, weight="bold", gap=0.2)
    for rec in images:
        results = "; ".join(
            f"{TITLES.get(a, a).split(' ')[0]} {_call(analysis, rec.id, a, p)} {p.malignant_probability:.2f}"
            for a in ARCHS
            if (p := predictions.get((rec.id, a))) is not None
            and rec.id not in (getattr(analysis, "outside", {}) or {})
        )
        flow.text(
            f"#{numbers[rec.id]} {rec.name}: {results or 'no result'}. Label: {_label_text(rec.label)}.",
            size=9,
            indent=0.02,
            gap=0.2,
        )


def _image_page(pdf: Any, store: Store, rec: Any, number: int, analysis: Any, cams: dict, patient_key: str) -> None:
    from matplotlib.patches import Rectangle

    flow = _Flow(pdf, f"Patient {patient_key}")
    fig = flow.fig
    flow.text(f"Image #{number}: {rec.name}", size=12, weight="bold", gap=0.2)
    flow.text(f"{rec.columns}x{rec.rows}, {rec.frame_count} frame(s). Label: {_label_text(rec.label)}.", size=9)
    rois = store.rois(rec.id)
    top = flow.y - 0.01
    ax = fig.add_axes((LEFT, top - 0.44, RIGHT - LEFT, 0.44))
    ax.set_axis_off()
    pixels = None
    try:
        pixels = read_image(rec.source_path).frame(0)
        ax.imshow(pixels)
        cam_arch = next((a for (iid, a) in cams if iid == rec.id), None)
        if cam_arch is not None:
            ax.imshow(
                cams[(rec.id, cam_arch)],
                cmap="jet",
                alpha=0.4,
                vmin=0,
                vmax=1,
                extent=(-0.5, pixels.shape[1] - 0.5, pixels.shape[0] - 0.5, -0.5),
            )
            ax.set_title(f"Grad-CAM: {TITLES.get(cam_arch, cam_arch)}", fontsize=9)
        for k, roi in enumerate(rois, start=1):
            ax.add_patch(
                Rectangle(
                    (roi.x0, roi.y0), roi.x1 - roi.x0, roi.y1 - roi.y0, fill=False, edgecolor="yellow", linewidth=1.5
                )
            )
            ax.text(roi.x0, roi.y0, f"R{k}", color="yellow", fontsize=8, va="bottom", clip_on=True)
    except ImageReadError as exc:
        ax.text(0.5, 0.5, "image unavailable", ha="center", va="center", fontsize=9)
        flow.y = top - 0.45
        flow.text(f"Image unavailable: {exc.reason}", size=9)
    flow.y = min(flow.y, top - 0.45)
    predictions = dict(getattr(analysis, "predictions", {}) or {})
    reason = (getattr(analysis, "outside", {}) or {}).get(rec.id)
    if reason:
        flow.text(f"Not classified: {reason}.", color="#a05000")
    for arch in () if reason else ARCHS:
        p = predictions.get((rec.id, arch))
        if p is not None:
            probs = ", ".join(f"{k} {v:.2f}" for k, v in p.probabilities.items())
            flow.text(
                f"{TITLES.get(arch, arch)} ({p.model_name} v{p.model_version}): "
                f"{_call(analysis, rec.id, arch, p)} ({probs})",
                gap=0.1,
            )
    if rois:
        _roi_crops(flow, store, rec, rois, pixels)
    flow.finish()


def _roi_crops(flow: _Flow, store: Store, rec: Any, rois: list, pixels: np.ndarray | None) -> None:
    flow.y -= 0.01
    flow.text("Regions of interest (crops and their classifications)", size=11, weight="bold", gap=0.2)
    flow.y -= 0.015  # room for the crops' titles
    per_row, size = 4, 0.13
    for start in range(0, len(rois), per_row):
        if flow.y - size * PAGE[0] / PAGE[1] < 0.12:
            flow.new_page()
        h = size * PAGE[0] / PAGE[1]
        for j, roi in enumerate(rois[start : start + per_row]):
            ax = flow.fig.add_axes((LEFT + j * (RIGHT - LEFT) / per_row, flow.y - h, size, h))
            ax.set_axis_off()
            if pixels is not None:
                ax.imshow(pixels[roi.y0 : roi.y1, roi.x0 : roi.x1])
            ax.set_title(f"R{start + j + 1}", fontsize=8)
        flow.y -= h + 0.01
        for k, roi in enumerate(rois[start : start + per_row], start=start + 1):
            preds = store.latest_predictions([rec.id], roi_id=roi.id)
            res = "; ".join(
                f"{TITLES.get(a, a).split(' ')[0]} {p.label} {p.malignant_probability:.2f} "
                f"({p.model_name} v{p.model_version})"
                for (_i, a), p in sorted(preds.items())
            )
            flow.text(
                f"R{k} ({roi.x1 - roi.x0}x{roi.y1 - roi.y0} px at {roi.x0},{roi.y0}): {res or 'not classified'}",
                size=9,
                gap=0.1,
            )


def _fmt(p: float | None) -> str:
    return "-" if p is None else f"{p:.2f}"


def _footer(fig: Any, title: str) -> None:
    for i, line in enumerate(textwrap.wrap(f"{title}. {RESEARCH_NOTICE}", 130)):
        fig.text(0.5, 0.03 - i * 0.011, line, ha="center", fontsize=7, color="#a00000")
