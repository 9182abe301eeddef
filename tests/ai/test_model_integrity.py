"""Model integrity (issue 15): the card is covered by the integrity hash, its fields and the
weights' values are checked at import and load, and a non-finite model output is an error
for that image, never a crash or a NULL row. ``benchmarks/corrupt_models.py`` runs 100
variants; here one of each kind."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from busviewer.ai.integrity import card_integrity, check_card_fields, seal
from busviewer.ai.modelcard import ModelCard
from busviewer.ai.networks import build_model
from busviewer.ai.registry import ModelFileError, ModelRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import corrupt_models  # noqa: E402


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("integrity")
    reg = ModelRegistry(user_dir=root / "user", shipped_dir=root / "none")
    torch.manual_seed(0)
    model = build_model("ensemble", "bmode", pretrained=False)
    entry = reg.save(model, ModelCard("src", 1, "ensemble", "bmode", input_size=64, pretrained_init="random"))
    yield root, reg, entry, model
    shutil.rmtree(root, ignore_errors=True)


def test_saved_card_is_sealed_over_card_and_weights(source) -> None:
    _, _, entry, _ = source
    card = ModelCard.read(entry.card_path)
    assert card.integrity == card_integrity(card)
    assert card_integrity(card.with_updates(classes=["malignant", "benign"])) != card.integrity
    assert card_integrity(card.with_updates(sha256="0" * 64)) != card.integrity
    assert card_integrity(card.with_updates(normalisation={"mean": [0.5] * 3, "std": [0.5] * 3})) != card.integrity


@pytest.mark.parametrize(
    "kind, index, words",
    [
        ("value", 0, "integrity hash mismatch"),
        ("nan", 1, r"non-finite value\(s\) \(NaN/inf\)"),
        ("inf", 2, "integrity hash mismatch"),  # sha256 recomputed, integrity not
        ("negvar", 3, r"running_var \(BatchNorm variance\) has 1 negative value"),
        ("classes", 0, r"classes must be exactly \['benign', 'malignant'\] in that order"),
        ("norm", 1, r"'std' values must be > 0"),
        ("norm", 4, "integrity hash mismatch"),
        ("header", 1, "needs .* bytes but the header gives|shape"),
        ("truncate", 4, "truncated safetensors file|not a safetensors file"),
        ("pickle", 0, "it is a ZIP archive"),
        ("card", 0, "has no integrity hash"),
        ("card", 2, "input_size 4000 is outside 32..1024"),
    ],
)
def test_corrupted_variant_refused_at_import(source, tmp_path: Path, kind: str, index: int, words: str) -> None:
    _, _, entry, _ = source
    card_path = corrupt_models.make_variant(kind, index, entry.weights_path, entry.card.to_dict(), tmp_path / "v")
    target = ModelRegistry(user_dir=tmp_path / "target", shipped_dir=tmp_path / "none")
    with pytest.raises(ModelFileError, match=words) as info:
        target.import_model(card_path)
    assert str(tmp_path / "v") in str(info.value)  # the message names the file
    assert target.list() == []  # nothing registered: nothing can reach predict


def test_load_checks_values_and_card_of_files_placed_by_hand(source, tmp_path: Path, caplog) -> None:
    _, _, entry, _ = source
    user = tmp_path / "user"
    card_path = corrupt_models.make_variant("nan", 1, entry.weights_path, entry.card.to_dict(), user)  # sealed
    reg = ModelRegistry(user_dir=user, shipped_dir=tmp_path / "none")
    with pytest.raises(ModelFileError, match="non-finite value"):
        reg.load("src:1")
    # A card written before the integrity hash existed still loads (fields checked), with a warning.
    shutil.copyfile(entry.weights_path, card_path.with_suffix(".safetensors"))
    data = entry.card.to_dict()
    data.pop("integrity")
    card_path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="busviewer.ai.integrity"):
        model, card = ModelRegistry(user_dir=user, shipped_dir=tmp_path / "none").load("src:1")
    assert card.integrity is None and "has no integrity hash (older card)" in caplog.text
    # ... but its classes are checked all the same.
    data["classes"] = ["malignant", "benign"]
    card_path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="in that order"):
        ModelRegistry(user_dir=user, shipped_dir=tmp_path / "none").load("src:1")


def test_card_fields_are_sane() -> None:
    good = ModelCard("f", 1, "vgg16", input_size=64, sha256="0" * 64)
    check_card_fields(good, "f")
    for changes, words in (
        ({"classes": ["benign", "malignant", "normal"]}, "exactly"),
        ({"input_size": 2048}, "outside 32..1024"),
        ({"normalisation": {"mean": [0.5] * 3, "std": [1e-6] * 3}}, "std"),
        ({"normalisation": {"mean": [1e6] * 3, "std": [0.2] * 3}}, "mean"),
    ):
        with pytest.raises(ModelFileError, match=words):
            check_card_fields(good.with_updates(**changes), "f")


def test_non_finite_output_is_a_per_image_error_not_a_row(source, tmp_path: Path, store) -> None:
    from busviewer.ai.analysis import Analyzer
    from busviewer.ai.integrity import NonFiniteOutput
    from busviewer.core.importer import import_paths

    _, _, _, model = source
    root = tmp_path
    reg = ModelRegistry(user_dir=root / "user", shipped_dir=root / "none")
    blown = build_model("ensemble", "bmode", pretrained=False)
    blown.load_state_dict(model.state_dict())
    with torch.no_grad():  # finite weights whose logits overflow to +inf / -inf
        blown.head.weight[0].fill_(3e38)
        blown.head.weight[1].fill_(-3e38)
    entry = reg.save(blown, ModelCard("blown", 1, "ensemble", "bmode", input_size=64, pretrained_init="random"))
    folder = root / "images" / "P1"
    folder.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(folder / "a.png")
    assert import_paths(store, [root / "images"]).added == 1
    analyzer = Analyzer(store, registry=reg, device="cpu", models=[entry.ref])
    result = analyzer.analyse_patient("P1")
    assert any(
        "gave a non-finite output (NaN/inf) for this image; no result was stored" in p for p in result.problems
    ), result.problems
    image_id = store.images("P1")[0].id
    assert store.latest_predictions([image_id]) == {}
    roi = store.add_roi(image_id, (10, 10, 60, 60))
    with pytest.raises(NonFiniteOutput, match="a.png: the ensemble model blown:1 gave a non-finite output"):
        analyzer.classify_roi(roi.id)
    assert store.latest_predictions([image_id], roi_id=roi.id) == {}


def test_seal_is_idempotent_and_tracks_version(source) -> None:
    _, _, entry, _ = source
    card = entry.card
    assert seal(card) == card
    assert seal(card.with_updates(version=7)).integrity != card.integrity
