"""Patient-wise splits: a patient's images always stay in one part.

Patients are stratified by their patient label: a patient is malignant when any of
its images is malignant (``rule="any"``) or when most are (``rule="majority"``, a tie is
malignant). Patients whose images carry conflicting labels are therefore stratified by
one label but never split. Everything is seeded and reproducible: the same samples,
fractions and seed give the same split on every machine (patients are sorted before
shuffling). Splits are saved as JSON with the run::

    {"format": "busviewer-split/1", "seed": 0, "stratify": "any",
     "parts": {"train": [...], "val": [...], "test": [...]},
     "folds": [{"train": [...], "val": [...], "test": [...]}, ...],
     "counts": {"train": {"patients": .., "images": .., "benign": .., "malignant": ..}, ...}}
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from busviewer.training.data import CLASSES, Sample

PARTS = ("train", "val", "test")
SPLIT_FORMAT = "busviewer-split/1"


@dataclass
class Split:
    """Patient ids of each part."""

    train: list[str]
    val: list[str]
    test: list[str]

    def part(self, name: str) -> list[str]:
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}; expected one of {PARTS}")
        return getattr(self, name)

    def check_disjoint(self) -> None:
        seen: dict[str, str] = {}
        for name in PARTS:
            for p in self.part(name):
                if p in seen:
                    raise ValueError(f"patient {p!r} is in both {seen[p]} and {name}")
                seen[p] = name

    def to_dict(self) -> dict[str, list[str]]:
        return {name: list(self.part(name)) for name in PARTS}

    @classmethod
    def from_dict(cls, d: dict[str, Sequence[str]]) -> Split:
        return cls(**{name: [str(p) for p in d.get(name, [])] for name in PARTS})


@dataclass
class SplitPlan:
    """The fixed split plus optional cross-validation folds, as saved with a run."""

    fixed: Split
    folds: list[Split] = field(default_factory=list)
    seed: int = 0
    stratify: str = "any"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    counts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SPLIT_FORMAT,
            "seed": self.seed,
            "stratify": self.stratify,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "parts": self.fixed.to_dict(),
            "folds": [f.to_dict() for f in self.folds],
            "counts": self.counts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SplitPlan:
        if "parts" not in d:
            raise ValueError("not a busviewer split file (no 'parts')")
        return cls(
            fixed=Split.from_dict(d["parts"]),
            folds=[Split.from_dict(f) for f in d.get("folds", [])],
            seed=int(d.get("seed", 0)),
            stratify=str(d.get("stratify", "any")),
            val_fraction=float(d.get("val_fraction", 0.15)),
            test_fraction=float(d.get("test_fraction", 0.15)),
            counts=dict(d.get("counts", {})),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> SplitPlan:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def patient_labels(samples: Iterable[Sample], rule: str = "any") -> dict[str, int]:
    """Patient label for stratification and patient-wise ground truth.

    ``any``: malignant if any image is malignant; ``majority``: malignant if at least
    half of the images are (a tie is malignant, as in the patient vote).
    """
    per: dict[str, list[int]] = {}
    for s in samples:
        per.setdefault(s.patient, []).append(s.label)
    if rule == "any":
        return {p: int(max(v)) for p, v in per.items()}
    if rule == "majority":
        return {p: int(2 * sum(v) >= len(v)) for p, v in per.items()}
    raise ValueError("rule must be 'any' or 'majority'")


def _stratified_take(patients: dict[str, int], n_take: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Take ``n_take`` patients with class proportions kept (largest remainder); returns
    (taken, rest). Deterministic for a given rng state."""
    ids = sorted(patients)
    if n_take <= 0:
        return [], ids
    if n_take >= len(ids):
        return ids, []
    by_class: dict[int, list[str]] = {}
    for p in ids:
        by_class.setdefault(patients[p], []).append(p)
    classes = sorted(by_class)
    for c in classes:
        rng.shuffle(by_class[c])
    exact = {c: n_take * len(by_class[c]) / len(ids) for c in classes}
    quota = {c: int(math.floor(exact[c])) for c in classes}
    left = n_take - sum(quota.values())
    for c in sorted(classes, key=lambda c: (-(exact[c] - quota[c]), c))[:left]:
        quota[c] += 1
    taken = [p for c in classes for p in by_class[c][: quota[c]]]
    taken_set = set(taken)
    return sorted(taken), [p for p in ids if p not in taken_set]


def _count(n: int, fraction: float) -> int:
    """Patients for a part: round(n * fraction), at least 1 when fraction > 0 and n >= 3."""
    if fraction <= 0:
        return 0
    k = int(round(n * fraction))
    return max(k, 1 if n >= 3 else 0)


def split_patients(
    patients: dict[str, int], val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> Split:
    """Stratified patient-wise train/val/test split (fractions of patients)."""
    rng = np.random.default_rng(seed)
    n = len(patients)
    n_test = _count(n, test_fraction)
    n_val = _count(n, val_fraction)
    if n - n_test - n_val < 1:
        raise ValueError(f"too few patients ({n}) for a train/val/test split")
    test, rest = _stratified_take(patients, n_test, rng)
    val, train = _stratified_take({p: patients[p] for p in rest}, n_val, rng)
    split = Split(train=train, val=val, test=test)
    split.check_disjoint()
    return split


def kfold_splits(patients: dict[str, int], k: int, val_fraction: float = 0.15, seed: int = 0) -> list[Split]:
    """Stratified patient-wise k-fold CV: fold i tests on the i-th fold; validation
    patients (``val_fraction`` of all patients) come from the other folds."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if k < 2:
        raise ValueError("k must be >= 2")
    ids = sorted(patients)
    if len(ids) < k:
        raise ValueError(f"{len(ids)} patients cannot make {k} folds")
    y = np.array([patients[p] for p in ids])
    min_class = min(Counter(y.tolist()).values()) if len(set(y.tolist())) > 1 else 0
    if min_class >= k:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        folds = splitter.split(np.zeros(len(ids)), y)
    else:  # a class has fewer patients than folds: plain k-fold
        folds = KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(ids)))
    out = []
    n_val = _count(len(ids), val_fraction)
    for i, (rest_idx, test_idx) in enumerate(folds):
        rng = np.random.default_rng([seed, i])
        rest = {ids[j]: patients[ids[j]] for j in rest_idx}
        val, train = _stratified_take(rest, min(n_val, len(rest) - 1), rng)
        split = Split(train=train, val=val, test=sorted(ids[j] for j in test_idx))
        split.check_disjoint()
        out.append(split)
    return out


def limit_patients(patients: dict[str, int], n: int | None, seed: int = 0) -> dict[str, int]:
    """A stratified, seeded subset of ``n`` patients (all when ``n`` is None or larger)."""
    if n is None or n >= len(patients):
        return dict(patients)
    taken, _ = _stratified_take(patients, n, np.random.default_rng([seed, 7919]))
    return {p: patients[p] for p in taken}


def select(samples: Iterable[Sample], patient_ids: Iterable[str]) -> list[Sample]:
    wanted = set(patient_ids)
    return [s for s in samples if s.patient in wanted]


def part_counts(samples: Sequence[Sample], split: Split) -> dict[str, dict[str, int]]:
    out = {}
    for name in PARTS:
        part = select(samples, split.part(name))
        per = Counter(CLASSES[s.label] for s in part)
        out[name] = {"patients": len(split.part(name)), "images": len(part)} | {c: per.get(c, 0) for c in CLASSES}
    return out


def make_plan(
    samples: Sequence[Sample],
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    folds: int = 0,
    seed: int = 0,
    stratify: str = "any",
) -> SplitPlan:
    """Fixed split and (``folds`` >= 2) cross-validation folds for these samples."""
    patients = patient_labels(samples, stratify)
    fixed = split_patients(patients, val_fraction, test_fraction, seed)
    cv = kfold_splits(patients, folds, val_fraction, seed) if folds and folds >= 2 else []
    plan = SplitPlan(fixed, cv, seed, stratify, val_fraction, test_fraction)
    plan.counts = part_counts(samples, fixed)
    return plan
