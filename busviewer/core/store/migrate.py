"""Schema versions of the store (Alembic): what a database holds, and bringing it up to date.

Revisions live in ``migrations/versions`` (package data). ``0001`` is the baseline, the
schema busviewer wrote before versioning; a store without an ``alembic_version`` table but
with busviewer's tables is such a store. Opening a store (:func:`prepare`):

- empty database: the tables of ``schema.py`` are created and stamped with the newest
  revision (a test checks that this equals running every migration);
- older revision (or unversioned): a verified backup is made first (see ``backup.py``),
  then the migrations run, all in one transaction under a lock (SQLite ``BEGIN
  IMMEDIATE``; a PostgreSQL advisory lock), so two workstations never migrate at once;
- newer revision than this busviewer knows: refused (:class:`StoreTooNewError`); the
  store is not touched.

Opening a current store does not import Alembic (about a quarter of a second of the
workstation's launch): the revision chain is read from the ``revision`` /
``down_revision`` lines of the version files (a test checks it against Alembic's).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import Connection, Engine

from busviewer import __version__
from busviewer.core.store import schema as t
from busviewer.core.store.actions import AuditAction, checked
from busviewer.core.store.errors import StoreError, StoreTooNewError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
BASELINE = "0001"
#: Tables every busviewer store has had since the first release.
CORE_TABLES = frozenset(
    {"patients", "studies", "series", "images", "labels", "rois", "predictions", "model_versions", "audit_log"}
)
_PG_LOCK_KEY = 0x62757376  # "busv": the advisory lock taken while creating or migrating

Status = Literal["empty", "unversioned", "older", "current", "newer"]


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: ``revision`` None means no ``alembic_version`` row."""

    status: Status
    revision: str | None
    head: str

    def describe(self) -> str:
        return {
            "empty": f"empty database (busviewer creates schema revision {self.head})",
            "unversioned": f"store from before schema versioning (baseline {BASELINE}); newest is {self.head}",
            "older": f"schema revision {self.revision}; this busviewer migrates it to {self.head}",
            "current": f"schema revision {self.revision} (current)",
            "newer": f"schema revision {self.revision}, newer than this busviewer ({__version__}, "
            f"newest revision {self.head})",
        }[self.status]


@dataclass(frozen=True)
class OpenReport:
    """What opening did: ``before`` the state found, ``backup`` the verified backup file."""

    before: SchemaState
    created: bool = False
    migrated: bool = False
    backup: Path | None = None


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.lru_cache(maxsize=1)
def scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


_REVISION = re.compile(r"^revision\s*(?::[^=\n]*)?=\s*[\"']([^\"']+)[\"']", re.M)
_DOWN = re.compile(r"^down_revision\s*(?::[^=\n]*)?=\s*(?:None|[\"']([^\"']+)[\"'])", re.M)


@functools.lru_cache(maxsize=1)
def known_revisions() -> tuple[str, ...]:
    """Every revision of this busviewer, oldest first (read from the version files)."""
    down_of: dict[str, str | None] = {}
    for f in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        text_ = f.read_text(encoding="utf-8")
        rev, down = _REVISION.search(text_), _DOWN.search(text_)
        if rev is None or down is None:
            raise StoreError(f"{f}: no revision / down_revision line")
        down_of[rev.group(1)] = down.group(1)
    chain: list[str] = []
    nxt = {d: r for r, d in down_of.items()}
    cur = nxt.get(None)
    while cur is not None:
        chain.append(cur)
        cur = nxt.get(cur)
    if len(chain) != len(down_of):
        raise StoreError(f"the store migrations in {MIGRATIONS_DIR} do not form one chain: {down_of}")
    return tuple(chain)


def head() -> str:
    return known_revisions()[-1]


def schema_state(conn: Connection) -> SchemaState:
    """Inspect ``conn``'s database; raises :class:`StoreError` when it is not a busviewer store."""
    tables = set(inspect(conn).get_table_names())
    revision = None
    if "alembic_version" in tables:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    top = head()
    if revision is None:
        others = tables - {"alembic_version"}
        if not others:
            return SchemaState("empty", None, top)
        if others >= CORE_TABLES:
            return SchemaState("unversioned", None, top)
        raise StoreError(f"not a busviewer store: it holds other tables ({', '.join(sorted(others)[:6])})")
    if revision == top:
        return SchemaState("current", revision, top)
    if revision in known_revisions():
        return SchemaState("older", revision, top)
    return SchemaState("newer", revision, top)


def too_new_message(where: str, state: SchemaState) -> str:
    return (
        f"{where}: this store was written by a newer busviewer (schema revision {state.revision}); "
        f"this busviewer {__version__} knows revisions up to {state.head}. Update busviewer on this "
        "workstation; the store was not changed."
    )


@contextmanager
def locked(engine: Engine) -> Iterator[Connection]:
    """One write transaction holding the store's schema lock (committed on success)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # waits (busy_timeout) for other writers
        elif conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def create_fresh(conn: Connection) -> None:
    """Create the newest schema on an empty database and stamp it."""
    t.Base.metadata.create_all(conn)
    for ddl in t.audit_triggers(conn.dialect.name):
        conn.exec_driver_sql(ddl)
    from alembic.runtime.migration import MigrationContext

    MigrationContext.configure(conn).stamp(scripts(), head())


def upgrade(conn: Connection, state: SchemaState, target: str = "head") -> None:
    """Run the migrations from ``state`` to ``target`` on ``conn`` (inside its transaction)."""
    from alembic import command
    from alembic.util.exc import CommandError

    cfg = alembic_config(conn)
    try:
        if state.status == "unversioned":
            command.stamp(cfg, BASELINE)
        command.upgrade(cfg, target)
    except CommandError as exc:
        raise StoreError(f"migration failed: {exc}") from exc


BackupFn = Callable[[Connection, SchemaState], Path]


def prepare(engine: Engine, where: str, backup: BackupFn, user: str) -> OpenReport:
    """Bring the store up to the newest schema (see the module text); ``backup(conn, state)``
    makes and verifies the backup before anything is migrated and returns its path. The
    migration is written to the audit log as ``user``'s."""
    with engine.connect() as conn:
        state = schema_state(conn)
    if state.status == "current":
        return OpenReport(state)
    if state.status == "newer":
        raise StoreTooNewError(too_new_message(where, state))
    with locked(engine) as conn:
        state = schema_state(conn)  # another process may have done it meanwhile
        if state.status == "current":
            return OpenReport(state)
        if state.status == "newer":
            raise StoreTooNewError(too_new_message(where, state))
        if state.status == "empty":
            create_fresh(conn)
            return OpenReport(state, created=True)
        path = backup(conn, state)
        upgrade(conn, state)
        conn.execute(
            insert(t.AuditEntry).values(
                at=t.utcnow(),
                user=user,
                action=checked(AuditAction.MIGRATE),
                entity="store",
                entity_id=None,
                field="schema",
                old_value=state.revision or "pre-versioning",
                new_value=state.head,
            )
        )
    log.warning(
        "%s: migrated the store from schema %s to %s; backup before migrating: %s",
        where,
        state.revision or "pre-versioning",
        state.head,
        path,
    )
    return OpenReport(state, migrated=True, backup=path)
