"""Labelled samples from a manifest CSV or the store, an in-memory image cache, datasets.

A :class:`Sample` is one training image (or one ROI crop of a frame) with its binary
label (0 benign, 1 malignant), its patient and where the label came from. Images are
decoded once (``busviewer.core.imageio.read_image``) and kept in memory as
``(H, W, 3) uint8`` arrays: BUSI is about 120 MB decoded.
"""

from __future__ import annotations

import csv
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CLASSES: tuple[str, str] = ("benign", "malignant")
LABEL_SOURCES: tuple[str, ...] = ("import", "reader", "biopsy")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # index into CLASSES
    patient: str
    frame: int = 0
    roi: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) in pixels
    label_source: str = "import"
    original_label: str = ""
    image_id: int | None = None
    content_hash: str | None = None

    @property
    def key(self) -> str:
        """Stable identifier for reports: path, frame and ROI."""
        k = str(self.path)
        if self.frame:
            k += f"#frame={self.frame}"
        if self.roi is not None:
            k += "#roi=" + ",".join(str(v) for v in self.roi)
        return k


@dataclass
class SampleSet:
    """Samples plus what was left out while loading them."""

    samples: list[Sample]
    source: str
    dropped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return summarize(self.samples) | {"source": self.source, "dropped": dict(self.dropped)}


def map_label(label: str, normal: str = "drop") -> int | None:
    """Binary class index of a label; ``normal`` -> benign or ``None`` (dropped)."""
    lab = label.strip().lower()
    if lab in CLASSES:
        return CLASSES.index(lab)
    if lab == "normal":
        return 0 if normal == "benign" else None
    raise ValueError(f"unknown label {label!r}; expected benign, malignant or normal")


def samples_from_manifest(
    csv_path: str | Path,
    normal: str = "drop",
    label_sources: Iterable[str] | None = None,
) -> SampleSet:
    """Read a manifest with columns ``image,label,patient_id`` (optional ``frame``,
    ``label_source``). Relative image paths are resolved against the CSV's folder."""
    csv_path = Path(csv_path)
    base = csv_path.resolve().parent
    wanted = set(label_sources) if label_sources else None
    samples: list[Sample] = []
    dropped: Counter[str] = Counter()
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"image", "label", "patient_id"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {sorted(missing)}; need image,label,patient_id")
        for lineno, row in enumerate(reader, start=2):
            image = (row.get("image") or "").strip()
            patient = (row.get("patient_id") or "").strip()
            if not image or not patient:
                raise ValueError(f"{csv_path}:{lineno}: empty image or patient_id")
            source = (row.get("label_source") or "import").strip() or "import"
            if wanted is not None and source not in wanted:
                dropped[f"label_source:{source}"] += 1
                continue
            try:
                label = map_label(row.get("label") or "", normal)
            except ValueError as exc:
                raise ValueError(f"{csv_path}:{lineno}: {exc}") from None
            if label is None:
                dropped[(row.get("label") or "").strip().lower()] += 1
                continue
            p = Path(image)
            samples.append(
                Sample(
                    path=p if p.is_absolute() else base / p,
                    label=label,
                    patient=patient,
                    frame=int(row.get("frame") or 0),
                    label_source=source,
                    original_label=(row.get("label") or "").strip().lower(),
                )
            )
    return SampleSet(samples, source=str(csv_path), dropped=dict(dropped))


def samples_from_items(items: Iterable[Any], normal: str = "drop", use_rois: bool = False) -> SampleSet:
    """Samples from store ``TrainingItem`` records (image_id, path, frame, patient_key,
    label, label_source, roi, content_hash); ROIs are used only with ``use_rois``."""
    samples: list[Sample] = []
    dropped: Counter[str] = Counter()
    for it in items:
        label = map_label(it.label, normal)
        if label is None:
            dropped[it.label] += 1
            continue
        samples.append(
            Sample(
                path=Path(it.path),
                label=label,
                patient=str(it.patient_key),
                frame=int(it.frame or 0),
                roi=tuple(it.roi) if (use_rois and it.roi is not None) else None,
                label_source=it.label_source,
                original_label=it.label,
                image_id=it.image_id,
                content_hash=it.content_hash,
            )
        )
    return SampleSet(samples, source="store", dropped=dict(dropped))


def samples_from_store(
    store: Any = None,
    normal: str = "drop",
    label_sources: Iterable[str] | None = None,
    use_rois: bool = False,
) -> SampleSet:
    """Labelled images of the store (``Store()`` at the default location if ``None``)."""
    if store is None:
        from busviewer.core.store import Store

        store = Store()
    classes = ("benign", "malignant", "normal") if normal == "benign" else ("benign", "malignant")
    items = store.training_items(
        label_sources=list(label_sources) if label_sources else None, use_rois=use_rois, classes=classes
    )
    return samples_from_items(items, normal=normal, use_rois=use_rois)


def load_samples(
    data: str,
    normal: str = "drop",
    label_sources: Iterable[str] | None = None,
    use_rois: bool = False,
    store: Any = None,
) -> SampleSet:
    """``data`` is a manifest CSV path or ``"store"``."""
    if data == "store":
        return samples_from_store(store, normal=normal, label_sources=label_sources, use_rois=use_rois)
    if not data:
        raise ValueError("no training data given (a manifest CSV or 'store')")
    if use_rois:
        raise ValueError("ROI crops are only available for data from the store")
    return samples_from_manifest(data, normal=normal, label_sources=label_sources)


def summarize(samples: Sequence[Sample]) -> dict[str, Any]:
    """Counts per class (images and patients) and per label source."""
    per_class = Counter(CLASSES[s.label] for s in samples)
    patients: dict[str, set[int]] = {}
    for s in samples:
        patients.setdefault(s.patient, set()).add(s.label)
    pat_class = Counter(CLASSES[max(labels)] for labels in patients.values())
    return {
        "images": len(samples),
        "patients": len(patients),
        "images_per_class": {c: per_class.get(c, 0) for c in CLASSES},
        "patients_per_class": {c: pat_class.get(c, 0) for c in CLASSES},
        "patients_with_conflicting_labels": sum(1 for labels in patients.values() if len(labels) > 1),
        "label_sources": dict(sorted(Counter(s.label_source for s in samples).items())),
    }


def read_sample_pixels(sample: Sample) -> np.ndarray:
    """Decode one sample as ``(H, W, 3) uint8`` RGB, cropped to its ROI."""
    from busviewer.core.imageio import read_image

    img = read_image(sample.path).frame(sample.frame)
    if sample.roi is not None:
        x0, y0, x1, y1 = (int(v) for v in sample.roi)
        h, w = img.shape[:2]
        x0, x1 = sorted((max(0, min(w, x0)), max(0, min(w, x1))))
        y0, y1 = sorted((max(0, min(h, y0)), max(0, min(h, y1))))
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise ValueError(f"{sample.path}: ROI {sample.roi} is empty")
        img = img[y0:y1, x0:x1]
    return np.ascontiguousarray(img)


class ImageCache:
    """Thread-safe in-memory cache of decoded sample pixels (keyed by :attr:`Sample.key`)."""

    def __init__(self, enabled: bool = True, reader: Callable[[Sample], np.ndarray] = read_sample_pixels):
        self.enabled = enabled
        self.reader = reader
        self._data: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def get(self, sample: Sample) -> np.ndarray:
        if not self.enabled:
            return self.reader(sample)
        key = sample.key
        with self._lock:
            arr = self._data.get(key)
        if arr is None:
            arr = self.reader(sample)
            with self._lock:
                self._data[key] = arr
        return arr

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._data.values())


class ImageDataset:
    """``torch.utils.data.Dataset``: ``(image tensor, label, index)`` with a transform
    ``(H, W, 3) uint8 ndarray -> (C, S, S) float tensor``."""

    def __init__(self, samples: Sequence[Sample], transform: Callable[[np.ndarray], Any], cache: ImageCache):
        self.samples = list(samples)
        self.transform = transform
        self.cache = cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int, int]:
        s = self.samples[i]
        return self.transform(self.cache.get(s)), s.label, i

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]


def class_weights(labels: Sequence[int], n_classes: int = 2) -> list[float]:
    """Inverse-frequency weights ``n / (n_classes * count)`` (1.0 for absent classes)."""
    counts = Counter(labels)
    n = len(labels)
    return [n / (n_classes * counts[c]) if counts.get(c) else 1.0 for c in range(n_classes)]


def sample_weights(labels: Sequence[int], n_classes: int = 2) -> list[float]:
    """Per-sample weights that balance the classes (for weighted sampling)."""
    cw = class_weights(labels, n_classes)
    return [cw[y] for y in labels]
