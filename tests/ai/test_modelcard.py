from __future__ import annotations

import json

import pytest

from busviewer.ai.modelcard import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelCard,
    ModelCardError,
    default_normalisation,
)

SHA = "ab" * 32


def _card(**kw) -> ModelCard:
    base = dict(name="ens", version=2, architecture="ensemble", sha256=SHA, pretrained_init="random")
    base.update(kw)
    return ModelCard(**base)


def test_defaults_and_round_trip() -> None:
    card = _card(training={"data": "BUSI", "epochs": 3}, metrics={"accuracy": 0.9}, parent="ens:1")
    assert card.classes == ["benign", "malignant"]
    assert card.normalisation == {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    assert card.ref == "ens:2" and card.stem == "ens-v2" and card.in_channels == 3
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert json.loads(card.to_json())["format"] == 1


def test_bse_normalisation_is_grey_then_rgb() -> None:
    card = _card(input_mode="bse")
    norm = default_normalisation("bse")
    assert card.normalisation == norm
    assert len(norm["mean"]) == len(norm["std"]) == 4
    assert norm["mean"][1:] == list(IMAGENET_MEAN) and norm["std"][1:] == list(IMAGENET_STD)
    assert 0.4 < norm["mean"][0] < 0.5 and 0.2 < norm["std"][0] < 0.25
    assert card.in_channels == 4


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("architecture", "resnet50", "architecture"),
        ("input_mode", "doppler", "input_mode"),
        ("input_size", 8, "input_size"),
        ("sha256", "xyz", "sha256"),
        ("parent", "ens", "parent"),
        ("pretrained_init", "coco", "pretrained_init"),
        ("classes", ["benign"], "classes"),
        ("classes", ["a", "a"], "classes"),
        ("name", "bad name/..", "name"),
        ("created", "yesterday", "created"),
        ("version", -1, "version"),
    ],
)
def test_invalid_fields_are_named(field: str, value, words: str) -> None:
    data = json.loads(_card().to_json())
    data[field] = value
    with pytest.raises(ModelCardError, match=words):
        ModelCard.from_json(json.dumps(data))


def test_normalisation_channel_count_checked() -> None:
    data = json.loads(_card().to_json())
    data["input_mode"] = "bse"  # keeps the 3-channel normalisation: invalid
    with pytest.raises(ModelCardError, match="normalisation.*4"):
        ModelCard.from_json(json.dumps(data))
    with pytest.raises(ModelCardError, match="std"):
        _card(normalisation={"mean": [0, 0, 0], "std": [1, 0, 1]})


def test_missing_unknown_and_garbage() -> None:
    data = json.loads(_card().to_json())
    del data["architecture"], data["sha256"]
    with pytest.raises(ModelCardError, match="missing.*architecture.*sha256"):
        ModelCard.from_json(json.dumps(data))
    data = json.loads(_card().to_json())
    data["weights_url"] = "http://x"
    with pytest.raises(ModelCardError, match="unknown field.*weights_url"):
        ModelCard.from_json(json.dumps(data))
    with pytest.raises(ModelCardError, match="not valid JSON"):
        ModelCard.from_json("{not json")
    with pytest.raises(ModelCardError, match="JSON object"):
        ModelCard.from_json("[1, 2]")


def test_registered_cards_need_version_and_sha() -> None:
    unregistered = _card(version=0, sha256="")
    with pytest.raises(ModelCardError, match="version"):
        ModelCard.from_json(unregistered.to_json())
    assert ModelCard.from_json(unregistered.to_json(), require_registered=False) == unregistered
    with pytest.raises(ModelCardError, match="sha256"):
        ModelCard.from_json(_card(sha256="").to_json())


def test_class_index() -> None:
    card = _card()
    assert card.class_index("malignant") == 1 and card.class_index(0) == 0
    with pytest.raises(ValueError):
        card.class_index("normal")
    with pytest.raises(ValueError):
        card.class_index(2)
