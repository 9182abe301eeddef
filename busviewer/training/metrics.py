"""Classification metrics, image-wise and patient-wise (malignant = positive class).

- accuracy, precision (PPV), sensitivity (recall of malignant), specificity, F1, AUC,
  ROC points and the confusion matrix ``[[TN, FP], [FN, TP]]`` (rows: truth
  benign/malignant, columns: predicted). Undefined ratios (no positives predicted, ...)
  are 0 as in scikit-learn's ``zero_division=0``; the AUC is ``None`` when only one class
  is present.
- patient-wise: each patient's verdict is the majority vote of its image predictions
  (a tie is malignant: benign only if B_P > N_P - B_P, seed 001); the patient's truth is
  malignant if any of its images is (see :func:`busviewer.training.splits.patient_labels`);
  the patient's probability (for the patient AUC) is the mean malignant probability of
  its images.
- global patient recognition rate (seed 001, eq. 2): ``(1/N) * sum_P N_cor(P) / N_P``.
- :func:`mean_sd` aggregates folds (sample SD, ``ddof=1``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np

from busviewer.ai.voting import BENIGN, MALIGNANT, patient_recognition_rate, patient_verdict

Labels: TypeAlias = Sequence[int] | np.ndarray
"""Class labels, 0 benign / 1 malignant: a sequence or an array."""
Probs: TypeAlias = Sequence[float] | np.ndarray
"""Malignant probabilities: a sequence or an array."""

SCALAR_KEYS = ("accuracy", "precision", "sensitivity", "specificity", "f1", "auc")


def confusion(y_true: Labels, y_pred: Labels) -> tuple[int, int, int, int]:
    """``(tn, fp, fn, tp)`` with malignant (1) as positive."""
    t = np.asarray(y_true, dtype=int)
    p = np.asarray(y_pred, dtype=int)
    tp = int(np.sum((t == 1) & (p == 1)))
    tn = int(np.sum((t == 0) & (p == 0)))
    fp = int(np.sum((t == 0) & (p == 1)))
    fn = int(np.sum((t == 1) & (p == 0)))
    return tn, fp, fn, tp


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def roc_points(y_true: Labels, prob: Probs) -> dict[str, list[float]] | None:
    """ROC curve (fpr, tpr, thresholds); ``None`` with a single class."""
    from sklearn.metrics import roc_curve

    t = np.asarray(y_true, dtype=int)
    if len(set(t.tolist())) < 2:
        return None
    fpr, tpr, thr = roc_curve(t, np.asarray(prob, dtype=float))
    thr = np.where(np.isfinite(thr), thr, 1.0)  # sklearn's first threshold is inf
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thr.tolist()}


def auc_score(y_true: Labels, prob: Probs) -> float | None:
    from sklearn.metrics import roc_auc_score

    t = np.asarray(y_true, dtype=int)
    if len(set(t.tolist())) < 2:
        return None
    return float(roc_auc_score(t, np.asarray(prob, dtype=float)))


def metrics_from_predictions(
    y_true: Labels, y_pred: Labels, prob: Probs | None = None, roc: bool = True
) -> dict[str, Any]:
    tn, fp, fn, tp = confusion(y_true, y_pred)
    n = tn + fp + fn + tp
    precision = _ratio(tp, tp + fp)
    sensitivity = _ratio(tp, tp + fn)
    out: dict[str, Any] = {
        "n": n,
        "n_malignant": tp + fn,
        "n_benign": tn + fp,
        "accuracy": _ratio(tp + tn, n),
        "precision": precision,
        "sensitivity": sensitivity,
        "specificity": _ratio(tn, tn + fp),
        "f1": _ratio(2 * precision * sensitivity, precision + sensitivity),
        "auc": auc_score(y_true, prob) if prob is not None else None,
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }
    if roc and prob is not None:
        out["roc"] = roc_points(y_true, prob)
    return out


def binary_metrics(y_true: Labels, prob: Probs, threshold: float = 0.5, roc: bool = True) -> dict[str, Any]:
    """Metrics of malignant probabilities ``prob``; predicted malignant if ``prob >= threshold``."""
    p = np.asarray(prob, dtype=float)
    y_pred = (p >= threshold).astype(int)
    out = metrics_from_predictions(y_true, y_pred, p, roc=roc)
    out["threshold"] = threshold
    return out


def _group(patients: Sequence[str], values: Sequence[Any]) -> dict[str, list[Any]]:
    g: dict[str, list[Any]] = {}
    for p, v in zip(patients, values, strict=True):
        g.setdefault(p, []).append(v)
    return g


def majority_vote(image_predictions: Sequence[int]) -> int:
    """Patient verdict from its image predictions (1 malignant): benign only if the benign
    votes B_P exceed N_P - B_P; a tie is malignant (seed 001, :func:`busviewer.ai.voting.patient_verdict`)."""
    verdict = patient_verdict([(i, MALIGNANT if int(x) else BENIGN) for i, x in enumerate(image_predictions)])
    return int(verdict.label == MALIGNANT)


def recognition_rate(patients: Sequence[str], y_true: Labels, y_pred: Labels) -> float:
    """Global patient recognition rate (seed 001, eq. 2): mean over patients of the
    fraction of the patient's images classified correctly."""
    correct = _group(patients, [int(a == b) for a, b in zip(y_true, y_pred, strict=True)])
    if not correct:
        return 0.0
    return float(patient_recognition_rate({p: (sum(v), len(v)) for p, v in correct.items()}))


def patient_level(
    patients: Sequence[str], y_true: Labels, prob: Probs, threshold: float = 0.5
) -> tuple[list[str], list[int], list[int], list[float]]:
    """Per patient (sorted ids): truth (any malignant), vote verdict, mean probability."""
    preds = [int(p >= threshold) for p in prob]
    truth_g = _group(patients, list(y_true))
    pred_g = _group(patients, preds)
    prob_g = _group(patients, list(prob))
    ids = sorted(truth_g)
    return (
        ids,
        [int(max(truth_g[p])) for p in ids],
        [majority_vote(pred_g[p]) for p in ids],
        [float(np.mean(prob_g[p])) for p in ids],
    )


def patient_metrics(
    patients: Sequence[str], y_true: Labels, prob: Probs, threshold: float = 0.5, roc: bool = True
) -> dict[str, Any]:
    """Patient-wise metrics: majority-vote verdicts, AUC of the mean probability."""
    _, truth, verdict, mean_prob = patient_level(patients, y_true, prob, threshold)
    return metrics_from_predictions(truth, verdict, mean_prob, roc=roc)


def evaluate_predictions(
    patients: Sequence[str], y_true: Labels, prob: Probs, threshold: float = 0.5
) -> dict[str, Any]:
    """The full report: ``image``, ``patient`` metrics and ``recognition_rate``."""
    preds = [int(p >= threshold) for p in prob]
    return {
        "image": binary_metrics(y_true, prob, threshold),
        "patient": patient_metrics(patients, y_true, prob, threshold),
        "recognition_rate": recognition_rate(patients, y_true, preds),
        "n_images": len(y_true),
        "n_patients": len(set(patients)),
    }


def scalars(report: dict[str, Any]) -> dict[str, Any]:
    """The report without ROC points (for model cards, events and fold tables)."""
    out: dict[str, Any] = {}
    for k, v in report.items():
        if isinstance(v, dict):
            out[k] = {kk: vv for kk, vv in v.items() if kk != "roc"}
        else:
            out[k] = v
    return out


def mean_sd(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample SD over folds of the scalar metrics (image, patient, recognition rate)."""

    def agg(values: list[float | None]) -> dict[str, float | int | None]:
        vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not vals:
            return {"mean": None, "sd": None, "n": 0}
        sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        return {"mean": float(np.mean(vals)), "sd": sd, "n": len(vals)}

    out: dict[str, Any] = {}
    for level in ("image", "patient"):
        out[level] = {k: agg([r[level].get(k) for r in reports]) for k in SCALAR_KEYS}
    out["recognition_rate"] = agg([r.get("recognition_rate") for r in reports])
    return out
