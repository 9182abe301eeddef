"""Results back to the PACS: the analysis as a DICOM Comprehensive SR
(:mod:`busviewer.services.results_sr`) and each Grad-CAM overlay as a Secondary Capture
image in a new series of the source image's study; written to a folder, then sent by
C-STORE or STOW-RS (:func:`busviewer.services.pacs.send_files`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DA, TM

from busviewer.core import paths
from busviewer.core.imageio import ImageReadError, read_image
from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.store import Store
from busviewer.dicomnet.dimse import StoreReport
from busviewer.dicomnet.nodes import NetworkSettings
from busviewer.services.results_sr import build_sr

ARCH_TITLES = {"ensemble": "Ensemble (AlexNet + ResNet-18)", "vgg16": "VGG-16"}
SC_SERIES_NUMBER = 9902


class ResultsError(ValueError):
    """The results of a patient cannot be exported; the message says why."""


@dataclass
class ResultsBundle:
    """The DICOM objects written for one patient."""

    patient_key: str
    folder: Path
    sr_path: Path | None = None
    sc_paths: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return ([self.sr_path] if self.sr_path else []) + list(self.sc_paths)


def outbox_dir() -> Path:
    """Where results are written before they are sent (kept as a record)."""
    p = paths.data_dir() / "outbox"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _headers(store: Store, patient_key: str, bundle: ResultsBundle) -> tuple[dict[int, Dataset], list[Any]]:
    records = store.images(patient_key)
    headers: dict[int, Dataset] = {}
    for rec in records:
        if rec.sop_uid is None:
            bundle.skipped.append(f"image {rec.id} ({rec.name}): not a DICOM image, cannot be referenced")
            continue
        try:
            headers[rec.id] = dcmread(rec.source_path, stop_before_pixels=True)
        except (OSError, ValueError) as exc:
            bundle.skipped.append(f"image {rec.id} ({rec.source_path}): header unreadable ({exc})")
    return headers, records


def jet(x: np.ndarray) -> np.ndarray:
    """``(H, W)`` values in [0, 1] -> ``(H, W, 3)`` uint8 jet colours."""
    x = np.clip(x.astype(np.float32), 0, 1)[..., None]
    k = np.array([3.0, 2.0, 1.0], np.float32)
    return (np.clip(1.5 - np.abs(4 * x - k), 0, 1) * 255).astype(np.uint8)


def overlay(frame: np.ndarray, cam: np.ndarray, alpha: float = 0.4, caption: str = "") -> np.ndarray:
    """The RGB frame with the heatmap blended in and ``caption`` burned into a top band."""
    from PIL import Image, ImageDraw

    h, w = frame.shape[:2]
    heat = np.asarray(Image.fromarray(np.asarray(cam, np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR))
    out = (frame.astype(np.float32) * (1 - alpha) + jet(heat).astype(np.float32) * alpha).round().astype(np.uint8)
    if caption:
        img = Image.fromarray(out)
        draw = ImageDraw.Draw(img)
        draw.rectangle((0, 0, w, 14), fill=(0, 0, 0))
        draw.text((3, 2), caption, fill=(255, 255, 0))
        out = np.asarray(img)
    return np.ascontiguousarray(out)


def build_sc(
    ref: Dataset, frame: np.ndarray, cam: np.ndarray, model_text: str, series_uid: str, number: int
) -> Dataset:
    """One Secondary Capture image of the overlay, derived from ``ref`` (same patient, study)."""
    import highdicom as hd

    pixels = overlay(frame, cam, caption=f"Grad-CAM {model_text} - research use only, not a diagnosis")
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=series_uid,
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=number,
        manufacturer="busviewer",
        patient_orientation=("A", "F"),
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    # highdicom wants an orientation; an ultrasound frame has none that is known: Type 2, empty
    orientation = ref.get("PatientOrientation")
    if isinstance(orientation, MultiValue):
        sc.PatientOrientation = list(orientation)
    else:
        sc.PatientOrientation = [orientation] if orientation else []
    sc.Laterality = ref.get("Laterality", "") or ""  # breasts are paired: Type 2C, empty when unknown
    sc.SeriesDescription = "busviewer Grad-CAM overlays (research use only)"
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = "YES"  # the caption, and whatever the source image carries
    sc.DerivationDescription = f"Grad-CAM heatmap of {model_text} blended over the source image"[:1024]
    sc.ImageComments = RESEARCH_NOTICE
    src = Dataset()
    src.ReferencedSOPClassUID = ref.SOPClassUID
    src.ReferencedSOPInstanceUID = ref.SOPInstanceUID
    sc.SourceImageSequence = [src]
    now = datetime.now()
    sc.ContentDate, sc.ContentTime = DA(now.strftime("%Y%m%d")), TM(now.strftime("%H%M%S"))
    return sc


def export_results(
    store: Store,
    patient_key: str,
    out_dir: Path | None = None,
    analysis: Any = None,
    cams: Mapping[tuple[int, str], np.ndarray] | None = None,
    operating_point: str = "balanced",
) -> ResultsBundle:
    """Write the SR (and one SC per Grad-CAM map in ``cams``, keyed (image id, architecture))
    of ``patient_key`` into ``out_dir`` (default: a new folder in the outbox).

    ``analysis``: a PatientAnalysis; default: the stored predictions at ``operating_point``."""
    if analysis is None:
        from busviewer.ai.results import stored_analysis

        analysis = stored_analysis(store, patient_key, operating_point)
    if analysis is None or not analysis.predictions:
        raise ResultsError(f"patient {patient_key}: no model results stored; analyse the patient first")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = Path(out_dir) if out_dir else outbox_dir() / f"{patient_key}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    bundle = ResultsBundle(patient_key, folder)
    headers, records = _headers(store, patient_key, bundle)
    if not headers:
        raise ResultsError(
            f"patient {patient_key}: no DICOM source images; results go back to a PACS only "
            "for studies that came as DICOM"
        )
    image_labels = {r.id: [lab for src, lab in r.labels.items() if src in ("reader", "biopsy")] for r in records}
    patient_labels = [lab for src, lab in store.patient_label(patient_key).items() if src in ("reader", "biopsy")]
    sr = build_sr(analysis, headers, {k: v for k, v in image_labels.items() if v}, patient_labels)
    bundle.sr_path = folder / f"SR_{sr.SOPInstanceUID}.dcm"
    sr.save_as(bundle.sr_path, enforce_file_format=True)

    series: dict[str, str] = {}  # study UID -> the new SC series
    by_id = {r.id: r for r in records}
    for n, ((iid, arch), cam) in enumerate(sorted((cams or {}).items(), key=lambda kv: kv[0]), start=1):
        if iid not in headers:
            continue
        ref = headers[iid]
        pred = analysis.predictions.get((iid, arch))
        model_text = f"{pred.model_name} v{pred.model_version}" if pred is not None else ARCH_TITLES.get(arch, arch)
        try:
            frame = read_image(by_id[iid].source_path).frame(0)
        except ImageReadError as exc:
            bundle.skipped.append(f"Grad-CAM of image {iid}: {exc}")
            continue
        uid = series.setdefault(str(ref.StudyInstanceUID), generate_uid())
        sc = build_sc(ref, frame, cam, model_text, uid, n)
        path = folder / f"SC_{sc.SOPInstanceUID}.dcm"
        sc.save_as(path, enforce_file_format=True)
        bundle.sc_paths.append(path)
    return bundle


def compute_cams(
    analyzer: Any, store: Store, patient_key: str, cancel: threading.Event | None = None
) -> dict[tuple[int, str], np.ndarray]:
    """Grad-CAM of every loaded model on every DICOM image of the patient (torch)."""
    out: dict[tuple[int, str], np.ndarray] = {}
    analyzer.load_models()
    for rec in store.images(patient_key):
        if rec.sop_uid is None:
            continue
        for arch in analyzer.cards:
            if cancel is not None and cancel.is_set():
                return out
            out[(rec.id, arch)] = np.asarray(analyzer.gradcam(rec.id, arch))
    return out


def send_results(
    store: Store,
    settings: NetworkSettings,
    node_name: str,
    patient_key: str,
    analysis: Any = None,
    cams: Mapping[tuple[int, str], np.ndarray] | None = None,
    operating_point: str = "balanced",
    progress: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[ResultsBundle, StoreReport]:
    """Export the results (outbox) and send them to ``node_name``."""
    from busviewer.services.pacs import send_files

    settings.node(node_name)  # an unknown node fails before anything is written
    bundle = export_results(store, patient_key, None, analysis, cams, operating_point)
    return bundle, send_files(settings, node_name, bundle.files, progress, cancel)
