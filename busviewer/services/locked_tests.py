"""The locked test set: patients set aside once, so every model is tested on the same ones.

Use cases of the training wizard and ``busviewer data locked-test``: show, create, reset
(audited in the store). The file format is :mod:`busviewer.training.locked_test`'s.
No Qt; torch is not imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from busviewer.core.store.actions import AuditAction
from busviewer.services.training_data import CLASSES


def load() -> tuple[Any, str]:
    """``(locked test set or None, problem)``: a damaged file is reported, not used."""
    from busviewer.training.locked_test import LockedTestError, load_locked_test

    try:
        return load_locked_test(), ""
    except LockedTestError as exc:
        return None, f"The locked test set file is damaged and was not used: {exc}"


def create(store: Any, fraction: float, seed: int = 0) -> Any:
    """Set aside ``fraction`` of the labelled patients (stratified by class) as the locked
    test set; LockedTestExistsError if one exists (reset it first). Audited."""
    from busviewer.training.data import samples_from_items
    from busviewer.training.locked_test import create_locked_test

    items = store.training_items(label_sources=None, use_rois=False, classes=CLASSES)
    samples = samples_from_items(items).samples
    locked = create_locked_test(samples, fraction, seed, store=str(getattr(store, "url", "")))
    store.log(
        AuditAction.CREATE_LOCKED_TEST,
        "locked_test",
        None,
        "patients",
        None,
        json.dumps(
            {
                "created": locked.created,
                "seed": locked.seed,
                "fraction": locked.fraction,
                "counts": locked.counts,
                "patients": list(locked.patients),
            }
        ),
    )
    return locked


def reset(store: Any) -> Path | None:
    """Retire the locked test set (its file is archived, not deleted); audited with what it
    held. Returns the archive path (None if there was no set)."""
    from busviewer.training.locked_test import LockedTestError, load_locked_test, reset_locked_test

    try:
        old = load_locked_test()
        desc = json.dumps(old.to_dict()) if old is not None else None
    except LockedTestError as exc:
        desc = f"damaged file: {exc}"
    archive = reset_locked_test()
    store.log(
        AuditAction.RESET_LOCKED_TEST,
        "locked_test",
        None,
        "patients",
        desc,
        f"archived as {archive}" if archive else None,
    )
    return archive


def describe(locked: Any) -> str:
    """One line: size, classes and creation of a locked test set."""
    counts = locked.counts if isinstance(locked.counts, dict) else {}
    per_class = ", ".join(f"{k} {v}" for k, v in counts.items())
    return (
        f"{len(locked.patients)} patients"
        + (f" ({per_class})" if per_class else "")
        + f", created {locked.created.replace('T', ' ')[:16]} UTC, seed {locked.seed}"
    )


__all__ = ["create", "describe", "load", "reset"]
