"""Blinded first reads in the store (table ``reader_reads``): the reader's call recorded
before the AI result is revealed, and the AI verdict shown at the reveal. One read per
(patient, reader); a recorded call cannot be changed after the reveal (audited)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from busviewer.core.store import schema as t
from busviewer.core.store.labels import audit
from busviewer.core.store.schema import utcnow

if TYPE_CHECKING:
    from busviewer.core.store.store import Store


class ReadLockedError(ValueError):
    """The AI result was revealed already: the first read stays as recorded."""


@dataclass(frozen=True)
class ReaderReadRecord:
    patient_key: str
    reader: str
    call: str
    birads: str | None
    recorded_at: datetime
    revealed_at: datetime | None = None
    ai_label: str | None = None
    ai_detail: dict | None = None

    @property
    def revealed(self) -> bool:
        return self.revealed_at is not None


def _record(row: t.ReaderRead, key: str) -> ReaderReadRecord:
    return ReaderReadRecord(
        key, row.reader, row.call, row.birads, row.recorded_at, row.revealed_at, row.ai_label, row.ai_detail
    )


def _pid(s: Session, patient_key: str) -> int:
    pid = s.scalar(select(t.Patient.id).where(t.Patient.patient_key == patient_key))
    if pid is None:
        raise KeyError(f"no patient {patient_key!r} in the store")
    return int(pid)


def record_read(
    store: Store,
    patient_key: str,
    call: str,
    birads: str | None,
    reader: str | None = None,
) -> ReaderReadRecord:
    """Record (or, before the reveal, change) the reader's first read of ``patient_key``."""
    who = reader or store.user
    with store._tx() as s:
        pid = _pid(s, patient_key)
        row = s.scalar(select(t.ReaderRead).where(t.ReaderRead.patient_id == pid, t.ReaderRead.reader == who))
        if row is not None and row.revealed_at is not None:
            raise ReadLockedError(
                f"patient {patient_key}: the AI result was revealed to {who} already; the first "
                f"read ({row.call}, BI-RADS {row.birads or '-'}) stays as recorded"
            )
        old = None if row is None else f"{row.call} {row.birads or '-'}"
        if row is None:
            row = t.ReaderRead(patient_id=pid, reader=who)
            s.add(row)
        row.call, row.birads, row.recorded_at = call, birads, utcnow()
        audit(s, who, "reader_call", "reader_read", pid, "call", old, f"{call} {birads or '-'}")
        s.flush()
        return _record(row, patient_key)


def reveal_read(
    store: Store,
    patient_key: str,
    ai_label: str | None,
    ai_detail: dict[str, Any] | None,
    reader: str | None = None,
) -> ReaderReadRecord:
    """Mark the AI result revealed to the reader, keeping the AI verdict shown then."""
    who = reader or store.user
    with store._tx() as s:
        pid = _pid(s, patient_key)
        row = s.scalar(select(t.ReaderRead).where(t.ReaderRead.patient_id == pid, t.ReaderRead.reader == who))
        if row is None:
            raise KeyError(f"patient {patient_key}: {who} has not recorded a first read; record it before the reveal")
        if row.revealed_at is None:
            row.revealed_at, row.ai_label, row.ai_detail = utcnow(), ai_label, ai_detail
            audit(s, who, "reveal_ai", "reader_read", pid, "ai_label", None, ai_label)
        return _record(row, patient_key)


def reads(store: Store, reader: str | None = None, patient_key: str | None = None) -> list[ReaderReadRecord]:
    """Recorded reads (of one reader / one patient), oldest first."""
    with store._sessions() as s:
        q = select(t.ReaderRead, t.Patient.patient_key).join(t.Patient, t.Patient.id == t.ReaderRead.patient_id)
        if reader is not None:
            q = q.where(t.ReaderRead.reader == reader)
        if patient_key is not None:
            q = q.where(t.Patient.patient_key == patient_key)
        return [_record(row, key) for row, key in s.execute(q.order_by(t.ReaderRead.recorded_at, t.ReaderRead.id))]


__all__ = ["ReadLockedError", "ReaderReadRecord", "reads", "record_read", "reveal_read"]
