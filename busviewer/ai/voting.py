"""Patient-level decision and the global patient recognition rate (seed 001).

A patient P with N_P images of which B_P are predicted benign is benign if
``B_P > N_P - B_P`` and malignant otherwise, so a tie is malignant.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

BENIGN = "benign"
MALIGNANT = "malignant"

#: What identifies an image in a vote (an image id, a path...).
ImageKey = TypeVar("ImageKey", bound=Hashable)


@dataclass(frozen=True)
class PatientVerdict(Generic[ImageKey]):
    """Majority vote over a patient's images (decision support, not a diagnosis)."""

    label: str
    benign_votes: int
    malignant_votes: int
    tie_decided: bool
    mean_malignant_probability: float | None
    benign_images: tuple[ImageKey, ...]
    malignant_images: tuple[ImageKey, ...]

    @property
    def n_images(self) -> int:
        return self.benign_votes + self.malignant_votes


def _vote(value: Any, threshold: float) -> tuple[str, float | None]:
    """One image's vote and malignant probability (None when only a label is known)."""
    if hasattr(value, "malignant_probability"):  # a Prediction
        value = value.malignant_probability
    if isinstance(value, str):
        label = value.strip().lower()
        if label not in (BENIGN, MALIGNANT):
            raise ValueError(f"a vote label must be 'benign' or 'malignant', got {value!r}")
        return label, None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a vote is a malignant probability or a label, got {value!r}")
    p = float(value)
    if not (0.0 <= p <= 1.0) or math.isnan(p):
        raise ValueError(f"malignant probability must be in [0, 1], got {value!r}")
    return (MALIGNANT if p >= threshold else BENIGN), p


def patient_verdict(per_image: Sequence[tuple[ImageKey, Any]], threshold: float = 0.5) -> PatientVerdict[ImageKey]:
    """Patient label from ``(image_id, vote)`` pairs.

    A vote is a malignant probability in [0, 1] (malignant when ``>= threshold``), a label
    ``"benign"``/``"malignant"``, or a :class:`~busviewer.ai.inference.Prediction`.
    Benign only if benign votes outnumber malignant votes; a tie is malignant (seed 001).
    """
    if len(per_image) == 0:
        raise ValueError("patient_verdict needs at least one image")
    benign: list[ImageKey] = []
    malignant: list[ImageKey] = []
    probs: list[float] = []
    for item in per_image:
        image_id, value = item
        label, p = _vote(value, threshold)
        (benign if label == BENIGN else malignant).append(image_id)
        if p is not None:
            probs.append(p)
    b, m = len(benign), len(malignant)
    return PatientVerdict(
        label=BENIGN if b > m else MALIGNANT,
        benign_votes=b,
        malignant_votes=m,
        tie_decided=b == m,
        mean_malignant_probability=(sum(probs) / len(probs)) if probs else None,
        benign_images=tuple(benign),
        malignant_images=tuple(malignant),
    )


def patient_recognition_rate(per_patient: Mapping[Hashable, tuple[int, int]]) -> float:
    """Global patient recognition rate (seed 001, eq. 2): ``(1/N) * sum_P Ncor_P / N_P``.

    ``per_patient`` maps each patient to ``(n_correct_images, n_images)``.
    """
    if len(per_patient) == 0:
        raise ValueError("patient_recognition_rate needs at least one patient")
    total = 0.0
    for patient, (n_correct, n_images) in per_patient.items():
        if n_images <= 0 or not 0 <= n_correct <= n_images:
            raise ValueError(
                f"patient {patient!r}: need 0 <= n_correct <= n_images and n_images > 0, got ({n_correct}, {n_images})"
            )
        total += n_correct / n_images
    return total / len(per_patient)
