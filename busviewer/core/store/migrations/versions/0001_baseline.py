"""Baseline: the store as busviewer created it before schema versioning.

Stores made before Alembic (tables from ``create_all``, no ``alembic_version``) are
stamped with this revision and migrated from here. Frozen: never edit this file; change
the schema with a new revision.

Revision ID: 0001
Revises:
Create Date: 2025-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

SQLITE_GUARD = (
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
)
POSTGRES_GUARD = (
    """CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$""",
    "DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log",
    """CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
       FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.Integer),
        sa.Column("field", sa.String(64)),
        sa.Column("old_value", sa.Text),
        sa.Column("new_value", sa.Text),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("architecture", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("card", sa.JSON, nullable=False),
        sa.Column("created", TZ, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_model_name_version"),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_key", sa.String(128), nullable=False, unique=True),
        sa.Column("name", sa.String(256)),
        sa.Column("reviewed", sa.Boolean, nullable=False),
        sa.Column("reviewed_at", TZ),
        sa.Column("created", TZ, nullable=False),
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("study_uid", sa.String(128), nullable=False, unique=True),
        sa.Column("study_date", sa.String(16)),
        sa.Column("description", sa.String(256)),
    )
    op.create_index("ix_studies_patient_id", "studies", ["patient_id"])
    op.create_table(
        "series",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("series_uid", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.String(256)),
        sa.Column("modality", sa.String(16)),
    )
    op.create_index("ix_series_study_id", "series", ["study_id"])
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("sop_uid", sa.String(128), unique=True),
        sa.Column("file_size", sa.Integer, nullable=False),
        sa.Column("frame_count", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("columns", sa.Integer, nullable=False),
        sa.Column("is_color", sa.Boolean, nullable=False),
        sa.Column("photometric", sa.String(32)),
        sa.Column("frame_time_ms", sa.Float),
        sa.Column("spacing_row_mm", sa.Float),
        sa.Column("spacing_col_mm", sa.Float),
        sa.Column("regions", sa.JSON),
        sa.Column("duplicate_of", sa.Integer, sa.ForeignKey("images.id")),
        sa.Column("imported_at", TZ, nullable=False),
        sa.UniqueConstraint("content_hash", "source_path", name="uq_image_hash_path"),
    )
    op.create_index("ix_images_series_id", "images", ["series_id"])
    op.create_index("ix_images_content_hash", "images", ["content_hash"])
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id")),
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id")),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("birads", sa.String(4)),
        sa.Column("biopsy_confirmed", sa.Boolean, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("updated", TZ, nullable=False),
        sa.UniqueConstraint("image_id", "patient_id", "source", name="uq_label_target_source"),
    )
    op.create_index("ix_labels_image_id", "labels", ["image_id"])
    op.create_index("ix_labels_patient_id", "labels", ["patient_id"])
    op.create_table(
        "rois",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id"), nullable=False),
        sa.Column("frame", sa.Integer, nullable=False),
        sa.Column("x0", sa.Integer, nullable=False),
        sa.Column("y0", sa.Integer, nullable=False),
        sa.Column("x1", sa.Integer, nullable=False),
        sa.Column("y1", sa.Integer, nullable=False),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("created", TZ, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_index("ix_rois_image_id", "rois", ["image_id"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id"), nullable=False),
        sa.Column("roi_id", sa.Integer, sa.ForeignKey("rois.id")),
        sa.Column("frame", sa.Integer, nullable=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("architecture", sa.String(32), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("image_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("malignant_probability", sa.Float, nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("created", TZ, nullable=False),
    )
    op.create_index("ix_pred_image_model", "predictions", ["image_id", "model_sha256"])
    dialect = op.get_bind().dialect.name
    for ddl in {"sqlite": SQLITE_GUARD, "postgresql": POSTGRES_GUARD}.get(dialect, ()):
        op.execute(ddl)


def downgrade() -> None:
    raise NotImplementedError("the baseline cannot be downgraded; restore a backup instead")
