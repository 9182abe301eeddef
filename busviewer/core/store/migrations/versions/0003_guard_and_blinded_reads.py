"""Issue 14: the input guard's finding per image (with the reader's override) and blinded
first reads (the reader's call recorded before the AI result is revealed).

- ``image_flags``: one row per checked image, keyed by image id, with the content hash
  the check was made on (a changed file is checked again).
- ``reader_reads``: one read per (patient, reader); the AI verdict shown at the reveal.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "image_flags",
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id"), primary_key=True),
        sa.Column("image_hash", sa.String(64), nullable=False),
        sa.Column("outside", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("overridden_by", sa.String(64)),
        sa.Column("overridden_at", TZ),
    )
    op.create_table(
        "reader_reads",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("reader", sa.String(64), nullable=False),
        sa.Column("call", sa.String(16), nullable=False),
        sa.Column("birads", sa.String(8)),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("revealed_at", TZ),
        sa.Column("ai_label", sa.String(16)),
        sa.Column("ai_detail", sa.JSON),
        sa.UniqueConstraint("patient_id", "reader", name="uq_reader_read_patient_reader"),
    )
    op.create_index("ix_reader_reads_patient_id", "reader_reads", ["patient_id"])


def downgrade() -> None:
    raise NotImplementedError("busviewer does not downgrade stores; restore the backup made before the upgrade")
