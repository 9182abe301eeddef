"""Re-measuring a finished run from its kept phase weights, then resuming to register."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_reevaluate_then_resume_registers_the_calibrated_model(
    manifest: Path, tmp_path: Path, fast_config, registry
) -> None:  # type: ignore[no-untyped-def]
    from busviewer.training.reevaluate import reevaluate_run
    from busviewer.training.run import resume_training, run_training

    run_dir = tmp_path / "run"
    cfg = fast_config(manifest, run_dir, folds=2, keep_phase_weights=True, register=False)
    assert run_training(cfg, registry=registry).status == "finished"
    for phase in ("fold-1", "fold-2", "final"):
        assert (run_dir / phase / "model.safetensors").is_file()
        result = json.loads((run_dir / phase / "result.json").read_text())
        result.pop("calibration", None)  # as if the run predated the calibration code
        (run_dir / phase / "result.json").write_text(json.dumps(result))
    done = reevaluate_run(run_dir, device="cpu")
    assert set(done) == {"fold-1", "fold-2", "final"}
    for phase in done:
        cal = json.loads((run_dir / phase / "result.json").read_text())["calibration"]
        assert cal["temperature"] > 0 and cal["val"]["n_images"] > 0
    out = resume_training(run_dir, registry=registry, register=True)
    assert out.status == "finished" and out.model
    card = registry.get(out.model).card
    assert card.calibration is not None and card.calibration["temperature"] == pytest.approx(
        done["final"]["calibration"]["temperature"]
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["cv"]["calibration"]["folds"]) == 2


def test_reevaluate_refuses_weights_that_were_not_tested(manifest: Path, tmp_path: Path, fast_config, registry) -> None:  # type: ignore[no-untyped-def]
    from busviewer.training.checkpoint import load_weights, save_weights
    from busviewer.training.reevaluate import reevaluate_run
    from busviewer.training.run import run_training

    run_dir = tmp_path / "run"
    run_training(fast_config(manifest, run_dir, keep_phase_weights=True, register=False), registry=registry)
    w = run_dir / "final" / "model.safetensors"
    state = load_weights(w)
    state["head.bias"] = state["head.bias"] + __import__("torch").tensor([0.0, 3.0])  # another model
    save_weights(w, state)
    with pytest.raises(ValueError, match="not the weights that were tested"):
        reevaluate_run(run_dir, device="cpu")
