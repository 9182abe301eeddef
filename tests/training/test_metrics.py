"""Metrics against scikit-learn, the patient vote and eq. 2."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from busviewer.training.metrics import (
    binary_metrics,
    evaluate_predictions,
    majority_vote,
    mean_sd,
    patient_metrics,
    recognition_rate,
)


def test_image_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    prob = np.clip(0.35 * y + rng.random(200) * 0.65, 0, 1)
    pred = (prob >= 0.5).astype(int)
    m = binary_metrics(y, prob)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert m["confusion_matrix"] == [[tn, fp], [fn, tp]]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, pred))
    assert m["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, prob))
    fpr, tpr, _ = skm.roc_curve(y, prob)
    assert m["roc"]["fpr"] == pytest.approx(fpr.tolist()) and m["roc"]["tpr"] == pytest.approx(tpr.tolist())


def test_known_small_case_and_degenerate_inputs() -> None:
    m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]
    assert (m["accuracy"], m["precision"], m["sensitivity"], m["specificity"], m["f1"]) == (0.5,) * 5
    assert m["auc"] == pytest.approx(0.75)
    one_class = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert one_class["auc"] is None and one_class["roc"] is None
    assert one_class["precision"] == 0.0 and one_class["sensitivity"] == 0.0 and one_class["specificity"] == 1.0


def test_vote_tie_is_malignant() -> None:
    assert majority_vote([0, 1]) == 1  # tie
    assert majority_vote([0, 0, 1, 1]) == 1
    assert majority_vote([0, 0, 1]) == 0  # B_P = 2 > N_P - B_P = 1
    assert majority_vote([0]) == 0 and majority_vote([1]) == 1


def test_patient_metrics_and_recognition_rate() -> None:
    patients = ["a", "a", "b", "b", "b", "c", "d", "d"]
    truth = [1, 1, 0, 0, 0, 1, 0, 0]
    prob = [0.9, 0.2, 0.1, 0.8, 0.3, 0.4, 0.6, 0.7]
    # a: 1 of 2 correct (tie -> malignant: correct); b: 2/3 (vote benign: correct);
    # c: 0/1 (benign: wrong); d: 0/2 (malignant: wrong)
    preds = [int(p >= 0.5) for p in prob]
    assert recognition_rate(patients, truth, preds) == pytest.approx((1 / 2 + 2 / 3 + 0 + 0) / 4)
    pm = patient_metrics(patients, truth, prob)
    # patients sorted a,b,c,d: truth 1,0,1,0; verdict 1,0,0,1
    assert pm["confusion_matrix"] == [[1, 1], [1, 1]]
    means = [np.mean([0.9, 0.2]), np.mean([0.1, 0.8, 0.3]), 0.4, 0.65]
    assert pm["auc"] == pytest.approx(skm.roc_auc_score([1, 0, 1, 0], means))
    rep = evaluate_predictions(patients, truth, prob)
    assert rep["n_patients"] == 4 and rep["n_images"] == 8
    assert rep["recognition_rate"] == pytest.approx(7 / 24)


def test_mean_sd_over_folds() -> None:
    reps = [
        evaluate_predictions(["a", "b", "c", "d"], [0, 1, 0, 1], p)
        for p in ([0.1, 0.9, 0.2, 0.8], [0.6, 0.9, 0.2, 0.4])
    ]
    agg = mean_sd(reps)
    accs = [1.0, 0.5]
    assert agg["image"]["accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert agg["image"]["accuracy"]["sd"] == pytest.approx(np.std(accs, ddof=1))
    assert agg["patient"]["auc"]["n"] == 2
