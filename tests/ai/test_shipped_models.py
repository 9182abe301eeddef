"""The default models in models/: every shard verified, de-quantised weights reproduce the
probabilities recorded at ship time on real BUSI images, calibration and operating points present."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from busviewer.core.paths import SHIPPED_MODELS_DIR

BUSI = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "busi"


def _registry():  # type: ignore[no-untyped-def]
    from busviewer.ai.registry import ModelRegistry

    return ModelRegistry(user_dir=Path(tempfile.mkdtemp()), shipped_dir=SHIPPED_MODELS_DIR)


@pytest.mark.parametrize("arch", ["ensemble", "vgg16"])
def test_shipped_model_loads_verified_and_reproduces_its_regression_set(arch: str) -> None:
    from busviewer.ai.shipping import regression_check

    if not BUSI.is_dir():
        pytest.fail(f"the BUSI data are not at {BUSI}")
    reg = _registry()
    entry = reg.active(arch)
    assert entry is not None and entry.location == "shipped"
    card = entry.card
    shards = card.shipping["shards"] if isinstance(card.shipping.get("shards"), list) else None
    assert shards, "the card lists its shards"
    for f in Path(entry.weights_path).parent.glob("*.safetensors"):
        assert f.stat().st_size <= 95 * 1024 * 1024
    model, card = reg.load(entry.ref, device="cpu")
    assert card.calibration and card.calibration["temperature"] > 0
    assert set(card.operating_points or {}) == {"high_sensitivity", "balanced", "high_specificity"}
    assert regression_check(model, card, BUSI) <= 1e-4
