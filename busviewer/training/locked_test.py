"""The locked test set: patients chosen once and kept out of every later training run.

A model is only comparable with the one it may replace when both are measured on the
same patients, and only honest when those patients never influenced its training. The
locked test set is therefore chosen once (a stratified, seeded fraction of the labelled
patients), saved, and from then on:

- every training run started from the GUI uses exactly these patients as its test part
  (those of them still present in the selected data) and draws its training and
  validation patients, and any cross-validation folds, from the *other* patients only;
- patients added to the store later never enter it automatically;
- it is never changed silently: :func:`reset_locked_test` archives the file (it is not
  deleted) and the caller audits the reset (the GUI asks for confirmation and writes
  ``Store.log``).

File: ``data_dir()/locked_test_set.json``, written atomically::

    {"format": "busviewer-locked-test/1", "created": "2025-01-31T10:12:00+00:00",
     "seed": 0, "fraction": 0.15, "stratify": "any",
     "patients": ["P001", ...],
     "counts": {"patients": 12, "benign": 8, "malignant": 4, "images": 30,
                "candidates": 80},
     "store": "sqlite:////home/.../store.sqlite"}

No Qt, no torch.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from busviewer.core.fileio import atomic_write_text
from busviewer.training.splits import (
    Split,
    SplitPlan,
    kfold_splits,
    part_counts,
    patient_labels,
    select,
    split_patients,
)

LOCKED_TEST_FORMAT = "busviewer-locked-test/1"
LOCKED_TEST_NAME = "locked_test_set.json"


class LockedTestError(Exception):
    """The locked test set file is unusable, or an operation on it is not allowed."""


class LockedTestExistsError(LockedTestError):
    """A locked test set exists already; it is never replaced without an explicit reset."""


@dataclass(frozen=True)
class LockedTestSet:
    """The locked patients and how they were chosen."""

    patients: tuple[str, ...]
    created: str
    seed: int
    fraction: float
    counts: dict[str, int] = field(default_factory=dict)
    stratify: str = "any"
    store: str = ""

    def __contains__(self, patient: object) -> bool:
        return patient in set(self.patients)

    def __len__(self) -> int:
        return len(self.patients)

    @property
    def created_datetime(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.created)
        except ValueError:
            return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LOCKED_TEST_FORMAT,
            "created": self.created,
            "seed": self.seed,
            "fraction": self.fraction,
            "stratify": self.stratify,
            "patients": list(self.patients),
            "counts": dict(self.counts),
            "store": self.store,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "locked test set") -> LockedTestSet:
        if not isinstance(d, Mapping) or d.get("format") != LOCKED_TEST_FORMAT:
            raise LockedTestError(
                f"{source}: not a locked test set file (format {d.get('format')!r}, expected {LOCKED_TEST_FORMAT!r})"
                if isinstance(d, Mapping)
                else f"{source}: not a JSON object"
            )
        patients = d.get("patients")
        if not isinstance(patients, list) or not all(isinstance(p, str) for p in patients):
            raise LockedTestError(f"{source}: 'patients' must be a list of patient ids")
        if len(set(patients)) != len(patients):
            raise LockedTestError(f"{source}: a patient is listed twice")
        try:
            return cls(
                patients=tuple(patients),
                created=str(d["created"]),
                seed=int(d["seed"]),
                fraction=float(d["fraction"]),
                counts={str(k): int(v) for k, v in dict(d.get("counts") or {}).items()},
                stratify=str(d.get("stratify", "any")),
                store=str(d.get("store", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LockedTestError(f"{source}: missing or invalid field ({exc})") from None


# ---------------------------------------------------------------------------- files
def locked_test_path(directory: str | Path | None = None) -> Path:
    """``<data_dir()>/locked_test_set.json`` (or in ``directory``)."""
    if directory is None:
        from busviewer.core.paths import data_dir

        directory = data_dir()
    return Path(directory) / LOCKED_TEST_NAME


def load_locked_test(path: str | Path | None = None) -> LockedTestSet | None:
    """The saved locked test set, or ``None`` when none has been created.

    A damaged file raises :class:`LockedTestError` (it is never silently replaced).
    """
    p = Path(path) if path is not None else locked_test_path()
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LockedTestError(f"{p}: cannot read the locked test set ({exc})") from None
    return LockedTestSet.from_dict(data, str(p))


def save_locked_test(locked: LockedTestSet, path: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Write ``locked`` atomically; refuses to replace an existing set unless ``overwrite``."""
    p = Path(path) if path is not None else locked_test_path()
    if p.exists() and not overwrite:
        raise LockedTestExistsError(f"{p}: a locked test set exists already; reset it explicitly first")
    atomic_write_text(p, json.dumps(locked.to_dict(), indent=1))
    return p


def reset_locked_test(path: str | Path | None = None) -> Path | None:
    """Retire the locked test set: the file is moved to ``locked_test_set.reset-<time>.json``
    next to it (kept for the record). Returns the archive path (``None`` if there was no set).
    The caller audits the reset (``Store.log``)."""
    p = Path(path) if path is not None else locked_test_path()
    if not p.is_file():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    archive = p.with_name(f"{p.stem}.reset-{stamp}{p.suffix}")
    os.replace(p, archive)
    return archive


# ------------------------------------------------------------------------ choosing
def _has(obj: Any, *names: str) -> bool:
    return all(hasattr(obj, n) for n in names)


def choose_locked_patients(labels: Mapping[str, int], fraction: float, seed: int = 0) -> list[str]:
    """A stratified, seeded choice of ``fraction`` of the patients (per class: round(n_c *
    fraction), at least one when the class has 3 or more patients, so both classes are
    tested). Deterministic: patients are sorted before the seeded shuffle."""
    if not 0 < fraction < 1:
        raise ValueError("the locked test fraction must be between 0 and 1 (exclusive)")
    rng = np.random.default_rng([int(seed), 104729])
    by_class: dict[int, list[str]] = {}
    for p in sorted(labels):
        by_class.setdefault(int(labels[p]), []).append(p)
    chosen: list[str] = []
    for c in sorted(by_class):
        ids = by_class[c]
        k = int(math.floor(len(ids) * fraction + 0.5))
        if len(ids) >= 3:
            k = max(k, 1)
        k = min(k, len(ids) - 1) if len(ids) > 1 else 0  # leave each class some training patients
        order = rng.permutation(len(ids))
        chosen += [ids[i] for i in order[:k]]
    return sorted(chosen)


def create_locked_test(
    samples: Sequence[Any],
    fraction: float = 0.15,
    seed: int = 0,
    *,
    path: str | Path | None = None,
    store: str = "",
    stratify: str = "any",
) -> LockedTestSet:
    """Choose and save the locked test set from ``samples`` (objects with ``patient`` and
    ``label`` 0/1, e.g. :class:`busviewer.training.data.Sample`). Raises
    :class:`LockedTestExistsError` when one exists already."""
    p = Path(path) if path is not None else locked_test_path()
    if p.exists():
        raise LockedTestExistsError(f"{p}: a locked test set exists already; reset it explicitly first")
    labels = patient_labels(samples, stratify)
    if len(labels) < 3:
        raise LockedTestError(f"only {len(labels)} labelled patient(s): too few to set a test set aside")
    patients = choose_locked_patients(labels, fraction, seed)
    if not patients:
        raise LockedTestError(f"a fraction of {fraction:.0%} of {len(labels)} patients selects nobody")
    chosen = set(patients)
    counts = {
        "patients": len(patients),
        "benign": sum(1 for q in patients if labels[q] == 0),
        "malignant": sum(1 for q in patients if labels[q] == 1),
        "images": sum(1 for s in samples if s.patient in chosen),
        "candidates": len(labels),
    }
    locked = LockedTestSet(
        patients=tuple(patients),
        created=datetime.now(UTC).replace(microsecond=0).isoformat(),
        seed=int(seed),
        fraction=float(fraction),
        counts=counts,
        stratify=stratify,
        store=store,
    )
    save_locked_test(locked, p)
    return locked


# --------------------------------------------------------------------------- plans
def plan_with_locked_test(
    samples: Sequence[Any],
    locked: LockedTestSet,
    val_fraction: float = 0.15,
    folds: int = 0,
    seed: int = 0,
    stratify: str = "any",
) -> SplitPlan:
    """A :class:`SplitPlan` whose test part is exactly the locked patients present in
    ``samples`` and whose train/validation parts (and cross-validation folds, ``folds`` >= 2)
    come from the remaining patients: stratified by patient label and seeded.

    ``val_fraction`` is a fraction of the remaining (non-locked) patients. Locked patients
    absent from ``samples`` (filtered out, or no usable images) are simply not tested;
    they never join train or validation either.
    """
    labels = patient_labels(samples, stratify)
    locked_ids = set(locked.patients)
    test = sorted(p for p in labels if p in locked_ids)
    rest = {p: y for p, y in labels.items() if p not in locked_ids}
    if len(rest) < 2:
        raise ValueError(f"only {len(rest)} patient(s) outside the locked test set: too few to train and validate")
    fixed_tv = split_patients(rest, val_fraction=val_fraction, test_fraction=0.0, seed=seed)
    fixed = Split(train=fixed_tv.train, val=fixed_tv.val, test=test)
    fixed.check_disjoint()
    cv = kfold_splits(rest, folds, val_fraction, seed) if folds and folds >= 2 else []
    plan = SplitPlan(
        fixed=fixed,
        folds=cv,
        seed=seed,
        stratify=stratify,
        val_fraction=val_fraction,
        test_fraction=len(test) / max(len(labels), 1),
    )
    plan.counts = part_counts(list(samples), fixed)
    check_plan(plan, locked)
    return plan


def check_plan(plan: SplitPlan, locked: LockedTestSet) -> None:
    """Raise ``ValueError`` if a locked patient is in any training or validation part
    (of the fixed split or of a fold), or if the fixed test part holds anyone else."""
    locked_ids = set(locked.patients)
    for name, split in [("fixed split", plan.fixed), *[(f"fold {i + 1}", f) for i, f in enumerate(plan.folds)]]:
        leaked = sorted(locked_ids & (set(split.train) | set(split.val)))
        if leaked:
            raise ValueError(f"{name}: locked test patient(s) {leaked[:5]} in training/validation")
        split.check_disjoint()
    extra = sorted(set(plan.fixed.test) - locked_ids)
    if extra:
        raise ValueError(f"the test part holds patients outside the locked test set: {extra[:5]}")


def plan_to_json(plan: SplitPlan, locked: LockedTestSet, samples: Iterable[Any] = ()) -> dict[str, Any]:
    """The plan as saved by :meth:`SplitPlan.save`, plus a ``locked_test`` note (ignored by
    :meth:`SplitPlan.from_dict`)."""
    present = {s.patient for s in samples if _has(s, "patient")}
    d = plan.to_dict()
    d["locked_test"] = {
        "created": locked.created,
        "seed": locked.seed,
        "fraction": locked.fraction,
        "patients": len(locked.patients),
        "absent_from_data": sorted(set(locked.patients) - present) if present else [],
    }
    return d


def save_plan(plan: SplitPlan, locked: LockedTestSet, path: str | Path, samples: Iterable[Any] = ()) -> Path:
    """Write the plan (with its ``locked_test`` note) atomically to ``path``."""
    p = Path(path)
    atomic_write_text(p, json.dumps(plan_to_json(plan, locked, samples), indent=1))
    return p


def select_locked(samples: Sequence[Any], locked: LockedTestSet) -> list[Any]:
    """The samples of the locked patients."""
    return select(samples, locked.patients)


__all__ = [
    "LOCKED_TEST_FORMAT",
    "LOCKED_TEST_NAME",
    "LockedTestError",
    "LockedTestExistsError",
    "LockedTestSet",
    "check_plan",
    "choose_locked_patients",
    "create_locked_test",
    "load_locked_test",
    "locked_test_path",
    "plan_to_json",
    "plan_with_locked_test",
    "reset_locked_test",
    "save_locked_test",
    "save_plan",
    "select_locked",
]
