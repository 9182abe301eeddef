"""Plain, immutable records returned by the store (safe to pass between threads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

LABELS = ("benign", "malignant", "normal")
LABEL_SOURCES = ("import", "reader", "biopsy")
#: When several sources label one image, the most trusted one wins.
SOURCE_PRIORITY = ("biopsy", "reader", "import")


@dataclass(frozen=True)
class LabelRecord:
    """A label; for source 'reader', ``user`` is the reader whose label it is. ``version``
    (the audit id of its last change) goes back with an edit to refuse stale edits."""

    label: str
    source: str
    user: str
    updated: datetime
    birads: str | None = None
    biopsy_confirmed: bool = False
    note: str | None = None
    version: int = 0


@dataclass(frozen=True)
class ImageRecord:
    id: int
    patient_key: str
    study_uid: str
    series_uid: str
    source_path: Path
    content_hash: str
    sop_uid: str | None
    frame_count: int
    rows: int
    columns: int
    is_color: bool
    photometric: str | None
    frame_time_ms: float | None
    pixel_spacing_mm: tuple[float, float] | None
    regions: tuple[dict, ...]
    duplicate_of: int | None
    labels: dict[str, LabelRecord] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.source_path.name

    @property
    def label(self) -> LabelRecord | None:
        """The most trusted current label (biopsy > reader > import)."""
        for source in SOURCE_PRIORITY:
            if source in self.labels:
                return self.labels[source]
        return None


@dataclass(frozen=True)
class PatientSummary:
    id: int
    patient_key: str
    name: str | None
    image_count: int
    label_counts: dict[str, int]
    reviewed: bool
    patient_label: LabelRecord | None

    @property
    def label_text(self) -> str:
        if self.patient_label is not None:
            return self.patient_label.label
        return ", ".join(f"{k} {v}" for k, v in sorted(self.label_counts.items())) or "-"


@dataclass(frozen=True)
class StudyRecord:
    study_uid: str
    study_date: str | None
    description: str | None
    series: tuple[tuple[str, str | None, str | None], ...]  # (uid, modality, description)


@dataclass(frozen=True)
class RoiRecord:
    id: int
    image_id: int
    frame: int
    x0: int
    y0: int
    x1: int
    y1: int
    user: str
    created: datetime
    version: int = 0  # audit id of the last change; pass it back as expected_version

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)


@dataclass(frozen=True)
class PredictionRecord:
    id: int
    image_id: int
    roi_id: int | None
    frame: int
    model_name: str
    model_version: int
    architecture: str
    model_sha256: str
    image_hash: str
    label: str
    malignant_probability: float
    probabilities: dict[str, float]
    created: datetime
    user: str | None = None


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    user: str
    action: str
    entity: str
    entity_id: int | None
    field: str | None
    old_value: str | None
    new_value: str | None


@dataclass(frozen=True)
class TrainingItem:
    """One labelled image (or ROI crop) for training."""

    image_id: int
    path: Path
    frame: int
    patient_key: str
    label: str
    label_source: str
    roi: tuple[int, int, int, int] | None
    content_hash: str


@dataclass(frozen=True)
class NewImage:
    """What the importer hands to :meth:`Store.add_image` for one file."""

    patient_key: str
    patient_name: str | None
    study_uid: str
    study_date: str | None
    study_description: str | None
    series_uid: str
    series_description: str | None
    modality: str | None
    source_path: Path
    content_hash: str
    file_size: int
    sop_uid: str | None
    frame_count: int
    rows: int
    columns: int
    is_color: bool
    photometric: str | None
    frame_time_ms: float | None
    pixel_spacing_mm: tuple[float, float] | None
    regions: tuple[dict, ...] = ()
    label: str | None = None
    label_source: str = "import"
