"""``busviewer predict --operating-point``: the verdict follows the chosen point's threshold,
says which point is in force, and probabilities are the calibrated ones (shown = stored)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from busviewer.cli import main
from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.store import Store

POINTS = {"high_sensitivity": 0.0, "balanced": 0.5, "high_specificity": 1.0}


@pytest.fixture
def calibrated_vgg() -> str:
    """A random-weight VGG-16 (64 px) whose card has a temperature and far-apart thresholds."""
    import torch

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model
    from busviewer.ai.registry import ModelRegistry

    torch.manual_seed(0)
    reg = ModelRegistry()
    entry = reg.save(
        build_model("vgg16", pretrained=False),
        ModelCard(
            name="cal-vgg",
            version=1,
            architecture="vgg16",
            input_size=64,
            pretrained_init="random",
            calibration={"temperature": 1.5},
            operating_points=POINTS,
        ),
    )
    reg.activate(entry.name, entry.version)
    return entry.ref


def _study(root: Path, n: int = 3) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(n):
        Image.fromarray(np.repeat(rng.integers(0, 255, (80, 96, 1), dtype=np.uint8), 3, axis=2)).save(
            root / f"img{i}.png"
        )
    return root


def _predict(db: str, target: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    assert main(["--store", db, "predict", target, "--json", "--device", "cpu", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_operating_point_flag_changes_the_verdict(
    tmp_path: Path, calibrated_vgg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "s.sqlite")
    folder = _study(tmp_path / "PATQ")
    sens = _predict(db, str(folder), capsys, "--operating-point", "high_sensitivity")
    assert sens["notice"] == RESEARCH_NOTICE and sens["operating_point"] == "high_sensitivity"
    assert sens["calibration"]["vgg16"] == {
        "temperature": 1.5,
        "thresholds": POINTS,
        "indeterminate_band": [0.0, pytest.approx(0.1)],
    }
    (pat,) = sens["patients"]
    v = pat["verdicts"]["vgg16"]
    assert (v["label"], v["malignant_votes"], v["threshold"]) == ("malignant", 3, 0.0)
    probs = [img["predictions"]["vgg16"]["malignant"] for img in pat["images"]]
    assert all(0 < p < 1 for p in probs)

    spec = _predict(db, "PATQ", capsys, "--operating-point", "high_specificity")
    v = spec["patients"][0]["verdicts"]["vgg16"]
    assert (v["label"], v["benign_votes"], v["threshold"], v["operating_point"]) == (
        "benign",
        3,
        1.0,
        "high_specificity",
    )
    # the same calibrated probabilities whatever the point; the stored ones are those shown
    assert [img["predictions"]["vgg16"]["malignant"] for img in spec["patients"][0]["images"]] == pytest.approx(
        probs, abs=1e-6
    )
    store = Store(db)
    stored = store.latest_predictions([i.id for i in store.images("PATQ")])
    assert sorted(r.malignant_probability for r in stored.values()) == pytest.approx(sorted(probs), abs=1e-6)
    assert {r.label for r in stored.values()} == {"benign"}  # the call at the point in force last

    default = _predict(db, "PATQ", capsys)
    assert default["operating_point"] == "balanced"
    assert default["patients"][0]["verdicts"]["vgg16"]["threshold"] == 0.5

    assert main(["--store", db, "predict", "PATQ", "--device", "cpu", "--operating-point", "high_specificity"]) == 0
    text = capsys.readouterr().out
    assert "verdict vgg16: benign" in text and "High specificity operating point (malignant if p ≥ 1.00)" in text
    assert RESEARCH_NOTICE in text
    with pytest.raises(SystemExit):
        main(["--store", db, "predict", "PATQ", "--operating-point", "strict"])
