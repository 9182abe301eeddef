"""What workstations share through one store: settings, published models, the locked test set.

Rows only; copying weight files and checking them is ``busviewer.services.department``.
Every change is audited with the writer's identity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from busviewer.core.store import schema as t
from busviewer.core.store.errors import StaleEditError, StoreError
from busviewer.core.store.labels import audit
from busviewer.core.store.store import Store


@dataclass(frozen=True)
class SharedModelRecord:
    """A model published to the department; ``weights_file`` is relative to the shared folder."""

    name: str
    version: int
    architecture: str
    sha256: str
    card: dict
    weights_file: str
    user: str
    created: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class LockedTestRecord:
    """The department's locked test set in force (``payload``: the locked_test_set.json content)."""

    id: int
    payload: dict
    user: str
    created: datetime


def get_setting(store: Store, key: str) -> str | None:
    with store._sessions() as s:
        row = s.get(t.Setting, key)
        return None if row is None else row.value


def set_setting(store: Store, key: str, value: str, user: str | None = None) -> None:
    with store._tx() as s:
        row = s.get(t.Setting, key)
        old = None if row is None else row.value
        if old == value:
            return
        if row is None:
            s.add(t.Setting(key=key, value=value))
        else:
            row.value = value
        audit(s, user or store.user, "setting", "store", None, key, old, value)


def _model_record(r: t.SharedModel) -> SharedModelRecord:
    return SharedModelRecord(
        r.name, r.version, r.architecture, r.sha256, dict(r.card), r.weights_file, r.user, r.created
    )


def shared_models(store: Store) -> list[SharedModelRecord]:
    with store._sessions() as s:
        rows = s.scalars(
            select(t.SharedModel).order_by(t.SharedModel.architecture, t.SharedModel.name, t.SharedModel.version)
        )
        return [_model_record(r) for r in rows]


def shared_model(store: Store, name: str, version: int | None = None) -> SharedModelRecord:
    """The published ``name:version`` (the newest version if None); KeyError if none."""
    with store._sessions() as s:
        q = select(t.SharedModel).where(t.SharedModel.name == name)
        q = (
            q.where(t.SharedModel.version == version)
            if version is not None
            else q.order_by(t.SharedModel.version.desc())
        )
        row = s.scalars(q).first()
        if row is None:
            what = f"{name}:{version}" if version is not None else name
            raise KeyError(f"no model {what} is published in the department store {store.url}")
        return _model_record(row)


def add_shared_model(
    store: Store, card: dict, place: Callable[[int], str], user: str | None = None
) -> tuple[SharedModelRecord, bool]:
    """Publish ``card``'s model: keeps its version if free (or already published with the same
    weights: then ``(record, False)``), else takes the next free one. ``place(version)`` puts
    the weights in the shared folder and returns the file name; it runs inside the
    transaction, so a failure publishes nothing."""
    user = user or store.user
    for _attempt in range(3):
        try:
            with store._tx() as s:
                same = s.scalar(
                    select(t.SharedModel).where(
                        t.SharedModel.name == card["name"], t.SharedModel.version == card["version"]
                    )
                )
                if same is not None and same.sha256 == card["sha256"]:
                    return _model_record(same), False
                version = int(card["version"])
                if same is not None:
                    top = s.scalar(select(func.max(t.SharedModel.version)).where(t.SharedModel.name == card["name"]))
                    version = int(top or 0) + 1
                final = {**card, "version": version}
                row = t.SharedModel(
                    name=final["name"],
                    version=version,
                    architecture=final["architecture"],
                    sha256=final["sha256"],
                    card=final,
                    weights_file=place(version),
                    user=user,
                )
                s.add(row)
                s.flush()
                audit(s, user, "publish_model", "model", row.id, "ref", None, f"{row.name}:{row.version}")
                return _model_record(row), True
        except IntegrityError:  # another workstation took that version at the same moment
            continue
    raise StaleEditError(f"{card['name']}: could not reserve a version in {store.url}; try again")


def active_locked_test(store: Store) -> LockedTestRecord | None:
    with store._sessions() as s:
        row = s.scalar(select(t.LockedTestRecord).where(t.LockedTestRecord.active.is_(True)))
        return None if row is None else LockedTestRecord(row.id, dict(row.payload), row.user, row.created)


def publish_locked_test(store: Store, payload: dict, user: str | None = None) -> LockedTestRecord:
    """Make ``payload`` the department's locked test set; refused if another one is in force."""
    user = user or store.user
    try:
        with store._tx() as s:
            current = s.scalar(select(t.LockedTestRecord).where(t.LockedTestRecord.active.is_(True)))
            if current is not None:
                if dict(current.payload) == payload:
                    return LockedTestRecord(current.id, dict(current.payload), current.user, current.created)
                raise StoreError(
                    f"the department store {store.url} already has a locked test set (created "
                    f"{current.payload.get('created')} by {current.user}); retire it first"
                )
            row = t.LockedTestRecord(payload=payload, active=True, user=user)
            s.add(row)
            s.flush()
            audit(
                s,
                user,
                "publish_locked_test",
                "locked_test",
                row.id,
                "patients",
                None,
                str(len(payload.get("patients", []))),
            )
            return LockedTestRecord(row.id, dict(row.payload), row.user, row.created)
    except IntegrityError as exc:
        raise StaleEditError(
            f"another workstation published a locked test set to {store.url} at the same moment; pull it instead"
        ) from exc


def retire_locked_test(store: Store, user: str | None = None) -> LockedTestRecord | None:
    """Retire the set in force (kept, marked retired, audited); returns it, or None."""
    user = user or store.user
    with store._tx() as s:
        row = s.scalar(select(t.LockedTestRecord).where(t.LockedTestRecord.active.is_(True)))
        if row is None:
            return None
        row.active, row.retired_at, row.retired_by = None, t.utcnow(), user
        audit(s, user, "retire_locked_test", "locked_test", row.id, "active", "True", None)
        return LockedTestRecord(row.id, dict(row.payload), row.user, row.created)
