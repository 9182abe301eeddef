"""Calibration and operating points on the AI side: the model card's optional fields, the
temperature in inference, image calls and patient votes at an operating point, stored results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from busviewer.ai.inference import Predictor
from busviewer.ai.modelcard import ModelCard, ModelCardError
from busviewer.ai.networks import build_model
from busviewer.ai.results import ImagePrediction, summarise
from busviewer.core.operating import OPERATING_POINTS, indeterminate_band, is_indeterminate

SHA = "ef" * 32
POINTS = {"high_sensitivity": 0.2, "balanced": 0.45, "high_specificity": 0.8}
CAL = {"temperature": 1.7, "method": "temperature scaling", "ece_before": 0.18, "ece_after": 0.04}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _card(**kw) -> ModelCard:  # type: ignore[no-untyped-def]
    base = dict(name="vgg", version=1, architecture="vgg16", input_size=64, sha256=SHA, pretrained_init="random")
    return ModelCard(**(base | kw))


def test_card_round_trips_calibration_and_operating_points() -> None:
    card = _card(calibration=CAL, operating_points=POINTS)
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert again.temperature == 1.7 and again.thresholds == POINTS
    assert again.threshold("high_specificity") == 0.8 and again.threshold() == 0.45  # balanced by default
    with pytest.raises(ValueError, match="operating point"):
        again.threshold("most_sensitive")


def test_older_card_without_the_fields_loads_with_t_1_and_threshold_half() -> None:
    text = _card().to_json()
    data = json.loads(text)
    assert "calibration" not in data and "operating_points" not in data  # the older format, unchanged
    old = ModelCard.from_json(text)
    assert old.calibration is None and old.operating_points is None
    assert old.temperature == 1.0 and old.thresholds == dict.fromkeys(OPERATING_POINTS, 0.5)


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"calibration": {"temperature": 0}}, "calibration"),
        ({"calibration": {"ece_after": 0.1}}, "calibration"),
        ({"operating_points": {"balanced": 0.5}}, "operating_points"),
        ({"operating_points": POINTS | {"balanced": 1.5}}, "operating_points"),
        ({"operating_points": POINTS | {"balanced": True}}, "operating_points"),
    ],
)
def test_invalid_calibration_fields_are_named(kw: dict, words: str) -> None:
    with pytest.raises(ModelCardError, match=words):
        _card(**kw)


@pytest.fixture(scope="module")
def vgg() -> torch.nn.Module:
    torch.manual_seed(3)
    return build_model("vgg16", pretrained=False).eval()


def _images(n: int = 8) -> list[np.ndarray]:
    """Grey noise (colour noise would be flagged by the input guard as colour Doppler)."""
    rng = np.random.default_rng(1)
    return [np.repeat(rng.integers(0, 256, (50 + i, 60, 1), dtype=np.uint8), 3, axis=2) for i in range(n)]


def test_predictor_applies_the_temperature_and_the_operating_point(vgg) -> None:  # type: ignore[no-untyped-def]
    images = _images()
    old = Predictor(vgg, _card(), device="cpu").predict(images)
    p = np.array([x.malignant_probability for x in old])
    assert [x.label for x in old] == ["malignant" if v >= 0.5 else "benign" for v in p]  # older card: 0.5

    t = 2.5
    zm = float(np.log(np.median(p)) - np.log1p(-np.median(p)))
    thr = 1 / (1 + np.exp(-zm / t))  # the median image on the calibrated scale: splits these images
    card = _card(calibration={"temperature": t}, operating_points=POINTS | {"balanced": thr})
    predictor = Predictor(vgg, card, device="cpu")
    new = predictor.predict(images)
    q = np.array([x.malignant_probability for x in new])
    z = np.log(p) - np.log1p(-p)
    np.testing.assert_allclose(q, 1 / (1 + np.exp(-z / t)), atol=2e-6)  # softmax(logits / T)
    assert all(sum(x.probabilities.values()) == pytest.approx(1.0, abs=1e-6) for x in new)
    assert [x.label for x in new] == ["malignant" if v >= card.threshold() else "benign" for v in q]
    assert {x.label for x in new} == {"benign", "malignant"}
    predictor.operating_point = "high_sensitivity"
    assert predictor.threshold == 0.2
    with pytest.raises(ValueError):
        Predictor(vgg, card, device="cpu", operating_point="strict")


def _pred(iid: int, arch: str, p: float, sha: str = SHA) -> ImagePrediction:
    return ImagePrediction(
        iid, 0, None, arch, "m", 1, {"benign": 1 - p, "malignant": p}, p, "malignant" if p >= 0.5 else "benign", sha
    )


def test_summarise_at_each_operating_point() -> None:
    preds = {
        (1, "vgg16"): _pred(1, "vgg16", 0.3),
        (2, "vgg16"): _pred(2, "vgg16", 0.6),
        (3, "vgg16"): _pred(3, "vgg16", 0.9),
        (1, "ensemble"): _pred(1, "ensemble", 0.3, "00" * 32),
    }
    thresholds = {SHA: POINTS}
    bal = summarise("P", preds, thresholds)
    v = bal.verdicts["vgg16"]
    assert (v.operating_point, v.threshold, v.label, v.malignant_votes) == ("balanced", 0.45, "malignant", 2)
    assert bal.verdicts["ensemble"].threshold == 0.5 and bal.verdicts["ensemble"].label == "benign"  # no card
    hs = bal.at("high_sensitivity")
    assert hs.verdicts["vgg16"].malignant_votes == 3 and hs.predictions[1, "vgg16"].label == "malignant"
    assert hs.disagreements == (1,)  # vgg16 malignant at 0.2, the ensemble (0.5) benign
    sp = bal.at("high_specificity")
    assert sp.verdicts["vgg16"].label == "benign" and sp.verdicts["vgg16"].benign_votes == 2
    assert sp.verdicts["vgg16"].mean_malignant_probability == pytest.approx(0.6)
    # one malignant, one benign image: a tie is malignant
    tie = summarise("P", {k: p for k, p in preds.items() if k[0] in (1, 3) and k[1] == "vgg16"}, thresholds)
    assert tie.verdicts["vgg16"].tie_decided and tie.verdicts["vgg16"].label == "malignant"
    # images of two model versions with different thresholds: the verdict says so
    mixed = summarise("P", preds | {(4, "vgg16"): _pred(4, "vgg16", 0.7, "11" * 32)}, thresholds)
    assert mixed.verdicts["vgg16"].threshold is None and mixed.verdicts["vgg16"].malignant_votes == 3


def test_older_registered_model_predicts_and_votes_with_threshold_half(  # type: ignore[no-untyped-def]
    tmp_path: Path, vgg, store
) -> None:
    from busviewer.ai.analysis import Analyzer
    from busviewer.ai.registry import ModelRegistry
    from busviewer.ai.results import guard_analysis, stored_analysis
    from busviewer.core.importer import import_paths

    reg = ModelRegistry()
    entry = reg.save(vgg, _card(sha256=""))
    assert "operating_points" not in json.loads(entry.card_path.read_text(encoding="utf-8"))
    reg.activate(entry.name, entry.version)
    folder = tmp_path / "in" / "PX"
    folder.mkdir(parents=True)
    for i, im in enumerate(_images(5)):
        Image.fromarray(im).save(folder / f"i{i}.png")
    import_paths(store, [folder])
    for point in OPERATING_POINTS:  # every point of an older model is 0.5
        analysis = Analyzer(store, reg, device="cpu", operating_point=point).analyse_patient("PX")
        v = analysis.verdicts["vgg16"]
        assert v.threshold == 0.5 and v.operating_point == point
        band = indeterminate_band(None, point)  # an older card: the default band around 0.5
        determinate = [
            p.malignant_probability
            for p in analysis.predictions.values()
            if not is_indeterminate(p.malignant_probability, band)
        ]
        assert v.malignant_votes == sum(q >= 0.5 for q in determinate)
        assert v.benign_votes == len(determinate) - v.malignant_votes
        assert v.label == (
            "indeterminate" if not determinate else "benign" if v.benign_votes > v.malignant_votes else "malignant"
        )
    stored = stored_analysis(store, "PX", "high_sensitivity")
    assert stored is not None and stored.stored and stored.verdicts["vgg16"].threshold == 0.5
    # the stored results carry the input guard's findings (the analysis recorded them:
    # these colour-noise images are outside the training data), as the app shows them
    assert stored.verdicts["vgg16"].label == guard_analysis(store, analysis).verdicts["vgg16"].label


def test_stored_results_use_the_recorded_card_thresholds(  # type: ignore[no-untyped-def]
    tmp_path: Path, vgg, store
) -> None:
    from busviewer.ai.analysis import Analyzer
    from busviewer.ai.registry import ModelRegistry
    from busviewer.core.importer import import_paths

    reg = ModelRegistry()
    entry = reg.save(
        vgg,
        _card(
            sha256="",
            calibration={"temperature": 2.0},
            operating_points={"high_sensitivity": 0.0, "balanced": 0.5, "high_specificity": 1.0},
        ),
    )
    folder = tmp_path / "in" / "PY"
    folder.mkdir(parents=True)
    for i, im in enumerate(_images(3)):
        Image.fromarray(im).save(folder / f"i{i}.png")
    import_paths(store, [folder])
    analyzer = Analyzer(store, reg, device="cpu", models=[entry.ref], operating_point="high_sensitivity")
    live = analyzer.analyse_patient("PY")
    assert live.verdicts["vgg16"].label == "malignant" and live.verdicts["vgg16"].malignant_votes == 3
    rows = store.latest_predictions([r.id for r in store.images("PY")])
    assert {r.label for r in rows.values()} == {"malignant"}  # the call at the point in force
    for (iid, arch), r in rows.items():  # stored = shown: the calibrated probability
        assert r.malignant_probability == live.predictions[iid, arch].malignant_probability
    assert store.model_cards()[entry.card.sha256]["operating_points"]["high_specificity"] == 1.0
    later = analyzer.stored_analysis("PY", "high_specificity")
    assert later.verdicts["vgg16"].label == "benign" and later.verdicts["vgg16"].threshold == 1.0
    assert {p.label for p in later.predictions.values()} == {"benign"}
