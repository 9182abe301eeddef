"""The study store (SQLAlchemy 2 on SQLite; a SQLAlchemy URL selects another database)."""

from busviewer.core.store.actions import AuditAction
from busviewer.core.store.records import (
    LABEL_SOURCES,
    LABELS,
    AuditRecord,
    ImageRecord,
    LabelRecord,
    NewImage,
    PatientSummary,
    PredictionRecord,
    RoiRecord,
    StudyRecord,
    TrainingItem,
)
from busviewer.core.store.store import Store, StoreError, current_user

__all__ = [
    "LABELS",
    "LABEL_SOURCES",
    "AuditAction",
    "AuditRecord",
    "ImageRecord",
    "LabelRecord",
    "NewImage",
    "PatientSummary",
    "PredictionRecord",
    "RoiRecord",
    "StudyRecord",
    "Store",
    "StoreError",
    "TrainingItem",
    "current_user",
]
