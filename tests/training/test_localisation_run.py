"""Localisation and lesion crops inside training runs and evaluations (tiny synthetic data)."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import blob_with_mask


def _manifest_with_masks(root: Path, n_patients: int = 14, size: int = 64) -> tuple[Path, Path]:
    """Blob images (masks in ``masks/<label>/<stem>_mask.png``) and two normal images without."""
    rng = np.random.default_rng(3)
    (root / "images").mkdir(parents=True)
    rows, k = [], 0
    for p in range(n_patients):
        label = "malignant" if p % 2 else "benign"
        for _ in range(2):
            k += 1
            img, mask = blob_with_mask(rng, label == "malignant", size)
            name = f"{label} ({k})"
            Image.fromarray(np.repeat(img[..., None], 3, axis=2)).save(root / "images" / f"{name}.png")
            (root / "masks" / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray((mask * 255).astype(np.uint8)).save(root / "masks" / label / f"{name}_mask.png")
            rows.append((f"images/{name}.png", label, f"P{p:02d}"))
    for i in range(2):
        img, _ = blob_with_mask(rng, False, size)
        Image.fromarray(np.repeat(img[..., None], 3, axis=2)).save(root / "images" / f"normal ({i}).png")
        rows.append((f"images/normal ({i}).png", "normal", f"N{i}"))
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", "patient_id"])
        w.writerows(rows)
    return manifest, root / "masks"


@pytest.fixture(scope="module")
def masked_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _manifest_with_masks(tmp_path_factory.mktemp("masked"))


def _check_summary(loc: dict) -> None:
    for k in (
        "pointing_game",
        "energy_inside",
        "mask_area_share",
        "box_iou",
        "box_contains_centre",
        "peak_near_border",
    ):
        assert loc[k] is None or 0.0 <= loc[k] <= 1.0, (k, loc[k])
    assert loc["images"] >= 1 and loc["layer"] in ("conv", "output")
    assert 0.0 < loc["box_params"]["fraction"] < 1.0 and loc["box_params"]["margin"] >= 0.0


def test_run_reports_localisation_per_fold_and_final(masked_data, tmp_path: Path, registry, fast_config) -> None:  # type: ignore[no-untyped-def]
    from busviewer.cli.train import cmd_evaluate
    from busviewer.training.masks import MaskOptions
    from busviewer.training.run import run_training

    manifest, masks = masked_data
    run_dir = tmp_path / "run"
    cfg = fast_config(manifest, run_dir, name="loc-ens", folds=2)
    result = run_training(cfg, registry=registry, masks=MaskOptions(masks_dir=str(masks), cam_layer="output"))
    assert result.status == "finished"
    m = result.metrics
    _check_summary(m["localisation"])
    assert m["localisation"]["layer"] == "output" and m["localisation"]["skipped_no_mask"] == 0
    assert m["localisation"]["images"] == m["test"]["n_images"]
    assert m["localisation"]["box_params"]["source"] == "validation"
    cv = m["cv"]["localisation"]
    assert len(cv["folds"]) == 2 and set(cv["mean_sd"]["pointing_game"]) == {"mean", "sd", "n"}
    assert sum(f["images"] for f in cv["folds"]) == sum(f["n_images"] for f in m["cv"]["folds"])
    for phase in ("fold-1", "fold-2", "final"):
        with open(run_dir / phase / "localisation.csv", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert rows and all(r["hit"] in ("True", "False") for r in rows)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["localisation"]["pointing_game"] == pytest.approx(m["localisation"]["pointing_game"])
    assert json.loads((run_dir / "masks.json").read_text())["masks_dir"] == str(masks)
    card = registry.get("loc-ens", 1).card
    bp = card.metrics["localisation"]["box_params"]
    assert bp == {k: m["localisation"]["box_params"][k] for k in ("fraction", "margin")}

    # evaluate the registered model on the run's test patients, box chosen on its validation part
    out = tmp_path / "eval"
    args = argparse.Namespace(
        model="loc-ens:1",
        data=str(manifest),
        split_file=str(run_dir / "split.json"),
        part="test",
        include_normal=True,
        label_sources=None,
        rois=False,
        device="cpu",
        batch_size=16,
        threshold=0.5,
        out=str(out),
        json=False,
        masks=str(masks),
        crops_from_masks=None,
        crop_margin=0.2,
        cam_layer="output",
    )
    assert cmd_evaluate(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    loc = report["localisation"]
    _check_summary(loc)
    assert loc["box_params"]["source"] == "validation"
    assert (out / "localisation.csv").is_file()
    # the same model, images and box parameters: the same figures as the run's final phase
    # (include_normal only adds images without masks, which are skipped and counted)
    assert loc["images"] == m["localisation"]["images"]
    assert loc["pointing_game"] == pytest.approx(m["localisation"]["pointing_game"])
    assert loc["box_iou"] == pytest.approx(m["localisation"]["box_iou"])


def test_cli_train_on_lesion_crops_and_evaluate_full_images(masked_data, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from busviewer.cli import train as cli

    manifest, masks = masked_data
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    run_dir = tmp_path / "crops"
    args = parser.parse_args(
        [
            "train",
            "--model",
            "ensemble",
            "--data",
            str(manifest),
            "--epochs",
            "1",
            "--patience",
            "1",
            "--batch-size",
            "8",
            "--input-size",
            "64",
            "--device",
            "cpu",
            "--max-steps",
            "1",
            "--no-pretrained",
            "--alexnet-trainable",
            "1",
            "--resnet-frozen",
            "6",
            "--out",
            str(run_dir),
            "--quiet",
            "--no-augment",
            "--no-checkpoints",
            "--include-normal",
            "--recipe",
            "seed",
            "--name",
            "crop-ens",
            "--crops-from-masks",
            str(masks),
            "--crop-margin",
            "0.3",
            "--masks",
            str(masks),
        ]
    )
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "Grad-CAM vs lesion masks" in out and "pointing game" in out
    summary = json.loads((run_dir / "data_summary.json").read_text())
    assert summary["dropped"]["no_mask"] == 2  # the normal images have no lesion to crop
    assert summary["images"] == 28 and "lesion crops" in summary["source"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["localisation"]["skipped_no_mask"] == 0
    from busviewer.ai.registry import ModelRegistry

    card = ModelRegistry().get("crop-ens").card
    assert "lesion crops" in card.training["data"]["source"]

    # the crop-trained model on the test patients' crops and on their full images, side by side
    reports = []
    for extra in (["--crops-from-masks", str(masks)], []):
        ev = parser.parse_args(
            [
                "evaluate",
                "crop-ens",
                "--data",
                str(manifest),
                "--device",
                "cpu",
                "--split-file",
                str(run_dir / "split.json"),
                "--json",
                *extra,
            ]
        )
        assert ev.handler(ev) == 0
        text = capsys.readouterr().out
        reports.append(json.loads(text[: text.rindex("}") + 1]))
    crops, full = reports
    assert crops["n_images"] == full["n_images"] == metrics["test"]["n_images"]


def test_measure_run_from_kept_weights_repeats_the_run(masked_data, tmp_path: Path, fast_config) -> None:  # type: ignore[no-untyped-def]
    from busviewer.training.cam_eval import main as cam_eval_main
    from busviewer.training.masks import MaskOptions
    from busviewer.training.run import run_training

    manifest, masks = masked_data
    run_dir = tmp_path / "kept"
    cfg = fast_config(manifest, run_dir, register=False)  # the final weights stay in final/
    result = run_training(cfg, masks=MaskOptions(masks_dir=str(masks)))
    out = tmp_path / "loc.json"
    assert cam_eval_main([str(run_dir), "--masks", str(masks), "--device", "cpu", "--out", str(out)]) == 0
    again = json.loads(out.read_text())["phases"]["final"]
    for k in ("images", "pointing_game", "energy_inside", "box_iou", "box_contains_centre"):
        assert again[k] == pytest.approx(result.metrics["localisation"][k]), k
    assert again["box_params"] == result.metrics["localisation"]["box_params"]
