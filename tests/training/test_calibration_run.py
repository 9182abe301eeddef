"""A tiny training run fits the temperature and operating points on its validation
patients, reports them on its test patients (final model and CV mean ± SD), draws the
reliability diagram next to the ROC and records them in the registered model's card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from busviewer.core.operating import OPERATING_POINTS


def test_run_reports_calibration_and_operating_points(  # type: ignore[no-untyped-def]
    manifest: Path, tmp_path: Path, registry, fast_config, capsys: pytest.CaptureFixture[str]
) -> None:
    from busviewer.cli.train import _print_calibration
    from busviewer.training.calibration import apply_temperature, expected_calibration_error
    from busviewer.training.run import run_training

    run_dir = tmp_path / "run"
    res = run_training(fast_config(manifest, run_dir, name="cal-ens", folds=2), registry=registry)
    assert res.status == "finished"
    m = res.metrics
    cal = m["calibration"]
    assert cal["temperature"] > 0 and cal["val"]["n_images"] > 0
    test = cal["test"]
    assert test["n_images"] == m["test"]["n_images"]
    assert set(test["points"]) == set(OPERATING_POINTS)
    for pt in test["points"].values():
        for level in ("image", "patient"):
            assert 0 <= pt[level]["sensitivity"] <= 1 and 0 <= pt[level]["specificity"] <= 1

    # the figures are those of the stored test predictions, recomputed here
    rows = (run_dir / "final" / "predictions.csv").read_text(encoding="utf-8").splitlines()[1:]
    y = [int(r.split(",")[-4] == "malignant") for r in rows]
    p = [float(r.split(",")[-2]) for r in rows]
    assert test["ece_before"] == pytest.approx(expected_calibration_error(y, p), abs=1e-5)
    assert test["ece_after"] == pytest.approx(
        expected_calibration_error(y, apply_temperature(p, cal["temperature"])), abs=1e-5
    )

    cv = m["cv"]["calibration"]
    assert len(cv["folds"]) == 2
    assert cv["mean_sd"]["temperature"]["n"] == 2
    assert cv["mean_sd"]["ece_after"]["n"] == 2 and cv["mean_sd"]["auc_image"]["n"] >= 1
    assert (run_dir / "roc.png").is_file() and (run_dir / "reliability.png").is_file()
    saved = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert saved["calibration"]["temperature"] == cal["temperature"]

    card = registry.get(res.model).card
    assert card.calibration["temperature"] == pytest.approx(cal["temperature"])
    assert card.temperature == pytest.approx(cal["temperature"])
    assert card.calibration["ece_before"] == cal["val"]["ece_before"]
    assert card.calibration["ece_after"] == cal["val"]["ece_after"]
    if cal["operating_points"] is None:  # the validation patients had one class only
        assert card.operating_points is None and card.thresholds == dict.fromkeys(OPERATING_POINTS, 0.5)
    else:
        assert card.operating_points == {k: v["threshold"] for k, v in cal["operating_points"].items()}
    assert card.metrics["calibration"]["cv"]["ece_after"]["n"] == 2

    # `busviewer evaluate` applies the card's temperature and thresholds: same figures on the same test part
    from busviewer.training.run import evaluate_model

    rep = evaluate_model(
        res.model,
        str(manifest),
        split_file=run_dir / "split.json",
        part="test",
        device="cpu",
        registry=registry,
        out_dir=tmp_path / "eval",
    )
    ev = rep["calibration"]
    assert ev["temperature"] == pytest.approx(cal["temperature"])
    assert ev["test"]["ece_after"] == pytest.approx(test["ece_after"], abs=1e-5)
    for name, pt in test["points"].items():
        assert ev["test"]["points"][name]["threshold"] == pytest.approx(pt["threshold"])
        assert ev["test"]["points"][name]["patient"] == pytest.approx(pt["patient"])
    assert (tmp_path / "eval" / "reliability.png").is_file()

    _print_calibration(m)
    out = capsys.readouterr().out
    assert "temperature" in out and "High sensitivity" in out and "mean ± SD" in out
