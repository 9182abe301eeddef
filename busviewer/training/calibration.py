"""Probability calibration and operating points (pure numpy/scipy; no torch, no Qt).

Temperature scaling (Guo et al., ICML 2017, "On Calibration of Modern Neural Networks"):
the logits are divided by one scalar ``T > 0`` fitted by minimising the negative
log-likelihood on held-out (validation) predictions. For the 2-class softmax the malignant
probability is ``p = sigmoid(z1 - z0)``, so ``p' = sigmoid(logit(p) / T)``; ``T > 1``
softens over-confident outputs, ``T < 1`` sharpens them. It is monotone, so the ranking
(and hence the image AUC) is unchanged.

Expected calibration error (ECE) is measured on the malignant probability, the number the
reader sees: 10 equal-width bins over [0, 1] (``[0, .1), [.1, .2), ..., [.9, 1]``), and
``ECE = sum_b n_b / n * |mean p in b - fraction malignant in b|``. (This is Guo's ECE of the
malignant class; it is never smaller than the top-label variant, which folds bins ``p`` and
``1 - p`` together.)

Operating points (as S-Detect offers them) are thresholds on the calibrated malignant
probability, an image being called malignant when ``p >= threshold``. They are fitted on
image-wise validation predictions; the candidate thresholds are the distinct validation
scores plus one just above the largest (everything benign), so every constraint below is
met exactly on the data it was fitted on:

- ``high_sensitivity``: the highest threshold with sensitivity >= 0.95 (always exists: the
  lowest score calls everything malignant);
- ``balanced``: the threshold maximising Youden's J = sensitivity + specificity - 1; on a
  tie (within 1e-12) the lowest such threshold, i.e. the most sensitive one;
- ``high_specificity``: the lowest threshold with specificity >= 0.95 (always exists: the
  threshold above the largest score calls everything benign; when the largest score is
  1.0 that threshold is capped at 1.0 and ``met`` says whether the constraint holds).

With a very good classifier ``high_sensitivity`` may lie above ``high_specificity``; both
then meet both constraints on the validation data. Fitting needs both classes; otherwise
:func:`fit_operating_points` raises ``ValueError`` (the run then keeps threshold 0.5).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from busviewer.core.operating import OPERATING_POINTS
from busviewer.training.metrics import Labels, Probs

TARGET = 0.95
ECE_BINS = 10
T_BOUNDS = (0.05, 20.0)
_EPS = 1e-7


def _as_arrays(y_true: Labels, prob: Probs) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=int).ravel()
    p = np.asarray(prob, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels for {p.size} probabilities")
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must be finite and in [0, 1]")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (benign) or 1 (malignant)")
    return y, p


def logit(prob: Probs) -> np.ndarray:
    """``log(p / (1 - p))`` with p clipped to ``[1e-7, 1 - 1e-7]`` (finite for saturated outputs)."""
    p = np.clip(np.asarray(prob, dtype=float), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(prob: Probs, temperature: float) -> np.ndarray:
    """Calibrated malignant probabilities ``sigmoid(logit(p) / T)``; ``T = 1`` returns ``p`` unchanged."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0 (got {temperature!r})")
    p = np.asarray(prob, dtype=float)
    if temperature == 1.0:
        return p.copy()
    z = logit(p) / temperature
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # a sigmoid that never overflows


def nll(y_true: Labels, prob: Probs) -> float:
    """Mean negative log-likelihood (binary cross-entropy) of malignant probabilities."""
    y, p = _as_arrays(y_true, prob)
    if not y.size:
        return float("nan")
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


@dataclass(frozen=True)
class TemperatureFit:
    """The fitted temperature and the validation NLL before/after (``note`` says why T = 1)."""

    temperature: float
    nll_before: float
    nll_after: float
    n: int
    note: str = ""


def fit_temperature(y_true: Labels, prob: Probs, bounds: tuple[float, float] = T_BOUNDS) -> TemperatureFit:
    """Fit ``T`` minimising the NLL of ``sigmoid(logit(p) / T)`` (bounded search on ``log T``).

    Degenerate inputs keep ``T = 1`` and say why: no predictions, one class only (the NLL
    then falls without bound as T -> 0 or grows), or every logit 0. A fit that does not
    lower the NLL (within 1e-9) also keeps ``T = 1``.
    """
    from scipy.optimize import minimize_scalar

    y, p = _as_arrays(y_true, prob)
    n = int(y.size)
    before = nll(y, p)
    if n == 0:
        return TemperatureFit(1.0, before, before, 0, "no validation predictions")
    if y.min() == y.max():
        return TemperatureFit(1.0, before, before, n, "validation predictions of one class only")
    z = logit(p)
    if not np.any(np.abs(z) > 1e-12):
        return TemperatureFit(1.0, before, before, n, "every validation probability is 0.5")

    def loss(log_t: float) -> float:
        q = np.clip(0.5 * (1.0 + np.tanh(0.5 * z / math.exp(log_t))), _EPS, 1 - _EPS)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))

    lo, hi = (math.log(b) for b in bounds)
    res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    t = float(math.exp(res.x))
    after = loss(res.x)
    base = loss(0.0)
    if not (math.isfinite(after) and after < base - 1e-9):
        return TemperatureFit(1.0, before, base, n, "temperature scaling did not lower the validation NLL")
    note = "at the search bound" if min(abs(res.x - lo), abs(res.x - hi)) < 1e-3 else ""
    return TemperatureFit(t, before, after, n, note)


def reliability_bins(y_true: Labels, prob: Probs, bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """Reliability-diagram data: per equal-width bin of the malignant probability, its
    edges, the count, the mean predicted probability and the observed fraction malignant
    (both None for an empty bin). The last bin includes 1.0."""
    y, p = _as_arrays(y_true, prob)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        k = int(sel.sum())
        out.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": k,
                "mean_predicted": float(p[sel].mean()) if k else None,
                "fraction_malignant": float(y[sel].mean()) if k else None,
            }
        )
    return out


def expected_calibration_error(y_true: Labels, prob: Probs, bins: int = ECE_BINS) -> float | None:
    """ECE of the malignant probability (see the module docstring); None without predictions."""
    rows = reliability_bins(y_true, prob, bins)
    n = sum(r["count"] for r in rows)
    if n == 0:
        return None
    return float(sum(r["count"] / n * abs(r["mean_predicted"] - r["fraction_malignant"]) for r in rows if r["count"]))


# ----------------------------------------------------------------------- operating points
@dataclass(frozen=True)
class OperatingPoint:
    """A threshold and what it gives on the data it was fitted on."""

    name: str
    threshold: float
    sensitivity: float
    specificity: float
    met: bool  # the point's constraint holds (always True for ``balanced``)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sens_spec(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sensitivity and specificity of ``p >= t`` for every ``t`` (vectorised by sorting)."""
    pos = np.sort(p[y == 1])
    neg = np.sort(p[y == 0])
    # number of scores >= t = n - (number of scores < t)
    tp = pos.size - np.searchsorted(pos, thresholds, side="left")
    fp = neg.size - np.searchsorted(neg, thresholds, side="left")
    return tp / pos.size, (neg.size - fp) / neg.size


def candidate_thresholds(prob: Probs) -> np.ndarray:
    """The distinct scores (ascending) plus one just above the largest, capped at 1.0."""
    p = np.unique(np.asarray(prob, dtype=float))
    above = min(1.0, float(np.nextafter(p[-1], np.inf))) if p.size else 1.0
    return np.unique(np.append(p, above))


def fit_operating_points(y_true: Labels, prob: Probs, target: float = TARGET) -> dict[str, OperatingPoint]:
    """``high_sensitivity``, ``balanced`` and ``high_specificity`` on (calibrated, image-wise)
    validation probabilities; see the module docstring for the rules and tie handling."""
    y, p = _as_arrays(y_true, prob)
    if y.size == 0 or y.min() == y.max():
        raise ValueError("operating points need validation images of both classes")
    t = candidate_thresholds(p)
    sens, spec = _sens_spec(y, p, t)
    tol = 1e-12

    ok = np.flatnonzero(sens >= target - tol)  # non-empty: sens(min score) = 1
    i_sens = int(ok[-1])
    ok = np.flatnonzero(spec >= target - tol)
    i_spec = int(ok[0]) if ok.size else len(t) - 1
    j = sens + spec - 1
    i_bal = int(np.flatnonzero(j >= j.max() - tol)[0])

    def point(name: str, i: int, met: bool) -> OperatingPoint:
        return OperatingPoint(name, float(t[i]), float(sens[i]), float(spec[i]), bool(met))

    return {
        "high_sensitivity": point("high_sensitivity", i_sens, sens[i_sens] >= target - tol),
        "balanced": point("balanced", i_bal, True),
        "high_specificity": point("high_specificity", i_spec, spec[i_spec] >= target - tol),
    }


def sens_spec_at(y_true: Labels, prob: Probs, threshold: float) -> tuple[float | None, float | None]:
    """Sensitivity and specificity of ``p >= threshold`` (None where a class is absent)."""
    y, p = _as_arrays(y_true, prob)
    call = p >= threshold
    pos, neg = y == 1, y == 0
    sens = float(call[pos].mean()) if pos.any() else None
    spec = float((~call[neg]).mean()) if neg.any() else None
    return sens, spec


__all__ = [
    "ECE_BINS",
    "OPERATING_POINTS",
    "OperatingPoint",
    "TemperatureFit",
    "apply_temperature",
    "candidate_thresholds",
    "expected_calibration_error",
    "fit_operating_points",
    "fit_temperature",
    "logit",
    "nll",
    "reliability_bins",
    "sens_spec_at",
]
