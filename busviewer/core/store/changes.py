"""A cheap "has the store changed?" marker for readers in other processes (the worklist).

Every write that matters to the worklist adds an audit row (import, labels, review, ROIs)
or a prediction; both ids only grow, so their maxima change exactly when someone wrote.
Two primary-key maxima: cheap on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from busviewer.core.store import schema as t


def change_marker(store: Any) -> tuple[int, int]:
    """(newest audit id, newest prediction id) of ``store`` (a :class:`Store`)."""
    with store.engine.connect() as conn:
        audit = conn.scalar(select(func.max(t.AuditEntry.id)))
        pred = conn.scalar(select(func.max(t.Prediction.id)))
    return int(audit or 0), int(pred or 0)
