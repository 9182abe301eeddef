"""Patient analysis results and their summary at an operating point (torch-free, Qt-free).

:func:`summarise` turns per-image predictions into per-model patient verdicts at one
operating point: each image is called malignant when its calibrated malignant probability
is ``>=`` the threshold of the model that made the prediction (by weights sha256; 0.5 for
a model without operating points), and the patient vote counts those calls (a tie is
malignant).

Indeterminate images: a probability inside the model's indeterminate band at the
operating point (:func:`busviewer.core.operating.indeterminate_band`) is not a call. Such
an image keeps its lean in ``label`` but does not vote: the patient verdict is the
majority of the determinate images (a tie is still malignant), and a patient whose
images are all indeterminate is ``"indeterminate"``.

Images outside the training data (input guard, :mod:`busviewer.core.input_guard`):
their model output is withheld (``outside``: image id -> reason); they neither vote nor
count as a disagreement, unless the reader overrode the flag (``overridden``: image id
-> reader), in which case they are summarised like any other image. A patient with no
image left to vote is ``"not classified"`` (all outside) or ``"indeterminate"``.

:meth:`PatientAnalysis.at` re-summarises at another operating point without running any
model, so the reader can switch points on results already shown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from busviewer.ai.voting import BENIGN, MALIGNANT, patient_verdict
from busviewer.core.operating import (
    DEFAULT_OPERATING_POINT,
    DEFAULT_THRESHOLD,
    card_thresholds,
    check_operating_point,
    indeterminate_band,
    is_indeterminate,
)

INDETERMINATE = "indeterminate"
NOT_CLASSIFIED = "not classified"

ARCHITECTURE_ORDER = ("ensemble", "vgg16")


@dataclass(frozen=True)
class ImagePrediction:
    """One model's (calibrated) output for one image; ``label`` is the call at the
    operating point the analysis was summarised at."""

    image_id: int
    frame: int
    roi_id: int | None
    architecture: str
    model_name: str
    model_version: int
    probabilities: dict[str, float]
    malignant_probability: float
    label: str
    model_sha256: str = ""


@dataclass(frozen=True)
class ModelVerdict:
    architecture: str
    label: str
    benign_votes: int
    malignant_votes: int
    tie_decided: bool
    mean_malignant_probability: float | None  # None: every image is outside the training data
    benign_images: tuple[int, ...]
    malignant_images: tuple[int, ...]
    operating_point: str = DEFAULT_OPERATING_POINT
    threshold: float | None = DEFAULT_THRESHOLD  # None: the images' model versions differ in threshold
    indeterminate_images: tuple[int, ...] = ()  # in the band: shown, not counted in the vote
    band: tuple[float, float] | None = (0.4, 0.6)  # None: the images' model versions differ


@dataclass(frozen=True)
class PatientAnalysis:
    """Per-image predictions and per-model verdicts of one patient (decision support for
    research use, not a diagnosis). ``thresholds`` maps a model's weights sha256 to its
    threshold per operating point; ``stored`` marks results read back from the store."""

    patient_key: str
    predictions: dict[tuple[int, str], Any]
    verdicts: dict[str, ModelVerdict]
    disagreements: tuple[int, ...]
    problems: tuple[str, ...] = ()
    operating_point: str = DEFAULT_OPERATING_POINT
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    stored: bool = False
    indeterminate: frozenset[tuple[int, str]] = frozenset()
    outside: dict[int, str] = field(default_factory=dict)
    overridden: dict[int, str] = field(default_factory=dict)

    def is_indeterminate(self, image_id: int, architecture: str) -> bool:
        return (image_id, architecture) in self.indeterminate

    def for_image(self, image_id: int) -> dict[str, Any]:
        return {arch: p for (iid, arch), p in self.predictions.items() if iid == image_id}

    def at(self, operating_point: str) -> PatientAnalysis:
        """The same predictions summarised at another operating point."""
        return summarise(
            self.patient_key,
            self.predictions,
            self.thresholds,
            operating_point,
            self.problems,
            self.stored,
            self.outside,
            self.overridden,
        )

    def guarded(self, outside: Mapping[int, str], overridden: Mapping[int, str] | None = None) -> PatientAnalysis:
        """The same predictions with the input guard's findings applied."""
        return summarise(
            self.patient_key,
            self.predictions,
            self.thresholds,
            self.operating_point,
            self.problems,
            self.stored,
            outside,
            overridden,
        )


def image_numbers(records: Any) -> dict[int, int]:
    """``{image_id: n}``: the numbers the app shows (#1, #2... in the store's order of the
    patient's images), used by the CLI and the report too."""
    return {int(r.id): n for n, r in enumerate(records, start=1)}


def thresholds_by_sha(cards: Mapping[str, Any] | Any) -> dict[str, dict[str, float]]:
    """``{sha256: {operating point: threshold}}`` from cards (ModelCards or dicts), given as
    a mapping sha256 -> card or an iterable of cards."""
    items = (
        cards.items()
        if isinstance(cards, Mapping)
        else ((c.get("sha256") if isinstance(c, Mapping) else getattr(c, "sha256", ""), c) for c in cards)
    )
    return {str(sha): card_thresholds(card) for sha, card in items if sha}


def _threshold(
    pred: Any, thresholds: Mapping[str, Mapping[str, float]], operating_point: str
) -> tuple[float, tuple[float, float]]:
    """The prediction's threshold and indeterminate band at ``operating_point``."""
    per_op = thresholds.get(str(getattr(pred, "model_sha256", "") or ""))
    if per_op and operating_point in per_op:
        return float(per_op[operating_point]), indeterminate_band(per_op, operating_point)
    return DEFAULT_THRESHOLD, indeterminate_band(None, operating_point)


def summarise(
    patient_key: str,
    predictions: Mapping[tuple[int, str], Any],
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    operating_point: str = DEFAULT_OPERATING_POINT,
    problems: tuple[str, ...] = (),
    stored: bool = False,
    outside: Mapping[int, str] | None = None,
    overridden: Mapping[int, str] | None = None,
) -> PatientAnalysis:
    """Verdicts at ``operating_point`` (see the module docstring). ``predictions`` are
    frozen dataclasses with ``malignant_probability``, ``label`` and ``model_sha256``
    (:class:`ImagePrediction` or stored ``PredictionRecord``); their labels are redone."""
    check_operating_point(operating_point)
    outside = {int(k): str(v) for k, v in (outside or {}).items()}
    overridden = {int(k): str(v) for k, v in (overridden or {}).items() if int(k) not in outside}
    by_sha: dict[str, dict[str, float]] = {k: dict(v) for k, v in (thresholds or {}).items()}
    relabelled: dict[tuple[int, str], Any] = {}
    calls: dict[tuple[int, str], str] = {}
    used: dict[str, set[float]] = {}
    bands: dict[str, set[tuple[float, float]]] = {}
    unsure: set[tuple[int, str]] = set()
    for key, p in predictions.items():
        thr, band = _threshold(p, by_sha, operating_point)
        used.setdefault(key[1], set()).add(thr)
        bands.setdefault(key[1], set()).add(band)
        calls[key] = MALIGNANT if p.malignant_probability >= thr else BENIGN
        if is_indeterminate(float(p.malignant_probability), band):
            unsure.add(key)
        if p.label in (BENIGN, MALIGNANT) and calls[key] != p.label:
            p = dataclasses.replace(p, label=calls[key])
        relabelled[key] = p
    verdicts: dict[str, ModelVerdict] = {}
    for arch in sorted({a for _, a in relabelled}, key=lambda a: (a not in ARCHITECTURE_ORDER, a)):
        rows = [(iid, p) for (iid, a), p in sorted(relabelled.items()) if a == arch]
        voting = [(iid, calls[iid, arch]) for iid, _ in rows if (iid, arch) not in unsure and iid not in outside]
        probs = [float(p.malignant_probability) for iid, p in rows if iid not in outside]
        arch_thr: float | None = used[arch].pop() if len(used[arch]) == 1 else None
        arch_band: tuple[float, float] | None = bands[arch].pop() if len(bands[arch]) == 1 else None
        unsure_ids = tuple(iid for iid, _ in rows if (iid, arch) in unsure and iid not in outside)
        votes: tuple[int, int, bool, tuple[int, ...], tuple[int, ...]]
        if voting:
            v = patient_verdict(voting)
            label, votes = (
                v.label,
                (
                    v.benign_votes,
                    v.malignant_votes,
                    v.tie_decided,
                    v.benign_images,
                    v.malignant_images,
                ),
            )
        else:
            label, votes = (INDETERMINATE if unsure_ids else NOT_CLASSIFIED), (0, 0, False, (), ())
        verdicts[arch] = ModelVerdict(
            architecture=arch,
            label=label,
            benign_votes=votes[0],
            malignant_votes=votes[1],
            tie_decided=votes[2],
            mean_malignant_probability=(sum(probs) / len(probs)) if probs else None,
            benign_images=votes[3],
            malignant_images=votes[4],
            operating_point=operating_point,
            threshold=arch_thr,
            indeterminate_images=unsure_ids,
            band=arch_band,
        )
    image_ids = sorted({iid for iid, _ in relabelled if iid not in outside})
    disagreements = tuple(
        iid for iid in image_ids if len({p.label for (i, _), p in relabelled.items() if i == iid}) > 1
    )
    return PatientAnalysis(
        patient_key,
        relabelled,
        verdicts,
        disagreements,
        tuple(problems),
        operating_point,
        by_sha,
        stored,
        frozenset(k for k in unsure if k[0] not in outside),
        outside,
        overridden,
    )


def stored_analysis(
    store: Any, patient_key: str, operating_point: str = DEFAULT_OPERATING_POINT
) -> PatientAnalysis | None:
    """The latest stored predictions of a patient summarised at ``operating_point`` (no
    model is run); thresholds come from the model cards recorded in the store."""
    records = store.images(patient_key)
    latest = store.latest_predictions([r.id for r in records])
    if not latest:
        return None
    cards = store.model_cards({p.model_sha256 for p in latest.values()})
    outside, overridden = guard_findings(store, records, check=False)
    return summarise(
        patient_key,
        latest,
        thresholds_by_sha(cards),
        operating_point,
        stored=True,
        outside=outside,
        overridden=overridden,
    )


def guard_findings(store: Any, records: Any, check: bool = True) -> tuple[dict[int, str], dict[int, str]]:
    """``(outside, overridden)`` for ``records`` from the input guard's findings in the
    store; with ``check``, images not yet checked on their current content are checked
    first (reads their pixels: call it off the GUI thread)."""
    from busviewer.core.store.flags import guard_images, image_flags

    records = list(records)
    if check:
        flags = guard_images(store, records)
    else:
        current = {r.id: r.content_hash for r in records}
        flags = {i: f for i, f in image_flags(store, current).items() if f.image_hash == current[i]}
    outside = {i: f.reason for i, f in flags.items() if f.blocks}
    overridden = {i: str(f.overridden_by) for i, f in flags.items() if f.outside and not f.blocks}
    return outside, overridden


def guard_analysis(store: Any, analysis: PatientAnalysis) -> PatientAnalysis:
    """``analysis`` with the input guard applied (checks unchecked images; off the GUI thread)."""
    outside, overridden = guard_findings(store, store.images(analysis.patient_key))
    return analysis.guarded(outside, overridden)


__all__ = [
    "INDETERMINATE",
    "NOT_CLASSIFIED",
    "ImagePrediction",
    "ModelVerdict",
    "PatientAnalysis",
    "guard_analysis",
    "guard_findings",
    "image_numbers",
    "stored_analysis",
    "summarise",
    "thresholds_by_sha",
]
