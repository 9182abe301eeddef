"""Store administration (``busviewer store check|backup|restore|migrate``).

Each works on a store file or a database URL (``None``: the configured store) and never
migrates unless asked: ``check`` and ``backup`` read, ``migrate`` makes a verified backup
and then upgrades, ``restore`` keeps the store's previous content as a backup first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from busviewer.core import paths
from busviewer.core.store import Store, current_user
from busviewer.core.store import backup as bk
from busviewer.core.store import schema as t
from busviewer.core.store.actions import AuditAction, checked
from busviewer.core.store.engine import default_backup_dir, display_url, make_engine, sqlite_file, store_name, store_url
from busviewer.core.store.errors import StoreError, StoreTooNewError
from busviewer.core.store.migrate import OpenReport, SchemaState, schema_state, too_new_message

_SHOWN = 3  # example paths named per problem


@dataclass(frozen=True)
class CheckReport:
    """What ``store check`` found; ``ok`` when ``problems`` is empty."""

    location: str
    state: SchemaState | None
    counts: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def _engine(location: str | Path | None) -> Engine:
    return make_engine(location if location is not None else paths.store_location())


def _audit_guard(conn: Connection) -> bool:
    if conn.dialect.name == "sqlite":
        names = {
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='audit_log'"
            )
        }
        return {"audit_log_no_update", "audit_log_no_delete"} <= names
    if conn.dialect.name == "postgresql":
        names = {
            r[0]
            for r in conn.execute(
                text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal")
            )
        }
        return "audit_log_no_update_delete" in names
    return False


def _unreachable_images(conn: Connection) -> tuple[int, int, list[str]]:
    missing, total = 0, 0
    examples: list[str] = []
    for (path,) in conn.execute(select(t.Image.source_path)):
        total += 1
        if not Path(path).is_file():
            missing += 1
            if len(examples) < _SHOWN:
                examples.append(path)
    return missing, total, examples


def check(location: str | Path | None = None, images: bool = True) -> CheckReport:
    """Schema revision, database integrity, the audit guard, drift from ``schema.py``, and
    (``images``) whether every image file is reachable from this workstation."""
    engine = _engine(location)
    where = display_url(engine)
    problems: list[str] = []
    notes: list[str] = []
    try:
        with engine.connect() as conn:
            try:
                state = schema_state(conn)
            except StoreError as exc:
                return CheckReport(where, None, problems=(str(exc),))
            notes.append(state.describe())
            counts = bk.table_counts(conn)
            if state.status == "newer":
                problems.append(too_new_message(where, state))
                return CheckReport(where, state, counts, tuple(problems), tuple(notes))
            if state.status == "empty":
                return CheckReport(where, state, counts, (), tuple(notes))
            if conn.dialect.name == "sqlite":
                result = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                if result != ["ok"]:
                    problems.append("integrity check failed: " + "; ".join(result[:5]))
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    problems.append(f"{len(broken)} row(s) refer to missing rows (e.g. {broken[0]})")
            if not _audit_guard(conn):
                problems.append("the audit log is not protected against changes (append-only trigger missing)")
            if state.status == "current":
                diff = compare_metadata(MigrationContext.configure(conn), t.Base.metadata)
                if diff:
                    problems.append(f"the tables differ from this busviewer's schema: {diff[:3]}")
            else:
                notes.append(
                    "opening it with this busviewer (or `busviewer store migrate`) backs it up and migrates it"
                )
            if images and "images" in inspect(conn).get_table_names():
                missing, total, examples = _unreachable_images(conn)
                if missing:
                    problems.append(
                        f"{missing} of {total} image files are not reachable from this workstation "
                        f"(e.g. {', '.join(examples)})"
                    )
                else:
                    notes.append(f"all {total} image files are reachable")
    finally:
        engine.dispose()
    return CheckReport(where, state, counts, tuple(problems), tuple(notes))


def backup(location: str | Path | None = None, out: Path | None = None) -> bk.BackupReport:
    """A verified backup (one SQLite file) of the store; default: the store's backup folder."""
    engine = _engine(location)
    try:
        url = store_url(location if location is not None else paths.store_location())
        file = sqlite_file(url)
        if file is not None and not file.is_file():
            raise StoreError(f"{file}: no such store")
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")  # one snapshot of all tables
            state = schema_state(conn)
            if state.status == "newer" and file is None:
                raise StoreTooNewError(too_new_message(display_url(engine), state))
            dest = out or bk.backup_path(default_backup_dir(url), store_name(url), state.revision)
            if dest.exists():
                raise StoreError(f"{dest} exists already; name another file")
            dest.parent.mkdir(parents=True, exist_ok=True)
            return bk.backup_connection(conn, dest, state.revision)
    finally:
        engine.dispose()


def restore(
    backup_file: Path, location: str | Path | None = None, user: str | None = None
) -> tuple[bk.BackupReport, bk.BackupReport | None]:
    """Restore ``backup_file`` into the store (see ``core.store.backup.restore``); audited.
    Returns (the restored store, the backup of what it held before or None)."""
    engine = _engine(location)
    try:
        url = store_url(location if location is not None else paths.store_location())
        restored, replaced = bk.restore(Path(backup_file), engine, default_backup_dir(url))
        with engine.begin() as conn:
            conn.execute(
                insert(t.AuditEntry).values(
                    at=t.utcnow(),
                    user=user or current_user(),
                    action=checked(AuditAction.RESTORE),
                    entity="store",
                    entity_id=None,
                    field="backup",
                    old_value=None if replaced is None else str(replaced.path),
                    new_value=str(backup_file),
                )
            )
        return restored, replaced
    finally:
        engine.dispose()


def migrate(location: str | Path | None = None, user: str | None = None) -> OpenReport:
    """Bring the store to this busviewer's schema (a verified backup first if it changes)."""
    store = Store(location, user=user)
    store.close()
    return store.opened
