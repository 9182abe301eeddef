"""Operating points and the calibration a model card carries (torch-free, Qt-free).

A card may record ``calibration`` (``{"temperature": T, ...}``, fitted on the validation
patients by temperature scaling) and ``operating_points`` (``{name: threshold}`` on the
calibrated malignant probability, see :mod:`busviewer.training.calibration`). Older
cards have neither: they work with ``T = 1`` and threshold 0.5 at every operating point.

An image is called malignant when its (calibrated) malignant probability is ``>=`` the
threshold of the operating point in force; the patient vote counts those calls (a tie is
malignant, :func:`busviewer.ai.voting.patient_verdict`).

Indeterminate band: a probability close to the threshold in force is not a call. The band
is the open interval ``(t - m, t + m)`` around the threshold ``t`` with ``m = DEFAULT_BAND_MARGIN`` (0.10),
narrowed so that it never reaches past halfway to the threshold of a neighbouring
operating point of the same card. A card without operating points (t = 0.5 everywhere)
gets the documented default band ``(0.40, 0.60)``. An image whose calibrated probability
falls in the band is "indeterminate": it keeps its lean (the call at ``t``) for reference,
but it does not vote (see :mod:`busviewer.ai.results`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

OPERATING_POINTS: tuple[str, ...] = ("high_sensitivity", "balanced", "high_specificity")
DEFAULT_OPERATING_POINT = "balanced"
DEFAULT_THRESHOLD = 0.5
DEFAULT_BAND_MARGIN = 0.10
TITLES = {"high_sensitivity": "High sensitivity", "balanced": "Balanced", "high_specificity": "High specificity"}
HELP = {
    "high_sensitivity": "misses fewest cancers: the highest threshold that found >= 95% of the malignant "
    "validation images",
    "balanced": "best sensitivity + specificity on the validation images (Youden's J)",
    "high_specificity": "fewest false alarms: the lowest threshold that cleared >= 95% of the benign validation images",
}


def check_operating_point(name: str) -> str:
    """``name`` if it is an operating point, else ValueError listing the choices."""
    if name not in OPERATING_POINTS:
        raise ValueError(f"unknown operating point {name!r}; choose one of {', '.join(OPERATING_POINTS)}")
    return name


def _field(card: Any, key: str) -> Any:
    if card is None:
        return None
    if isinstance(card, Mapping):
        return card.get(key)
    return getattr(card, key, None)


def card_temperature(card: Any) -> float:
    """The card's temperature (a ModelCard or its dict); 1.0 when it has none."""
    cal = _field(card, "calibration")
    t = cal.get("temperature") if isinstance(cal, Mapping) else None
    if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t > 0:
        return float(t)
    return 1.0


def card_thresholds(card: Any) -> dict[str, float]:
    """Threshold of every operating point (a ModelCard, its dict, or None); 0.5 where the
    card has none (older models)."""
    ops = _field(card, "operating_points")
    out = {}
    for name in OPERATING_POINTS:
        v = ops.get(name) if isinstance(ops, Mapping) else None
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
        out[name] = float(v) if ok and v is not None else DEFAULT_THRESHOLD
    return out


def has_operating_points(card: Any) -> bool:
    return isinstance(_field(card, "operating_points"), Mapping)


def threshold_for(card: Any, operating_point: str = DEFAULT_OPERATING_POINT) -> float:
    """The card's threshold at ``operating_point``."""
    return card_thresholds(card)[check_operating_point(operating_point)]


def indeterminate_band(
    thresholds: Mapping[str, float] | None,
    operating_point: str = DEFAULT_OPERATING_POINT,
    margin: float = DEFAULT_BAND_MARGIN,
) -> tuple[float, float]:
    """``(low, high)``: probabilities ``low < p < high`` are indeterminate at ``operating_point``
    (``thresholds`` as from :func:`card_thresholds`; None: a card without operating points)."""
    check_operating_point(operating_point)
    ts = dict(thresholds) if thresholds else dict.fromkeys(OPERATING_POINTS, DEFAULT_THRESHOLD)
    t = float(ts.get(operating_point, DEFAULT_THRESHOLD))
    low, high = max(0.0, t - margin), min(1.0, t + margin)
    for name, other in ts.items():
        other = float(other)
        if name == operating_point or other == t:
            continue
        if other < t:
            low = max(low, (t + other) / 2)
        else:
            high = min(high, (t + other) / 2)
    return round(low, 9), round(high, 9)  # 0.2 + 0.1 is 0.30000000000000004: p = 0.3 sits on the edge


def is_indeterminate(p: float, band: tuple[float, float]) -> bool:
    return band[0] < p < band[1]  # open: p exactly 0.10 from the threshold is a call


def describe_band(band: tuple[float, float]) -> str:
    """e.g. ``"indeterminate if 0.40 < p < 0.60"``."""
    return f"indeterminate if {band[0]:.2f} < p < {band[1]:.2f}"


def describe(operating_point: str, threshold: float | None) -> str:
    """e.g. ``"Balanced operating point (malignant if p >= 0.43)"``."""
    title = TITLES.get(operating_point, operating_point)
    if threshold is None:
        return f"{title} operating point (thresholds differ between the model versions shown)"
    return f"{title} operating point (malignant if p \u2265 {threshold:.2f})"


__all__ = [
    "DEFAULT_BAND_MARGIN",
    "DEFAULT_OPERATING_POINT",
    "DEFAULT_THRESHOLD",
    "HELP",
    "OPERATING_POINTS",
    "TITLES",
    "card_temperature",
    "card_thresholds",
    "check_operating_point",
    "describe",
    "describe_band",
    "has_operating_points",
    "indeterminate_band",
    "is_indeterminate",
    "threshold_for",
]
