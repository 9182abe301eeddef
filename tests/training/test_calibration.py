"""Temperature scaling, ECE, reliability bins and operating points (pure numpy/scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from busviewer.training.calib_eval import CalibrationHooks, calibration_report, mean_sd_nested, summary
from busviewer.training.calibration import (
    apply_temperature,
    candidate_thresholds,
    expected_calibration_error,
    fit_operating_points,
    fit_temperature,
    reliability_bins,
    sens_spec_at,
)


def miscalibrated(n: int, seed: int, sharpen: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels drawn from known posteriors sigmoid(z); the 'model' reports sigmoid(sharpen * z)
    (over-confident for sharpen > 1, so the ideal temperature is ``sharpen``)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return y, 1 / (1 + np.exp(-sharpen * z)), 1 / (1 + np.exp(-z))


def test_temperature_scaling_lowers_ece_on_held_out_data() -> None:
    y_val, p_val, _ = miscalibrated(3000, seed=1)
    y_test, p_test, p_true = miscalibrated(3000, seed=2)
    fit = fit_temperature(y_val, p_val)
    assert fit.temperature == pytest.approx(3.0, rel=0.15)
    assert fit.nll_after < fit.nll_before and fit.note == ""
    before = expected_calibration_error(y_test, p_test)
    after = expected_calibration_error(y_test, apply_temperature(p_test, fit.temperature))
    assert before > 0.08
    assert after < before / 2
    assert after < expected_calibration_error(y_test, p_true) + 0.02  # about as good as the true posteriors


def test_under_confident_outputs_get_t_below_one() -> None:
    y, p, _ = miscalibrated(3000, seed=3, sharpen=0.4)
    assert fit_temperature(y, p).temperature == pytest.approx(0.4, rel=0.15)


def test_temperature_equals_softmax_of_scaled_logits() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (50, 2))
    t = 2.5

    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p = softmax(logits)[:, 1]
    np.testing.assert_allclose(apply_temperature(p, t), softmax(logits / t)[:, 1], atol=1e-9)
    np.testing.assert_array_equal(apply_temperature(p, 1.0), p)
    q = apply_temperature(p, t)
    assert np.all(np.diff(q[np.argsort(p)]) >= 0)  # monotone: ranking (AUC) unchanged
    with pytest.raises(ValueError):
        apply_temperature(p, 0.0)


def test_degenerate_inputs_keep_t_1() -> None:
    assert fit_temperature([], []).temperature == 1.0
    one = fit_temperature([1, 1, 1], [0.6, 0.9, 0.99])
    assert one.temperature == 1.0 and "one class" in one.note
    flat = fit_temperature([0, 1, 0, 1], [0.5] * 4)
    assert flat.temperature == 1.0 and "0.5" in flat.note
    # perfectly separated, already sharp: the optimum is at the search bound, still finite
    sharp = fit_temperature([0, 0, 1, 1], [0.01, 0.02, 0.98, 0.99])
    assert 0.05 <= sharp.temperature < 1.0 and math.isfinite(sharp.nll_after)
    with pytest.raises(ValueError):
        fit_temperature([0, 1], [0.2, 1.2])
    with pytest.raises(ValueError):
        fit_temperature([0, 2], [0.2, 0.3])


def test_ece_and_reliability_bins_by_hand() -> None:
    y = [0, 1, 1, 0]
    p = [0.05, 0.15, 1.0, 0.1]
    bins = reliability_bins(y, p)
    assert len(bins) == 10 and bins[0]["lower"] == 0.0 and bins[-1]["upper"] == 1.0
    assert [b["count"] for b in bins] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]  # 0.1 -> bin 1, 1.0 -> last bin
    assert bins[1]["mean_predicted"] == pytest.approx(0.125) and bins[1]["fraction_malignant"] == 0.5
    assert bins[2]["mean_predicted"] is None and bins[2]["fraction_malignant"] is None
    # (|0.05 - 0| * 1 + |0.125 - 0.5| * 2 + |1.0 - 1| * 1) / 4
    assert expected_calibration_error(y, p) == pytest.approx((0.05 + 0.75) / 4)
    assert expected_calibration_error([], []) is None


def _brute(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = candidate_thresholds(p)
    ss = np.array([sens_spec_at(y, p, x) for x in t], dtype=float)
    return t, ss[:, 0], ss[:, 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_operating_points_meet_their_constraints_on_the_fitting_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    p = np.round(np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.25, 300), 0, 1), 2)  # many ties
    pts = fit_operating_points(y, p)
    t, sens, spec = _brute(y, p)

    hs = pts["high_sensitivity"]
    assert hs.met and sens_spec_at(y, p, hs.threshold)[0] >= 0.95
    assert (hs.sensitivity, hs.specificity) == sens_spec_at(y, p, hs.threshold)
    assert all(s < 0.95 for x, s in zip(t, sens) if x > hs.threshold)  # the highest such threshold

    sp = pts["high_specificity"]
    assert sp.met and sens_spec_at(y, p, sp.threshold)[1] >= 0.95
    assert all(s < 0.95 for x, s in zip(t, spec) if x < sp.threshold)  # the lowest such threshold

    bal = pts["balanced"]
    j = sens + spec - 1
    assert bal.sensitivity + bal.specificity - 1 == pytest.approx(j.max())
    assert bal.threshold == t[np.flatnonzero(j >= j.max() - 1e-12)[0]]  # ties: the lowest (most sensitive)
    assert hs.threshold <= bal.threshold <= sp.threshold  # a typical, overlapping classifier


def test_operating_point_edges() -> None:
    # the largest score is a benign image: only "above every score" reaches specificity 1
    y = np.array([1, 0, 1, 0, 0])
    p = np.array([0.2, 0.9, 0.6, 0.1, 0.3])
    sp = fit_operating_points(y, p, target=1.0)["high_specificity"]
    assert sp.threshold > 0.9 and sp.specificity == 1.0 and sp.sensitivity == 0.0 and sp.met
    # saturated: the benign image scores 1.0, so no threshold <= 1 clears it
    sat = fit_operating_points(np.array([1, 0, 0]), np.array([1.0, 1.0, 0.2]), target=1.0)["high_specificity"]
    assert sat.threshold == 1.0 and not sat.met
    with pytest.raises(ValueError, match="both classes"):
        fit_operating_points([1, 1], [0.3, 0.4])


def test_calibration_report_cv_summary_and_card_fields() -> None:
    y_val, p_val, _ = miscalibrated(400, seed=5)
    y_test, p_test, _ = miscalibrated(400, seed=6)
    patients = [f"P{i // 2}" for i in range(400)]  # two images per patient
    y_test[1::2] = y_test[::2]  # one truth per patient
    cal = calibration_report(y_val, p_val, y_test, p_test, patients)
    test = cal["test"]
    assert test["ece_after"] < test["ece_before"]
    assert cal["val"]["ece_after"] < cal["val"]["ece_before"]
    assert set(test["points"]) == {"high_sensitivity", "balanced", "high_specificity"}
    hs, sp = test["points"]["high_sensitivity"], test["points"]["high_specificity"]
    assert hs["image"]["sensitivity"] >= sp["image"]["sensitivity"]
    assert hs["patient"]["specificity"] <= sp["patient"]["specificity"]
    assert len(test["reliability"]["after"]) == 10 and test["auc"]["patient"] is not None

    row = summary(cal)
    agg = mean_sd_nested([row, summary(calibration_report(y_test, p_test, y_val, p_val, patients))])
    assert agg["ece_after"]["n"] == 2 and agg["ece_after"]["sd"] is not None
    assert agg["balanced"]["patient_sensitivity"]["n"] == 2

    fields = CalibrationHooks.card_fields({"calibration": cal})
    assert fields["calibration"]["temperature"] == cal["temperature"]
    assert fields["calibration"]["ece_after"] == cal["val"]["ece_after"]
    assert fields["operating_points"] == {k: v["threshold"] for k, v in cal["operating_points"].items()}

    one_class = calibration_report([1, 1, 1], [0.7, 0.8, 0.9])
    assert one_class["operating_points"] is None and one_class["test"] is None
    assert CalibrationHooks.card_fields({"calibration": one_class})["operating_points"] is None
