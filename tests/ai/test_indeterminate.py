"""Indeterminate band (issue 14): a probability near the threshold in force is not a call,
does not vote, and an all-indeterminate patient has no verdict."""

from __future__ import annotations

import pytest

from busviewer.ai.results import INDETERMINATE, ImagePrediction, summarise
from busviewer.core.operating import DEFAULT_BAND_MARGIN, indeterminate_band, is_indeterminate

SHA = "cd" * 32
POINTS = {"high_sensitivity": 0.2, "balanced": 0.45, "high_specificity": 0.8}


def _preds(probs: dict[int, float], sha: str = SHA) -> dict:
    return {
        (i, "vgg16"): ImagePrediction(i, 0, None, "vgg16", "m", 1, {"benign": 1 - p, "malignant": p}, p, "benign", sha)
        for i, p in probs.items()
    }


def test_default_band_for_a_card_without_operating_points() -> None:
    assert DEFAULT_BAND_MARGIN == 0.10
    assert indeterminate_band(None) == pytest.approx((0.4, 0.6))
    a = summarise("P", _preds({1: 0.51, 2: 0.53, 3: 0.45}, sha="00" * 32))  # no card: threshold 0.5
    v = a.verdicts["vgg16"]
    assert v.label == INDETERMINATE and v.malignant_votes == v.benign_votes == 0
    assert v.indeterminate_images == (1, 2, 3) and not v.tie_decided
    assert all(a.is_indeterminate(i, "vgg16") for i in (1, 2, 3))
    assert a.predictions[1, "vgg16"].label == "malignant" and a.predictions[3, "vgg16"].label == "benign"  # leans
    # the band is open: exactly 0.10 from the threshold is a call (also where 0.2 + 0.1 != 0.3 in floats)
    edges = summarise("P", _preds({1: 0.4, 2: 0.6}, sha="00" * 32)).verdicts["vgg16"]
    assert (edges.benign_votes, edges.malignant_votes, edges.indeterminate_images) == (1, 1, ())
    assert not is_indeterminate(0.3, indeterminate_band({"high_sensitivity": 0.2}, "high_sensitivity"))


def test_band_from_the_cards_operating_points_never_past_halfway_to_a_neighbour() -> None:
    assert indeterminate_band(POINTS, "balanced") == pytest.approx((0.35, 0.55))
    assert indeterminate_band(POINTS, "high_sensitivity") == pytest.approx((0.10, 0.30))
    assert indeterminate_band(POINTS, "high_specificity") == pytest.approx((0.70, 0.90))
    close = {"high_sensitivity": 0.44, "balanced": 0.5, "high_specificity": 0.52}
    assert indeterminate_band(close, "balanced") == pytest.approx((0.47, 0.51))


def test_indeterminate_images_do_not_vote_and_the_tie_note_stays() -> None:
    a = summarise("P", _preds({1: 0.9, 2: 0.5, 3: 0.1}), {SHA: POINTS})
    v = a.verdicts["vgg16"]
    assert v.indeterminate_images == (2,) and v.band == pytest.approx((0.35, 0.55))
    assert (v.malignant_votes, v.benign_votes) == (1, 1) and v.tie_decided and v.label == "malignant"
    # at high specificity 0.5 is a clear benign call: 2 benign against 1 malignant
    hs = a.at("high_specificity").verdicts["vgg16"]
    assert hs.indeterminate_images == () and hs.label == "benign" and (hs.malignant_votes, hs.benign_votes) == (1, 2)
    one = summarise("P", _preds({1: 0.9, 2: 0.5, 3: 0.52}), {SHA: POINTS}).verdicts["vgg16"]
    assert one.label == "malignant" and one.indeterminate_images == (2, 3) and not one.tie_decided
