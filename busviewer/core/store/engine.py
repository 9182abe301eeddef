"""Connecting to a store: URLs, engine options, where backups go."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from busviewer.core import paths


def store_url(location: str | Path) -> str:
    """A SQLAlchemy URL for a store file or URL (``postgresql://`` uses psycopg 3)."""
    url = str(location)
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for a server or an in-memory database)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    return Path(u.database)


def display_url(engine: Engine) -> str:
    """The URL without its password (for messages and the audit log)."""
    return engine.url.render_as_string(hide_password=True)


def default_backup_dir(url: str) -> Path:
    """``backups/`` next to a SQLite file; ``data_dir()/backups`` for a server."""
    file = sqlite_file(url)
    return file.parent / "backups" if file is not None else paths.data_dir() / "backups"


def store_name(url: str) -> str:
    """A short name for backup files: the SQLite file's stem or the database name."""
    file = sqlite_file(url)
    return file.stem if file is not None else (make_url(url).database or "store")


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(location: str | Path) -> Engine:
    """An engine for a store file or URL (SQLite: WAL, foreign keys; PostgreSQL: UTC session)."""
    url = store_url(location)
    file = sqlite_file(url)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    if make_url(url).get_backend_name() == "postgresql":  # one clock for every workstation
        return create_engine(url, pool_pre_ping=True, connect_args={"options": "-c timezone=UTC"})
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine
