"""Department store: labels per reader, versions for optimistic concurrency, the user of
every prediction, shared models, the shared locked test set and store settings.

- ``labels.reader``: a reader label is kept per reader ('' for import/biopsy labels);
  existing reader labels get their ``user``. The old (image_id, patient_id, source)
  constraint never held (one of the two ids is always NULL) and is replaced by partial
  unique indexes; should a race have left twin rows, the newest is kept (every value
  stays in the audit log).
- ``labels.version`` and ``rois.version``: the audit row id of the last change (0 for
  rows written before this revision).
- ``predictions.user``; tables ``shared_models``, ``locked_test_sets``, ``store_settings``.
- PostgreSQL: the audit log also refuses TRUNCATE.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _partial(column: str) -> dict:
    where = sa.text(f"{column} IS NOT NULL")
    return {"sqlite_where": where, "postgresql_where": where}


def upgrade() -> None:
    with op.batch_alter_table("labels") as batch:
        batch.add_column(sa.Column("reader", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="0"))
        batch.drop_constraint("uq_label_target_source", type_="unique")
    op.execute("""UPDATE labels SET reader = "user" WHERE source = 'reader'""")
    for column in ("image_id", "patient_id"):
        op.execute(f"""DELETE FROM labels WHERE {column} IS NOT NULL AND id NOT IN (
                         SELECT MAX(id) FROM labels WHERE {column} IS NOT NULL
                         GROUP BY {column}, source, reader)""")
    op.create_index("uq_label_image", "labels", ["image_id", "source", "reader"], unique=True, **_partial("image_id"))
    op.create_index(
        "uq_label_patient", "labels", ["patient_id", "source", "reader"], unique=True, **_partial("patient_id")
    )
    with op.batch_alter_table("rois") as batch:
        batch.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("user", sa.String(64)))
    op.create_table(
        "shared_models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("architecture", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("card", sa.JSON, nullable=False),
        sa.Column("weights_file", sa.Text, nullable=False),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("created", TZ, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_shared_model_name_version"),
    )
    op.create_table(
        "locked_test_sets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("active", sa.Boolean, unique=True),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("created", TZ, nullable=False),
        sa.Column("retired_at", TZ),
        sa.Column("retired_by", sa.String(64)),
    )
    op.create_table(
        "store_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("""CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
                      FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""")


def downgrade() -> None:
    raise NotImplementedError("busviewer does not downgrade stores; restore the backup made before the upgrade")
