"""Verified backups of the store, and restoring them.

A backup is always one SQLite file:

- a SQLite store is copied with SQLite's online backup API (consistent while the app
  runs), switched to a self-contained single file, then checked with
  ``PRAGMA integrity_check`` and row counts that must equal the store's;
- a PostgreSQL store is copied table by table into a new SQLite file built by the same
  migrations at the same schema revision (a portable, logical copy; no ``pg_dump`` of
  the server's version needed), inside the caller's transaction, then checked the same
  way.

Restoring copies a backup into a SQLite store (the file's current content is first kept
as a verified ``*.replaced.*.sqlite`` backup: nothing is ever lost) or into an *empty*
PostgreSQL database. A store restored from an older revision is migrated when opened.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import MetaData, create_engine, func, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from busviewer.core.store.engine import display_url, sqlite_file
from busviewer.core.store.errors import StoreError, StoreTooNewError
from busviewer.core.store.migrate import BASELINE, alembic_config, known_revisions, locked, schema_state

_CHUNK = 1000


@dataclass(frozen=True)
class BackupReport:
    """A verified backup: where, at which schema revision (None: before versioning), rows per table."""

    path: Path
    revision: str | None
    counts: dict[str, int]

    def summary(self) -> str:
        rows = sum(v for k, v in self.counts.items() if k != "alembic_version")
        return (
            f"{self.path}: schema revision {self.revision or 'pre-versioning'}, {len(self.counts)} tables, "
            f"{rows} rows; integrity check ok"
        )


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def backup_path(directory: Path, stem: str, revision: str | None, kind: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{stem}.{kind + '.' if kind else ''}{revision or 'pre-versioning'}.{stamp()}.sqlite"


def table_counts(conn: Connection) -> dict[str, int]:
    """Rows per table (every table of the database)."""
    return {
        name: int(conn.execute(select(func.count()).select_from(text(f'"{name}"'))).scalar() or 0)
        for name in sorted(inspect(conn).get_table_names())
    }


def _revision_of_file(con: sqlite3.Connection) -> str | None:
    has = con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'").fetchone()
    if not has:
        return None
    row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def verify(path: Path, expected: dict[str, int] | None = None) -> BackupReport:
    """Check a backup (or any SQLite store file): integrity, and row counts if given."""
    if not path.is_file():
        raise StoreError(f"{path}: no such backup file")
    try:
        con = sqlite3.connect(path)
        try:
            result = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
            tables = [
                r[0]
                for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            counts = {n: int(con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in tables}
            revision = _revision_of_file(con)
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a readable SQLite store ({exc})") from exc
    if result != ["ok"]:
        raise StoreError(f"{path}: integrity check failed: {'; '.join(result[:5])}")
    if expected is not None:
        wrong = {k: (v, counts.get(k)) for k, v in expected.items() if counts.get(k) != v}
        if wrong:
            raise StoreError(f"{path}: the copy's row counts differ from the store's (table: store, copy): {wrong}")
    return BackupReport(path, revision, counts)


def _online_copy(src: Path, dest: Path) -> None:
    """SQLite online backup ``src`` -> ``dest`` (replacing its content), left as a single file."""
    if not src.is_file():
        raise StoreError(f"{src}: no such store file")
    s = sqlite3.connect(src)
    d = sqlite3.connect(dest, timeout=10)
    try:
        d.execute("PRAGMA journal_mode=DELETE")
        s.backup(d)
        d.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        raise StoreError(
            f"copying {src} to {dest} failed ({exc}); if busviewer has {dest} open, close it and try again"
        ) from exc
    finally:
        d.close()
        s.close()


def backup_sqlite(src: Path, dest: Path, expected: dict[str, int] | None = None) -> BackupReport:
    """Online backup of a SQLite store into ``dest`` (written under a temporary name), verified."""
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        _online_copy(src, tmp)
        report = verify(tmp, expected)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return BackupReport(dest, report.revision, report.counts)


def _convert(value: object, to_sqlite: bool) -> object:
    """Datetimes: naive UTC in SQLite, aware UTC in PostgreSQL."""
    if isinstance(value, datetime):
        if to_sqlite:
            return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return value


def _copy_rows(src: Connection, dest: Connection, skip: Iterable[str] = ("alembic_version",)) -> None:
    """Copy every table's rows from ``src`` into the same (empty) tables of ``dest``, parents first."""
    src_md, dest_md = MetaData(), MetaData()
    src_md.reflect(src)
    dest_md.reflect(dest)
    to_sqlite = dest.dialect.name == "sqlite"
    for table in dest_md.sorted_tables:
        if table.name in skip:
            continue
        if table.name not in src_md.tables:
            raise StoreError(f"table {table.name} is missing in the source store")
        source = src_md.tables[table.name]
        names = [c.name for c in table.columns]
        q = select(*[source.c[n] for n in names]).order_by(*source.primary_key.columns)
        for part in src.execute(q.execution_options(yield_per=_CHUNK)).partitions(_CHUNK):
            dest.execute(table.insert(), [{n: _convert(v, to_sqlite) for n, v in zip(names, row)} for row in part])


def backup_connection(conn: Connection, dest: Path, revision: str | None) -> BackupReport:
    """A verified backup of the store behind ``conn`` at schema ``revision`` (None: unversioned)."""
    expected = table_counts(conn)
    path = sqlite_file(str(conn.engine.url))
    if path is not None:
        return backup_sqlite(path, dest, expected)
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{tmp}")
    try:
        with engine.begin() as out:
            from alembic import command

            command.upgrade(alembic_config(out), revision or BASELINE)
            _copy_rows(conn, out)
            if revision is None:
                out.exec_driver_sql("DROP TABLE alembic_version")
        engine.dispose()
        report = verify(tmp, expected)
        os.replace(tmp, dest)
    finally:
        engine.dispose()
        tmp.unlink(missing_ok=True)
    return BackupReport(dest, report.revision, report.counts)


def restore(backup: Path, engine: Engine, keep_dir: Path) -> tuple[BackupReport, BackupReport | None]:
    """Restore ``backup`` into the store of ``engine``. Returns (what was restored, the
    backup of the store's previous content or None). See the module text."""
    report = verify(backup)
    if report.revision is not None and report.revision not in known_revisions():
        raise StoreTooNewError(
            f"{backup}: made by a newer busviewer (schema revision {report.revision}); update busviewer to restore it"
        )
    expected = {k: v for k, v in report.counts.items() if k != "alembic_version"}
    target = sqlite_file(str(engine.url))
    if target is not None:
        engine.dispose()
        replaced = None
        if target.is_file() and target.stat().st_size > 0:
            with engine.connect() as conn:
                state = schema_state(conn)
                if state.status != "empty":
                    replaced = backup_connection(
                        conn, backup_path(keep_dir, target.stem, state.revision, "replaced"), state.revision
                    )
            engine.dispose()
        target.parent.mkdir(parents=True, exist_ok=True)
        _online_copy(backup, target)
        restored = verify(target, expected)
        return BackupReport(target, restored.revision, restored.counts), None if replaced is None else replaced
    with locked(engine) as conn:
        state = schema_state(conn)
        if state.status != "empty":
            raise StoreError(
                f"{display_url(engine)}: restoring into PostgreSQL needs an "
                f"empty database, this one holds a store ({state.describe()})"
            )
        from alembic import command

        command.upgrade(alembic_config(conn), report.revision or BASELINE)
        source = create_engine(f"sqlite:///{backup}")
        try:
            with source.connect() as src:
                _copy_rows(src, conn)
        finally:
            source.dispose()
        for table in inspect(conn).get_table_names():
            if "id" in {c["name"] for c in inspect(conn).get_columns(table)}:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                        f'COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM "{table}"'
                    )
                )
        counts = {k: v for k, v in table_counts(conn).items() if k != "alembic_version"}
    if counts != expected:
        raise StoreError(f"restore: row counts differ from the backup's: {counts} vs {expected}")
    url = display_url(engine)
    return BackupReport(Path(url), report.revision or BASELINE, counts), None
