"""SQLAlchemy 2 tables of the study store.

Patients -> studies -> series -> images, plus ROIs, labels, predictions, model versions,
an append-only audit log, and what a department shares (published models, the locked
test set, settings). Portable SQL: SQLite (a workstation) and PostgreSQL (a department).

This is the schema of the newest migration (``migrations/versions``); a test checks
that migrating an empty database gives exactly these tables. Changing a table here
means adding a migration.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Patient(Base):
    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_key: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str | None] = mapped_column(String(256))
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    studies: Mapped[list[Study]] = relationship(back_populates="patient", cascade="all, delete-orphan")


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    study_uid: Mapped[str] = mapped_column(String(128), unique=True)
    study_date: Mapped[str | None] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(String(256))
    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study", cascade="all, delete-orphan")


class Series(Base):
    __tablename__ = "series"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_uid: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str | None] = mapped_column(String(256))
    modality: Mapped[str | None] = mapped_column(String(16))
    study: Mapped[Study] = relationship(back_populates="series")
    images: Mapped[list[Image]] = relationship(back_populates="series", cascade="all, delete-orphan")


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("content_hash", "source_path", name="uq_image_hash_path"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    source_path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    sop_uid: Mapped[str | None] = mapped_column(String(128), unique=True)
    file_size: Mapped[int] = mapped_column(Integer)
    frame_count: Mapped[int] = mapped_column(Integer, default=1)
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[int] = mapped_column(Integer)
    is_color: Mapped[bool] = mapped_column(Boolean)
    photometric: Mapped[str | None] = mapped_column(String(32))
    frame_time_ms: Mapped[float | None] = mapped_column(Float)
    spacing_row_mm: Mapped[float | None] = mapped_column(Float)
    spacing_col_mm: Mapped[float | None] = mapped_column(Float)
    regions: Mapped[list | None] = mapped_column(JSON)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("images.id"))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    series: Mapped[Series] = relationship(back_populates="images")


class Label(Base):
    """Current label of an image (image_id set) or a patient (patient_id set), per source and,
    for reader labels, per reader (``reader`` = the reader's user name; '' for import and
    biopsy labels, which are one per target). ``version`` is the id of the audit row of the
    last change (optimistic concurrency: an edit names the version it saw)."""

    __tablename__ = "labels"
    __table_args__ = (
        Index(
            "uq_label_image",
            "image_id",
            "source",
            "reader",
            unique=True,
            sqlite_where=text("image_id IS NOT NULL"),
            postgresql_where=text("image_id IS NOT NULL"),
        ),
        Index(
            "uq_label_patient",
            "patient_id",
            "source",
            "reader",
            unique=True,
            sqlite_where=text("patient_id IS NOT NULL"),
            postgresql_where=text("patient_id IS NOT NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # import | reader | biopsy
    label: Mapped[str] = mapped_column(String(16))  # benign | malignant | normal
    birads: Mapped[str | None] = mapped_column(String(4))
    biopsy_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    user: Mapped[str] = mapped_column(String(64))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reader: Mapped[str] = mapped_column(String(64), default="", server_default="")
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class Roi(Base):
    """A rectangle around the lesion, in image pixel coordinates. Deleting is a soft delete.
    ``version``: the audit row id of the last change (see :class:`Label`)."""

    __tablename__ = "rois"
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    frame: Mapped[int] = mapped_column(Integer, default=0)
    x0: Mapped[int] = mapped_column(Integer)
    y0: Mapped[int] = mapped_column(Integer)
    x1: Mapped[int] = mapped_column(Integer)
    y1: Mapped[int] = mapped_column(Integer)
    user: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (Index("ix_pred_image_model", "image_id", "model_sha256"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    roi_id: Mapped[int | None] = mapped_column(ForeignKey("rois.id"))
    frame: Mapped[int] = mapped_column(Integer, default=0)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[int] = mapped_column(Integer)
    architecture: Mapped[str] = mapped_column(String(32))
    model_sha256: Mapped[str] = mapped_column(String(64))
    image_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(16))
    malignant_probability: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user: Mapped[str | None] = mapped_column(String(64))  # None: made before user was recorded


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_name_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    architecture: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    card: Mapped[dict] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SharedModel(Base):
    """A model version published to the department: its card, and its weights file in the
    department's shared folder (``weights_file``, relative to that folder)."""

    __tablename__ = "shared_models"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_shared_model_name_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    architecture: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    card: Mapped[dict] = mapped_column(JSON)
    weights_file: Mapped[str] = mapped_column(Text)
    user: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LockedTestRecord(Base):
    """The department's locked test set (``payload`` = the locked_test_set.json content).
    ``active`` is True for the one set in force and NULL once retired (unique: one active)."""

    __tablename__ = "locked_test_sets"
    id: Mapped[int] = mapped_column(primary_key=True)
    payload: Mapped[dict] = mapped_column(JSON)
    active: Mapped[bool | None] = mapped_column(Boolean, unique=True)
    user: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retired_by: Mapped[str | None] = mapped_column(String(64))


class Setting(Base):
    """Store-wide settings shared by every workstation (e.g. ``shared_dir``)."""

    __tablename__ = "store_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ImageFlag(Base):
    """The input guard's finding for an image (checked on the content hash ``image_hash``)
    and the reader's override, if any (``overridden_by``/``overridden_at``)."""

    __tablename__ = "image_flags"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    image_hash: Mapped[str] = mapped_column(String(64))
    outside: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    overridden_by: Mapped[str | None] = mapped_column(String(64))
    overridden_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReaderRead(Base):
    """A blinded first read: the reader's call before the AI result was revealed, and the
    AI's patient verdict as it was shown at the reveal (``revealed_at`` NULL: not yet)."""

    __tablename__ = "reader_reads"
    __table_args__ = (UniqueConstraint("patient_id", "reader", name="uq_reader_read_patient_reader"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    reader: Mapped[str] = mapped_column(String(64))
    call: Mapped[str] = mapped_column(String(16))
    birads: Mapped[str | None] = mapped_column(String(8))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revealed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ai_label: Mapped[str | None] = mapped_column(String(16))
    ai_detail: Mapped[dict | None] = mapped_column(JSON)


class AuditEntry(Base):
    """Append-only: triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int | None] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)


#: The append-only guard of the audit log (the baseline migration holds its own frozen copy).
SQLITE_AUDIT_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
)

POSTGRES_AUDIT_TRIGGERS = (
    """CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$""",
    """CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
       FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
       FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
)


def audit_triggers(dialect: str) -> tuple[str, ...]:
    """The DDL that makes the audit log append-only on ``dialect`` ('sqlite'/'postgresql')."""
    return {"sqlite": SQLITE_AUDIT_TRIGGERS, "postgresql": POSTGRES_AUDIT_TRIGGERS}.get(dialect, ())
