"""Training data use cases (the training wizard's data page and ``busviewer data check``):
no Qt, no torch at module level, so they run in a worker thread and are tested on their own.

- :class:`FilteredStore` restricts ``Store.training_items`` to labels set or changed since a
  date and to included patients; the training run, its resume and the evaluation of the
  active model all read the data through it, so they see exactly the same images.
- :func:`load_candidates` / :func:`summarize` count images and patients per class, and
  :func:`data_warnings` says what a reader should know before training (too few patients,
  class imbalance, conflicting labels, duplicate images across patients).
- :func:`near_duplicates` compares 32x32 grey thumbnails (normalised correlation) across
  patients; it decodes every image and is meant for a worker.

Runs (preparing, finding and reading run directories) are in :mod:`busviewer.services.training_runs`.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from busviewer.training.events import fmt_duration

CLASSES = ("benign", "malignant")
LABEL_SOURCE_TITLES = {
    "import": "Imported labels (from the folder or manifest)",
    "reader": "Reader labels (set in this app)",
    "biopsy": "Biopsy-confirmed labels",
}
#: Warning thresholds (seeds 001-004 work with hundreds of patients per class).
MIN_PATIENTS_PER_CLASS = 20
MAX_IMBALANCE = 3.0
NEAR_DUPLICATE_CORRELATION = 0.95
THUMB_SIZE = 32
WIZARD_FILE = "wizard.json"
WIZARD_SPLIT = "wizard_split.json"
WIZARD_FORMAT = "busviewer-wizard-run/1"


def as_utc(dt: datetime) -> datetime:
    """Naive datetimes from SQLite are UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


# ------------------------------------------------------------------ filtered store
class FilteredStore:
    """A store whose ``training_items`` keep only labels updated on/after ``since`` and
    patients not in ``excluded``; everything else is delegated to the wrapped store."""

    def __init__(self, store: Any, since: datetime | None = None, excluded: Iterable[str] = ()) -> None:
        self._store = store
        self.since = as_utc(since) if since is not None else None
        self.excluded = frozenset(excluded)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def training_items(
        self, label_sources: Iterable[str] | None = None, use_rois: bool = False, classes: Iterable[str] = CLASSES
    ) -> list[Any]:
        items = self._store.training_items(label_sources=label_sources, use_rois=use_rois, classes=classes)
        if self.excluded:
            items = [it for it in items if str(it.patient_key) not in self.excluded]
        if self.since is not None:
            dates = label_dates(self._store)
            items = [it for it in items if _updated_since(dates, it, self.since)]
        return items


def label_dates(store: Any) -> dict[tuple[int, str], datetime]:
    """``(image_id, source) -> when the label was last set`` (UTC)."""
    return {(rec.id, src): as_utc(lab.updated) for rec in store.images() for src, lab in rec.labels.items()}


def _updated_since(dates: dict[tuple[int, str], datetime], item: Any, since: datetime) -> bool:
    when = dates.get((item.image_id, item.label_source))
    return when is not None and when >= since


# ---------------------------------------------------------------------- counting
@dataclass
class Candidates:
    """Labelled items of the store for one label-source / ROI choice (before the date and
    patient filters), with the label dates."""

    items: list[Any]
    dates: dict[tuple[int, str], datetime]
    label_sources: tuple[str, ...] | None
    use_rois: bool
    n_roi_items: int | None = None  # lesion crops available with these label sources


def load_candidates(store: Any, label_sources: Sequence[str] | None, use_rois: bool) -> Candidates:
    """Run in a worker: the store queries behind the data page."""
    sources = list(label_sources) if label_sources else None
    items = store.training_items(label_sources=sources, use_rois=use_rois, classes=CLASSES)
    rois = len(items) if use_rois else len(store.training_items(label_sources=sources, use_rois=True, classes=CLASSES))
    return Candidates(items, label_dates(store), tuple(sources) if sources else None, use_rois, rois)


@dataclass
class PatientCount:
    patient: str
    benign: int = 0
    malignant: int = 0

    @property
    def images(self) -> int:
        return self.benign + self.malignant

    @property
    def label(self) -> str:
        """Patient label as the pipeline stratifies it: malignant if any image is."""
        return "malignant" if self.malignant else "benign"

    @property
    def conflicting(self) -> bool:
        return bool(self.benign and self.malignant)


@dataclass
class Summary:
    """What the data page shows for the current filters."""

    items: list[Any]  # the selected items (all filters applied)
    patients: dict[str, PatientCount]  # every candidate patient after the date filter (excluded ones too)
    excluded: frozenset[str]
    images_per_class: dict[str, int]
    patients_per_class: dict[str, int]
    conflicting: list[str]
    exact_duplicates: list[tuple[str, list[tuple[str, str]]]]  # (hash, [(patient, file name)])

    @property
    def n_images(self) -> int:
        return len(self.items)

    @property
    def n_patients(self) -> int:
        return sum(self.patients_per_class.values())

    @property
    def selected_patients(self) -> list[str]:
        return sorted({str(it.patient_key) for it in self.items})


def apply_date(cands: Candidates, since: datetime | None) -> list[Any]:
    if since is None:
        return list(cands.items)
    s = as_utc(since)
    return [it for it in cands.items if _updated_since(cands.dates, it, s)]


def summarize(cands: Candidates, since: datetime | None = None, excluded: Iterable[str] = ()) -> Summary:
    """Counts per class and per patient for the filters (fast; fine on the GUI thread)."""
    excluded = frozenset(excluded)
    dated = apply_date(cands, since)
    per: dict[str, PatientCount] = {}
    for it in dated:
        pc = per.setdefault(str(it.patient_key), PatientCount(str(it.patient_key)))
        if it.label == "malignant":
            pc.malignant += 1
        else:
            pc.benign += 1
    items = [it for it in dated if str(it.patient_key) not in excluded]
    img_cls = Counter(it.label for it in items)
    kept = {p: c for p, c in per.items() if p not in excluded}
    pat_cls = Counter(c.label for c in kept.values())
    conflicting = sorted(p for p, c in kept.items() if c.conflicting)
    by_hash: dict[str, dict[str, str]] = defaultdict(dict)
    seen_images: set[int] = set()
    for it in items:
        if it.image_id in seen_images or not it.content_hash:
            continue
        seen_images.add(it.image_id)
        by_hash[it.content_hash].setdefault(str(it.patient_key), Path(str(it.path)).name)
    exact = [(h, sorted(d.items())) for h, d in sorted(by_hash.items()) if len(d) > 1]
    return Summary(
        items=items,
        patients=per,
        excluded=excluded,
        images_per_class={c: img_cls.get(c, 0) for c in CLASSES},
        patients_per_class={c: pat_cls.get(c, 0) for c in CLASSES},
        conflicting=conflicting,
        exact_duplicates=exact,
    )


# ------------------------------------------------------------------ near-duplicates
@dataclass(frozen=True)
class NearDuplicate:
    image_a: int
    image_b: int
    patient_a: str
    patient_b: str
    name_a: str
    name_b: str
    correlation: float


_THUMBS: dict[tuple[str, str, int], np.ndarray | None] = {}
_THUMBS_LOCK = threading.Lock()


def thumbnail_vector(path: str | Path, frame: int = 0, size: int = THUMB_SIZE) -> np.ndarray | None:
    """A ``size x size`` grey thumbnail, zero-mean and unit-norm (``None`` for a flat image)."""
    from PIL import Image

    from busviewer.core.imageio import read_image

    rgb = read_image(path).frame(frame)
    grey = rgb.astype(np.float32).mean(axis=2)
    img = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).resize((size, size), Image.Resampling.BOX)
    v = np.asarray(img, dtype=np.float32).ravel()
    v -= v.mean()
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-6 else None


def near_duplicates(
    items: Sequence[Any],
    threshold: float = NEAR_DUPLICATE_CORRELATION,
    progress: Callable[[int, int], None] | None = None,
    cancel: Any = None,
) -> tuple[list[NearDuplicate], list[str]]:
    """Pairs of images of *different* patients whose thumbnails correlate >= ``threshold``
    (identical files are reported by :func:`summarize` instead). Returns ``(pairs,
    problems)``; unreadable images are listed in ``problems`` and skipped."""
    unique: dict[int, Any] = {}
    for it in items:
        unique.setdefault(it.image_id, it)
    rows = list(unique.values())
    vecs: list[np.ndarray] = []
    keep: list[Any] = []
    problems: list[str] = []
    for i, it in enumerate(rows):
        if cancel is not None and cancel.is_set():
            raise InterruptedError("near-duplicate check cancelled")
        key = (str(it.path), str(it.content_hash), 0)
        with _THUMBS_LOCK:
            known = key in _THUMBS
            cached = _THUMBS.get(key)
        if not known:
            try:
                cached = thumbnail_vector(it.path, 0)
            except Exception as exc:  # noqa: BLE001 - reported, the check goes on
                problems.append(f"{it.path}: {exc}")
                cached = None
            with _THUMBS_LOCK:
                _THUMBS[key] = cached
        if cached is not None:
            vecs.append(cached)
            keep.append(it)
        if progress is not None:
            progress(i + 1, len(rows))
    if len(keep) < 2:
        return [], problems
    mat = np.stack(vecs)
    patients = np.array([str(it.patient_key) for it in keep])
    hashes = np.array([str(it.content_hash) for it in keep])
    pairs: list[NearDuplicate] = []
    block = 512
    for start in range(0, len(keep), block):
        sim = mat[start : start + block] @ mat.T
        rr, cc = np.nonzero(sim >= threshold)
        for r, c in zip(rr.tolist(), cc.tolist(), strict=True):
            a = start + r
            if c <= a or patients[a] == patients[c] or hashes[a] == hashes[c]:
                continue
            ia, ib = keep[a], keep[c]
            pairs.append(
                NearDuplicate(
                    ia.image_id,
                    ib.image_id,
                    patients[a],
                    patients[c],
                    Path(str(ia.path)).name,
                    Path(str(ib.path)).name,
                    float(min(1.0, sim[r, c])),
                )
            )
    pairs.sort(key=lambda p: -p.correlation)
    return pairs, problems


# ------------------------------------------------------------------------ warnings
@dataclass(frozen=True)
class DataWarning:
    kind: str  # too_few_patients | imbalance | conflicting_labels | exact_duplicates | near_duplicates | no_data
    text: str
    blocking: bool = False


def _ids(ids: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


CHECK_TITLES = {
    "too_few_patients": f"at least {MIN_PATIENTS_PER_CLASS} patients per class",
    "imbalance": f"class balance within {MAX_IMBALANCE:.0f}:1",
    "conflicting_labels": "no patient with both benign and malignant images",
    "exact_duplicates": "no identical image under two patients",
    "near_duplicates": "no near-identical image under two patients",
}


def passed_checks(warnings: Sequence[DataWarning], near_checked: bool) -> list[str]:
    """Titles of the checks that found nothing (for a reassuring line under the warnings)."""
    found = {w.kind for w in warnings}
    if "no_data" in found:
        return []
    return [
        title
        for kind, title in CHECK_TITLES.items()
        if kind not in found and (kind != "near_duplicates" or near_checked)
    ]


def data_warnings(
    summary: Summary,
    near: Sequence[NearDuplicate] | None = None,
    min_patients: int = MIN_PATIENTS_PER_CLASS,
    max_ratio: float = MAX_IMBALANCE,
) -> list[DataWarning]:
    """What the reader should know before training on ``summary``."""
    out: list[DataWarning] = []
    img, pat = summary.images_per_class, summary.patients_per_class
    if summary.n_images == 0:
        return [DataWarning("no_data", "No labelled benign or malignant images match these filters.", True)]
    missing = [c for c in CLASSES if img[c] == 0]
    if missing:
        out.append(DataWarning("no_data", f"No {missing[0]} images are selected: the model needs both classes.", True))
    elif summary.n_patients < 5:
        out.append(
            DataWarning(
                "no_data",
                f"Only {summary.n_patients} patients are selected: at least 5 are needed "
                "for training, validation and test patients.",
                True,
            )
        )
    few = [c for c in CLASSES if 0 < pat[c] < min_patients]
    if few:
        parts = " and ".join(f"{pat[c]} {c}" for c in few)
        out.append(
            DataWarning(
                "too_few_patients",
                f"Too few patients: only {parts} patient{'s' if sum(pat[c] for c in few) != 1 else ''} "
                f"(fewer than {min_patients} per class). Test results on so few patients are very uncertain, "
                "and the model may not generalise.",
            )
        )
    if not missing:
        ratios = []
        for what, d in (("images", img), ("patients", pat)):
            hi, lo = max(d.values()), min(d.values())
            if lo > 0 and hi / lo > max_ratio:
                big = max(CLASSES, key=lambda c: d[c])
                small = min(CLASSES, key=lambda c: d[c])
                ratios.append(f"{d[big]} {big} vs {d[small]} {small} {what} ({hi / lo:.1f}:1)")
        if ratios:
            out.append(
                DataWarning(
                    "imbalance",
                    "Class imbalance: " + "; ".join(ratios) + f" — more than {max_ratio:.0f}:1. Class balancing "
                    "(Settings > Advanced) is on by default; accuracy alone will be misleading, look at "
                    "sensitivity and specificity.",
                )
            )
    if summary.conflicting:
        n = len(summary.conflicting)
        out.append(
            DataWarning(
                "conflicting_labels",
                f"{n} patient{'s have' if n != 1 else ' has'} images labelled both benign and malignant: "
                f"{_ids(summary.conflicting)}. Such a patient counts as malignant and stays in one part of the "
                "split; check the labels (or exclude the patient).",
            )
        )
    if summary.exact_duplicates:
        n = len(summary.exact_duplicates)
        ex = "; ".join(" = ".join(f"{p}/{name}" for p, name in group) for _h, group in summary.exact_duplicates[:3])
        out.append(
            DataWarning(
                "exact_duplicates",
                f"{n} identical image{'s are' if n != 1 else ' is'} filed under different patients ({ex}"
                f"{' …' if n > 3 else ''}). If such copies fall into both training and test patients, the test "
                "results are too optimistic: merge or exclude those patients.",
            )
        )
    if near:
        selected = {str(it.patient_key) for it in summary.items}
        ids = {it.image_id for it in summary.items}
        rel = [
            d
            for d in near
            if d.image_a in ids and d.image_b in ids and d.patient_a in selected and d.patient_b in selected
        ]
        if rel:
            ex = "; ".join(
                f"{d.patient_a}/{d.name_a} ≈ {d.patient_b}/{d.name_b} ({d.correlation:.2f})" for d in rel[:3]
            )
            out.append(
                DataWarning(
                    "near_duplicates",
                    f"{len(rel)} pair{'s' if len(rel) != 1 else ''} of near-identical images belong to different "
                    f"patients (thumbnail correlation ≥ {NEAR_DUPLICATE_CORRELATION:.2f}): {ex}"
                    f"{' …' if len(rel) > 3 else ''}. They may be the same lesion filed twice; if so, merge or "
                    "exclude one patient, or the test results are too optimistic.",
                )
            )
    return out


__all__ = [
    "CLASSES",
    "LABEL_SOURCE_TITLES",
    "Candidates",
    "DataWarning",
    "FilteredStore",
    "NearDuplicate",
    "PatientCount",
    "Summary",
    "data_warnings",
    "fmt_duration",
    "label_dates",
    "load_candidates",
    "near_duplicates",
    "passed_checks",
    "summarize",
    "thumbnail_vector",
]
