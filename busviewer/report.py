"""Patient report as PDF (headless: matplotlib's PDF backend, no Qt).

One summary page (patient, labels, per-model verdicts at the operating point in force,
the research-use notice) and one page per image with the image, its saved ROIs, an
optional Grad-CAM overlay and the per-model (calibrated) probabilities. The notice is
printed on every page.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from busviewer.core.imageio import ImageReadError, read_image
from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.store import Store

TITLES = {"ensemble": "Ensemble (AlexNet + ResNet-18)", "vgg16": "VGG-16"}


def export_patient_report(
    store: Store,
    patient_key: str,
    out_path: str | Path,
    analysis: object | None = None,
    cams: dict[tuple[int, str], np.ndarray] | None = None,
) -> Path:
    """Write the report of ``patient_key`` to ``out_path`` (atomically) and return the path.

    ``analysis`` is a :class:`busviewer.ai.analysis.PatientAnalysis` (or None for the
    stored predictions only); ``cams`` maps (image_id, architecture) to a Grad-CAM map.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    out_path = Path(out_path)
    summary = store.patient(patient_key)
    images = store.images(patient_key)
    predictions = getattr(analysis, "predictions", None)
    if predictions is None:
        latest = store.latest_predictions([i.id for i in images])
        predictions = {k: v for k, v in latest.items()}
    verdicts = getattr(analysis, "verdicts", {}) or {}
    cams = cams or {}

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".pdf", dir=out_path.parent)
    os.close(fd)
    try:
        with PdfPages(tmp) as pdf:
            info = pdf.infodict()
            info["Title"] = f"busviewer report {patient_key}"
            info["Subject"] = RESEARCH_NOTICE

            fig = Figure(figsize=(8.27, 11.69))
            _footer(fig)
            y = 0.95
            fig.text(0.07, y, f"Patient {patient_key}", fontsize=18, weight="bold")
            y -= 0.03
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            fig.text(0.07, y, f"{summary.name or ''}  report generated {stamp}".strip(), fontsize=9)
            y -= 0.04
            fig.text(0.07, y, RESEARCH_NOTICE, fontsize=10, color="#a00000", wrap=True, weight="bold")
            y -= 0.05
            fig.text(0.07, y, f"Images: {summary.image_count}    Label: {summary.label_text}    "
                     f"Reviewed: {'yes' if summary.reviewed else 'no'}", fontsize=10)
            y -= 0.05
            fig.text(0.07, y, "Patient verdict (majority vote; a tie counts as malignant)", fontsize=12, weight="bold")
            y -= 0.03
            point = getattr(analysis, "operating_point", None)
            if verdicts and point:
                from busviewer.core.operating import TITLES as POINT_TITLES

                fig.text(0.09, y, f"Operating point: {POINT_TITLES.get(point, point)} — an image is called "
                         "malignant when its calibrated probability reaches the threshold shown.", fontsize=9)
                y -= 0.025
            if not verdicts:
                fig.text(0.09, y, "No model results.", fontsize=10)
                y -= 0.03
            for arch, v in verdicts.items():
                tie = "  (tie: counted as malignant)" if v.tie_decided else ""
                thr = getattr(v, "threshold", None)
                at = f"; threshold {thr:.2f}" if isinstance(thr, float) else ""
                unsure = getattr(v, "indeterminate_images", ())
                more = f", {len(unsure)} indeterminate (not counted)" if unsure else ""
                fig.text(0.09, y, f"{TITLES.get(arch, arch)}: {v.label.upper()}  — {v.malignant_votes} malignant / "
                         f"{v.benign_votes} benign image(s){more}; mean malignant probability "
                         f"{v.mean_malignant_probability:.2f}{at}{tie}", fontsize=10)
                y -= 0.025
            disagreements = getattr(analysis, "disagreements", ())
            if disagreements:
                fig.text(0.09, y, f"The models disagree on image(s): {', '.join(map(str, disagreements))}",
                         fontsize=10, color="#a05000")
                y -= 0.025
            pdf.savefig(fig)

            for rec in images:
                fig = Figure(figsize=(8.27, 11.69))
                _footer(fig)
                label = rec.label
                fig.text(0.07, 0.95, f"Image {rec.id}: {rec.name}", fontsize=12, weight="bold")
                fig.text(0.07, 0.925, f"{rec.columns}x{rec.rows}, {rec.frame_count} frame(s); label: "
                         f"{label.label + ' (' + label.source + ')' if label else '-'}", fontsize=9)
                ax = fig.add_axes((0.07, 0.38, 0.86, 0.52))
                ax.set_axis_off()
                try:
                    pixels = read_image(rec.source_path).frame(0)
                    ax.imshow(pixels)
                    cam_arch = next((a for (iid, a) in cams if iid == rec.id), None)
                    if cam_arch is not None:
                        ax.imshow(cams[(rec.id, cam_arch)], cmap="jet", alpha=0.4, vmin=0, vmax=1,
                                  extent=(-0.5, pixels.shape[1] - 0.5, pixels.shape[0] - 0.5, -0.5))
                        ax.set_title(f"Grad-CAM: {TITLES.get(cam_arch, cam_arch)}", fontsize=9)
                    from matplotlib.patches import Rectangle

                    for roi in store.rois(rec.id):
                        ax.add_patch(Rectangle((roi.x0, roi.y0), roi.x1 - roi.x0, roi.y1 - roi.y0,
                                               fill=False, edgecolor="yellow", linewidth=1.5))
                except ImageReadError as exc:
                    ax.text(0.5, 0.5, f"image unavailable:\n{exc.reason}", ha="center", va="center", fontsize=9)
                y = 0.34
                reason = (getattr(analysis, "outside", {}) or {}).get(rec.id)
                if reason:
                    fig.text(0.07, y, f"Not classified: {reason}", fontsize=10, wrap=True)
                    y -= 0.025
                for arch in (() if reason else ("ensemble", "vgg16")):
                    p = predictions.get((rec.id, arch))
                    if p is None:
                        continue
                    probs = ", ".join(f"{k} {v:.2f}" for k, v in p.probabilities.items())
                    check = getattr(analysis, "is_indeterminate", None)
                    call = (f"indeterminate (leans {p.label})" if check is not None and check(rec.id, arch)
                            else p.label)
                    fig.text(0.07, y, f"{TITLES.get(arch, arch)}: {call}  ({probs})", fontsize=10)
                    y -= 0.025
                pdf.savefig(fig)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


def _footer(fig: object) -> None:
    fig.text(0.5, 0.02, RESEARCH_NOTICE, ha="center", fontsize=7, color="#a00000")  # type: ignore[attr-defined]
