"""Labels and edit versions inside a store transaction (helpers of :class:`Store`).

A label is kept per target (image or patient) and source; reader labels also per reader,
so two readers labelling the same image keep both. Every change writes audit rows, and
the changed row's ``version`` becomes the id of the last of them: an edit that names the
version it saw (``expected_version``) is refused when the row has changed since, and the
UPDATE itself checks the version, so an edit racing another one is refused too
(:class:`StaleEditError`, nothing saved) instead of silently overwriting it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from busviewer.core.store import schema as t
from busviewer.core.store.actions import AuditAction, checked
from busviewer.core.store.errors import StaleEditError
from busviewer.core.store.records import LABEL_SOURCES, LABELS, SOURCE_PRIORITY, LabelRecord

_RELOAD = "nothing was saved. Reload it and apply your change again."


def audit(
    s: Session,
    user: str,
    action: str | AuditAction,
    entity: str,
    entity_id: int | None,
    field: str | None,
    old: str | None,
    new: str | None,
) -> t.AuditEntry:
    """Add an audit entry; ``action`` must be one of :class:`AuditAction` (ValueError)."""
    entry = t.AuditEntry(
        user=user, action=checked(action), entity=entity, entity_id=entity_id, field=field, old_value=old, new_value=new
    )
    s.add(entry)
    return entry


def flush_edit(s: Session, what: str) -> None:
    """Flush; a concurrent change of the same row (version check, unique key) is a stale edit."""
    try:
        s.flush()
    except StaleDataError as exc:
        raise StaleEditError(
            f"{what} was changed on another workstation while your change was being saved; " + _RELOAD
        ) from exc
    except IntegrityError as exc:
        raise StaleEditError(f"{what} was written on another workstation at the same moment; " + _RELOAD) from exc


def bump(s: Session, row: t.Label | t.Roi, entries: list[t.AuditEntry], what: str) -> None:
    """Give ``row`` the id of the last of its audit ``entries`` as its new version."""
    if entries:
        flush_edit(s, what)
        row.version = entries[-1].id


def check_version(s: Session, row: t.Label | t.Roi | None, expected: int | None, what: str) -> None:
    """Refuse an edit based on ``expected`` when ``row`` is at another version (0: no row expected)."""
    if expected is None:
        return
    current = 0 if row is None else row.version
    if current == expected:
        return
    if row is None:
        raise StaleEditError(
            f"{what} was removed by another reader after you loaded it (version {expected}); " + _RELOAD
        )
    change = s.get(t.AuditEntry, current) if current else None  # the version is its audit row's id
    by = f" by {change.user} at {change.at:%Y-%m-%d %H:%M} UTC" if change is not None else ""
    raise StaleEditError(
        f"{what} was changed{by} (version {current}) after you loaded "
        f"{'it' if expected == 0 else f'version {expected}'}; " + _RELOAD
    )


def reader_of(source: str, user: str) -> str:
    """The per-reader key of a label: the user for reader labels, '' otherwise."""
    return user if source == "reader" else ""


def find(s: Session, image_id: int | None, patient_id: int | None, source: str, reader: str) -> t.Label | None:
    return s.scalar(
        select(t.Label).where(
            t.Label.image_id.is_(None) if image_id is None else t.Label.image_id == image_id,
            t.Label.patient_id.is_(None) if patient_id is None else t.Label.patient_id == patient_id,
            t.Label.source == source,
            t.Label.reader == reader,
        )
    )


def describe(image_id: int | None, patient_id: int | None, source: str, reader: str) -> str:
    target = f"image {image_id}" if image_id is not None else f"patient #{patient_id}"
    return f"the {source} label of {target}" + (f" by {reader}" if reader else "")


def set_label(
    s: Session,
    user: str,
    *,
    image_id: int | None,
    patient_id: int | None,
    label: str,
    source: str,
    birads: str | None = None,
    biopsy_confirmed: bool = False,
    note: str | None = None,
    expected_version: int | None = None,
) -> None:
    """Create or change one label row and audit every changed field."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, not {label!r}")
    if source not in LABEL_SOURCES:
        raise ValueError(f"label source must be one of {LABEL_SOURCES}, not {source!r}")
    reader = reader_of(source, user)
    what = describe(image_id, patient_id, source, reader)
    row = find(s, image_id, patient_id, source, reader)
    check_version(s, row, expected_version, what)
    entity, eid = ("image", image_id) if image_id is not None else ("patient", patient_id)
    new_values = {"label": label, "birads": birads, "biopsy_confirmed": biopsy_confirmed, "note": note}
    if row is None:
        entries = [
            audit(s, user, "set_label", entity, eid, f"{field}[{source}]", None, str(value))
            for field, value in new_values.items()
            if value not in (None, False)
        ]
        flush_edit(s, what)
        s.add(
            t.Label(
                image_id=image_id,
                patient_id=patient_id,
                source=source,
                user=user,
                reader=reader,
                version=entries[-1].id,
                **new_values,
            )
        )
        flush_edit(s, what)
        return
    entries = []
    for field, value in new_values.items():
        old = getattr(row, field)
        if old != value:
            entries.append(
                audit(
                    s,
                    user,
                    "set_label",
                    entity,
                    eid,
                    f"{field}[{source}]",
                    None if old is None else str(old),
                    None if value is None else str(value),
                )
            )
            setattr(row, field, value)
    row.user = user
    row.updated = t.utcnow()
    bump(s, row, entries, what)
    flush_edit(s, what)


def clear_label(
    s: Session,
    user: str,
    *,
    image_id: int | None,
    patient_id: int | None,
    source: str,
    expected_version: int | None = None,
) -> None:
    reader = reader_of(source, user)
    what = describe(image_id, patient_id, source, reader)
    row = find(s, image_id, patient_id, source, reader)
    check_version(s, row, expected_version, what)
    if row is not None:
        entity, eid = ("image", image_id) if image_id is not None else ("patient", patient_id)
        audit(s, user, "clear_label", entity, eid, f"label[{source}]", row.label, None)
        s.delete(row)
        flush_edit(s, what)


def label_record(r: t.Label) -> LabelRecord:
    return LabelRecord(
        label=r.label,
        source=r.source,
        user=r.user,
        updated=r.updated,
        birads=r.birads,
        biopsy_confirmed=r.biopsy_confirmed,
        note=r.note,
        version=r.version,
    )


def by_source(rows: Iterable[t.Label], me: str) -> dict[str, LabelRecord]:
    """One label per source: for reader labels this reader's (``me``), else the newest."""
    chosen: dict[str, t.Label] = {}
    for r in rows:
        cur = chosen.get(r.source)
        if cur is None or (r.user == me, r.updated, r.id) > (cur.user == me, cur.updated, cur.id):
            chosen[r.source] = r
    return {source: label_record(r) for source, r in chosen.items()}


def best(labels: dict[str, LabelRecord]) -> LabelRecord | None:
    return next((labels[src] for src in SOURCE_PRIORITY if src in labels), None)


def grouped(rows: Iterable[t.Label], key: str, me: str) -> dict[int, dict[str, LabelRecord]]:
    """Labels grouped by ``key`` ('image_id' or 'patient_id'), one per source (see :func:`by_source`)."""
    groups: dict[int, list[t.Label]] = {}
    for r in rows:
        groups.setdefault(getattr(r, key), []).append(r)
    return {k: by_source(v, me) for k, v in groups.items()}
