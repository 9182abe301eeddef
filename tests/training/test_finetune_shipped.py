"""Site retraining is fine-tuning of the shipped model: `busviewer train --init-from active`
starts from the active (shipped, de-quantised) model and records it as the parent; without
--init-from the CLI keeps its ImageNet/random initialisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from busviewer.cli import build_parser, main


@pytest.fixture
def shipped_vgg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A VGG-16 'bn' shipped (int8/fp16 shards) into a temporary shipped-models folder."""
    import torch

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model
    from busviewer.ai.registry import ModelRegistry
    from busviewer.ai.shipping import ShipOptions, ship_model

    torch.manual_seed(0)
    source = ModelRegistry(user_dir=tmp_path / "source", shipped_dir=tmp_path / "none")
    source.save(
        build_model("vgg16", pretrained=False, variant="bn"),
        ModelCard("vgg-default", 1, "vgg16", input_size=64, variant="bn", pretrained_init="random"),
    )
    ship_model(source, "vgg-default:1", ShipOptions(out_dir=tmp_path / "shipped", large_linear_min=100_000))
    monkeypatch.setenv("BUSVIEWER_SHIPPED_MODELS", str(tmp_path / "shipped"))
    return "vgg-default:1"


def test_cli_init_from_active_fine_tunes_the_shipped_model(
    manifest: Path, shipped_vgg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from busviewer.ai.registry import ModelRegistry
    from busviewer.cli.train import config_from_args, resolve_init_from

    common = [
        "train",
        "--data",
        str(manifest),
        "--model",
        "vgg16",
        "--epochs",
        "1",
        "--patience",
        "1",
        "--batch-size",
        "8",
        "--max-steps",
        "2",
        "--input-size",
        "64",
        "--device",
        "cpu",
        "--no-checkpoints",
        "--quiet",
    ]
    plain = resolve_init_from(config_from_args(build_parser().parse_args(common)))
    assert plain.init_from is None  # the CLI default stays ImageNet/random initialisation
    assert main([*common, "--init-from", "active", "--out", str(tmp_path / "run")]) == 0
    registered = json.loads((tmp_path / "run" / "registered.json").read_text())["model"]
    card = ModelRegistry().get(registered).card
    assert card.parent == shipped_vgg and card.variant == "bn"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["init_from"] == shipped_vgg
    capsys.readouterr()


def test_cli_init_from_active_without_a_model_is_an_error(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BUSVIEWER_SHIPPED_MODELS", str(tmp_path / "empty"))
    assert main(["train", "--data", str(manifest), "--model", "vgg16", "--init-from", "active", "--quiet"]) == 2
    assert "there is no active vgg16 model" in capsys.readouterr().err
