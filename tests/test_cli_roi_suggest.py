"""``busviewer roi suggest IMAGE [--accept]`` with tiny registered models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from busviewer.cli import main
from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.store import Store


@pytest.fixture
def tiny_ensemble() -> str:
    """A random-weight ensemble (64 px) whose card carries measured box parameters, active."""
    import torch

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model
    from busviewer.ai.registry import ModelRegistry

    torch.manual_seed(0)
    reg = ModelRegistry()
    card = ModelCard(
        name="tiny-ens",
        version=1,
        architecture="ensemble",
        input_size=64,
        pretrained_init="random",
        metrics={"localisation": {"box_params": {"fraction": 0.6, "margin": 0.1}}},
    )
    entry = reg.save(build_model("ensemble", pretrained=False), card)
    reg.activate(entry.name, entry.version)
    return entry.ref


def test_roi_suggest_then_accept(tmp_path: Path, tiny_ensemble: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.sqlite")
    folder = tmp_path / "in" / "PAT-S"
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:90, 0:120]
    img = 40 + 180 * np.exp(-((xx - 80) ** 2 + (yy - 30) ** 2) / 200.0)
    Image.fromarray(img.astype(np.uint8)).save(folder / "us.png")
    assert main(["--store", db, "import", str(folder)]) == 0
    image_id = Store(db).images("PAT-S")[0].id
    capsys.readouterr()

    assert main(["--store", db, "roi", "suggest", str(image_id), "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    s = out["suggestion"]
    assert out["notice"] == RESEARCH_NOTICE and "roi" not in out
    assert s["model"] == tiny_ensemble and s["architecture"] == "ensemble"
    assert (s["fraction"], s["margin"], s["params_source"]) == (0.6, 0.1, "model card")
    x0, y0, x1, y1 = s["box"]
    assert 0 <= x0 < x1 <= 120 and 0 <= y0 < y1 <= 90
    assert Store(db).rois(image_id) == []  # only a proposal so far

    assert main(["--store", db, "roi", "suggest", str(image_id), "--accept", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    store = Store(db)
    (roi,) = store.rois(image_id)
    assert f"accepted as ROI {roi.id}" in text and "ensemble" in text and RESEARCH_NOTICE in text
    assert list(roi.box) == s["box"]  # the same model and image: the same suggestion
    assert [a.action for a in store.audit_log("roi", roi.id)] == ["add_roi", "accept_suggested_roi"]
    assert store.latest_predictions([image_id], roi_id=roi.id)  # the crop was classified

    assert main(["--store", db, "roi", "suggest", "999", "--device", "cpu"]) == 1
    assert "no image 999" in capsys.readouterr().err
    assert main(["--store", db, "roi", "suggest", str(image_id), "--model", "vgg16", "--device", "cpu"]) == 1
    assert "no active vgg16 model" in capsys.readouterr().err
