from __future__ import annotations

import pytest

from busviewer.ai.voting import patient_recognition_rate, patient_verdict


def test_tie_is_malignant() -> None:
    v = patient_verdict([("a", "benign"), ("b", "malignant")])
    assert v.label == "malignant" and v.tie_decided
    assert (v.benign_votes, v.malignant_votes) == (1, 1)
    assert v.benign_images == ("a",) and v.malignant_images == ("b",)
    assert v.mean_malignant_probability is None
    v = patient_verdict([(1, 0.1), (2, 0.2), (3, 0.8), (4, 0.9)])
    assert v.label == "malignant" and v.tie_decided and v.n_images == 4


def test_majorities() -> None:
    v = patient_verdict([("a", 0.1), ("b", 0.3), ("c", 0.9)])
    assert v.label == "benign" and not v.tie_decided
    assert v.benign_images == ("a", "b") and v.malignant_images == ("c",)
    assert v.mean_malignant_probability == pytest.approx((0.1 + 0.3 + 0.9) / 3)
    v = patient_verdict([("a", 0.6), ("b", "benign"), ("c", "MALIGNANT")])
    assert v.label == "malignant" and (v.benign_votes, v.malignant_votes) == (1, 2)
    assert v.mean_malignant_probability == pytest.approx(0.6)
    assert patient_verdict([("only", 0.2)]).label == "benign"
    assert patient_verdict([("only", 0.5)]).label == "malignant"  # threshold is inclusive


def test_prediction_objects_and_threshold() -> None:
    class P:
        malignant_probability = 0.4

    assert patient_verdict([("x", P())]).label == "benign"
    assert patient_verdict([("x", P())], threshold=0.3).label == "malignant"


@pytest.mark.parametrize("bad", [[], [("a", "normal")], [("a", 1.5)], [("a", float("nan"))], [("a", None)]])
def test_invalid_votes(bad) -> None:
    with pytest.raises((ValueError, TypeError)):
        patient_verdict(bad)


def test_recognition_rate_eq2_hand_example() -> None:
    # (1/N) * sum_P Ncor_P / N_P with N = 3 patients: (2/3 + 1/1 + 0/2) / 3
    rate = patient_recognition_rate({"P1": (2, 3), "P2": (1, 1), "P3": (0, 2)})
    assert rate == pytest.approx((2 / 3 + 1.0 + 0.0) / 3) == pytest.approx(5 / 9)
    # not the image-level accuracy (3 of 6 images)
    assert rate != pytest.approx(3 / 6)
    assert patient_recognition_rate({"P": (4, 4)}) == 1.0
    with pytest.raises(ValueError):
        patient_recognition_rate({})
    with pytest.raises(ValueError):
        patient_recognition_rate({"P": (3, 2)})
    with pytest.raises(ValueError):
        patient_recognition_rate({"P": (0, 0)})
