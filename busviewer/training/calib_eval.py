"""Calibration and operating points inside training runs (what :mod:`busviewer.training.run` calls).

After a phase (CV fold or final) is trained, its model also predicts the phase's
validation images; there the temperature and the three operating points are fitted
(:mod:`busviewer.training.calibration`), and on the phase's test images this reports:

- ``ece_before`` / ``ece_after``: ECE (10 bins) of the malignant probability without and
  with the temperature (``val`` holds the same on the validation images);
- ``auc``: image AUC and patient AUC (mean calibrated probability of the patient's images)
  of the calibrated probabilities;
- ``points``: per operating point its threshold and the image- and patient-level
  sensitivity/specificity (patient vote with that threshold, a tie is malignant);
- ``reliability``: reliability-diagram bins before/after (plotted as ``reliability.png``).

``metrics.calibration`` is the final model's; ``metrics.cv.calibration`` the folds' and
their mean ± SD (sample SD). The registered card records ``calibration`` (temperature and
the validation ECE before/after) and ``operating_points`` (thresholds, calibrated scale).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from busviewer.core.operating import DEFAULT_THRESHOLD, OPERATING_POINTS, TITLES
from busviewer.training.calibration import (
    ECE_BINS,
    apply_temperature,
    expected_calibration_error,
    fit_operating_points,
    fit_temperature,
    reliability_bins,
)
from busviewer.training.metrics import Labels, Probs, auc_score, evaluate_predictions, patient_level

METHOD = "temperature scaling (Guo et al., ICML 2017), NLL on the validation images"
_KEEP = ("sensitivity", "specificity", "accuracy")


def _test_report(
    cal: dict[str, Any], thresholds: dict[str, float], y: Sequence[int], p: np.ndarray, patients: Sequence[str]
) -> dict[str, Any]:
    q = apply_temperature(p, cal["temperature"])
    _, truth, _, mean_prob = patient_level(patients, y, q.tolist())
    points = {}
    for name in OPERATING_POINTS:
        rep = evaluate_predictions(patients, y, q.tolist(), thresholds[name])
        points[name] = {
            "threshold": thresholds[name],
            "image": {k: rep["image"][k] for k in _KEEP},
            "patient": {k: rep["patient"][k] for k in _KEEP},
        }
    return {
        "n_images": len(y),
        "n_patients": len(set(patients)),
        "ece_before": expected_calibration_error(y, p),
        "ece_after": expected_calibration_error(y, q),
        "auc": {"image": auc_score(y, q), "patient": auc_score(truth, mean_prob)},
        "points": points,
        "reliability": {"before": reliability_bins(y, p), "after": reliability_bins(y, q)},
    }


def calibration_report(
    val_y: Labels,
    val_p: Probs,
    test_y: Labels = (),
    test_p: Probs = (),
    test_patients: Sequence[str] = (),
) -> dict[str, Any]:
    """Fit on the validation predictions, report on the test predictions (module docstring)."""
    vy, vp = np.asarray(val_y, dtype=int), np.asarray(val_p, dtype=float)
    fit = fit_temperature(vy, vp)
    vq = apply_temperature(vp, fit.temperature)
    out: dict[str, Any] = {
        "temperature": fit.temperature,
        "method": METHOD,
        "bins": ECE_BINS,
        "val": {
            "n_images": int(vy.size),
            "nll_before": fit.nll_before,
            "nll_after": fit.nll_after,
            "ece_before": expected_calibration_error(vy, vp) if vy.size else None,
            "ece_after": expected_calibration_error(vy, vq) if vy.size else None,
        },
        "notes": [fit.note] if fit.note else [],
    }
    try:
        points = fit_operating_points(vy, vq)
        out["operating_points"] = {k: v.to_dict() for k, v in points.items()}
        thresholds = {k: v.threshold for k, v in points.items()}
    except ValueError as exc:
        out["operating_points"] = None
        out["notes"].append(f"operating points not fitted ({exc}); threshold {DEFAULT_THRESHOLD} is used")
        thresholds = dict.fromkeys(OPERATING_POINTS, DEFAULT_THRESHOLD)
    out["test"] = (
        _test_report(out, thresholds, list(test_y), np.asarray(test_p, dtype=float), list(test_patients))
        if len(test_y)
        else None
    )
    return out


def phase_calibration(
    model: Any,
    cfg: Any,
    val_samples: Sequence[Any],
    test_samples: Sequence[Any],
    test_probs: Probs | None,
    device: Any,
    cache: Any,
    amp_dtype: Any = None,
    check_cancel: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Predict the validation samples with the phase's model and report (see the module docstring)."""
    from busviewer.training.evaluate import predict_samples

    val_p = (
        predict_samples(
            model,
            val_samples,
            cfg.input_size,
            cfg.mean,
            cfg.std,
            device,
            cfg.eval_batch_size,
            cache,
            amp_dtype,
            check_cancel,
        )
        if val_samples
        else np.zeros(0)
    )
    if not test_samples or test_probs is None:
        test_samples, test_probs = (), ()
    return calibration_report(
        [s.label for s in val_samples],
        val_p,
        [s.label for s in test_samples],
        test_probs,
        [s.patient for s in test_samples],
    )


def card_calibration(card: Any, samples: Sequence[Any], probs: Probs) -> dict[str, Any]:
    """``busviewer evaluate``: the card's temperature and operating points (T = 1 and 0.5
    for an older card) applied to a registered model's predictions of ``samples``."""
    from busviewer.core.operating import card_temperature, card_thresholds, has_operating_points

    thresholds = card_thresholds(card)
    cal: dict[str, Any] = {
        "temperature": card_temperature(card),
        "bins": ECE_BINS,
        "source": "model card",
        "operating_points": thresholds if has_operating_points(card) else None,
    }
    y, patients = [s.label for s in samples], [s.patient for s in samples]
    cal["test"] = _test_report(cal, thresholds, y, np.asarray(probs, dtype=float), patients) if y else None
    return cal


# ----------------------------------------------------------------------- run-level
def summary(cal: dict[str, Any]) -> dict[str, Any]:
    """The scalar figures of one phase (no reliability bins), as they go into CV tables and cards."""
    test = cal.get("test") or {}
    out: dict[str, Any] = {
        "temperature": cal.get("temperature"),
        "val_ece_before": (cal.get("val") or {}).get("ece_before"),
        "val_ece_after": (cal.get("val") or {}).get("ece_after"),
        "ece_before": test.get("ece_before"),
        "ece_after": test.get("ece_after"),
        "auc_image": (test.get("auc") or {}).get("image"),
        "auc_patient": (test.get("auc") or {}).get("patient"),
    }
    for name, pt in (test.get("points") or {}).items():
        out[name] = {
            "threshold": pt["threshold"],
            **{f"{level}_{k}": pt[level][k] for level in ("image", "patient") for k in _KEEP},
        }
    return out


def mean_sd_nested(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample SD and n of every numeric leaf over ``rows`` (same nesting)."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    out: dict[str, Any] = {}
    for k in keys:
        vals = [r.get(k) for r in rows]
        if any(isinstance(v, dict) for v in vals):
            out[k] = mean_sd_nested([v for v in vals if isinstance(v, dict)])
            continue
        nums = [
            float(v)
            for v in vals
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
        ]
        out[k] = {
            "mean": float(np.mean(nums)) if nums else None,
            "sd": float(np.std(nums, ddof=1)) if len(nums) > 1 else None,
            "n": len(nums),
        }
    return out


class CalibrationHooks:
    """The calls :mod:`busviewer.training.run` makes (kept out of run.py)."""

    @staticmethod
    def add_metrics(metrics: dict[str, Any], fold_results: Sequence[dict[str, Any]], final: dict[str, Any]) -> None:
        """``metrics.calibration`` (final model) and ``metrics.cv.calibration`` (folds, mean ± SD)."""
        if final.get("calibration"):
            metrics["calibration"] = final["calibration"]
        folds = [summary(r["calibration"]) for r in fold_results if r.get("calibration")]
        if folds and isinstance(metrics.get("cv"), dict):
            metrics["cv"]["calibration"] = {"folds": folds, "mean_sd": mean_sd_nested(folds)}

    @staticmethod
    def card_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
        """Card ``metrics.calibration``: the final model's test figures and the CV mean ± SD."""
        out: dict[str, Any] = {}
        if metrics.get("calibration"):
            out = summary(metrics["calibration"])
        cv = (metrics.get("cv") or {}).get("calibration")
        if cv:
            out["cv"] = cv["mean_sd"]
        return {"calibration": out} if out else {}

    @staticmethod
    def card_fields(final: dict[str, Any]) -> dict[str, Any]:
        """``calibration`` and ``operating_points`` of the registered model's card (None when
        the run could not fit them: such a card works with T = 1 and threshold 0.5)."""
        cal = final.get("calibration")
        if not cal:
            return {"calibration": None, "operating_points": None}
        val = cal.get("val") or {}
        calibration = {
            "temperature": cal["temperature"],
            "method": cal.get("method", METHOD),
            "fitted_on": "validation patients of the fixed split",
            "n_images": val.get("n_images"),
            "ece_bins": cal.get("bins", ECE_BINS),
            "ece_before": val.get("ece_before"),
            "ece_after": val.get("ece_after"),
            "nll_before": val.get("nll_before"),
            "nll_after": val.get("nll_after"),
        }
        if cal.get("notes"):
            calibration["notes"] = list(cal["notes"])
        ops = cal.get("operating_points")
        return {
            "calibration": calibration,
            "operating_points": {k: float(ops[k]["threshold"]) for k in OPERATING_POINTS} if ops else None,
        }


def _f(v: Any) -> str:
    if isinstance(v, dict):
        if v.get("mean") is None:
            return "n/a"
        return f"{v['mean']:.3f}" + (f"±{v['sd']:.3f}" if v.get("sd") is not None else "")
    return f"{v:.3f}" if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"


def format_calibration(s: dict[str, Any], title: str = "") -> str:
    """A :func:`summary` (or its :func:`mean_sd_nested`) as text lines."""
    lines = [title] if title else []
    lines.append(
        f"temperature {_f(s.get('temperature'))}; ECE (10 bins) validation {_f(s.get('val_ece_before'))} -> "
        f"{_f(s.get('val_ece_after'))}, test {_f(s.get('ece_before'))} -> {_f(s.get('ece_after'))}; "
        f"calibrated AUC image {_f(s.get('auc_image'))}, patient {_f(s.get('auc_patient'))}"
    )
    lines.append(
        f"{'operating point':<18}{'threshold':>12}{'img sens':>12}{'img spec':>12}{'pat sens':>12}{'pat spec':>12}"
    )
    for name in OPERATING_POINTS:
        pt = s.get(name)
        if isinstance(pt, dict):
            lines.append(
                f"{TITLES[name]:<18}{_f(pt.get('threshold')):>12}"
                + "".join(
                    f"{_f(pt.get(k)):>12}"
                    for k in ("image_sensitivity", "image_specificity", "patient_sensitivity", "patient_specificity")
                )
            )
    return "\n".join(lines)


__all__ = [
    "CalibrationHooks",
    "calibration_report",
    "card_calibration",
    "format_calibration",
    "mean_sd_nested",
    "phase_calibration",
    "summary",
]
