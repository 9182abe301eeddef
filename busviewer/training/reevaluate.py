"""Complete a finished run's per-phase evaluation from its kept weights.

A run trained with ``keep_phase_weights`` (``busviewer train --keep-phase-weights``) keeps
every phase's ``<phase>/model.safetensors`` (CV folds and final). This module re-measures
what a phase reports after training - calibration and operating points
(:mod:`busviewer.training.calib_eval`) and, with lesion masks, Grad-CAM localisation
(:mod:`busviewer.training.cam_eval`) - and writes it into each phase's ``result.json``.
``busviewer train --resume RUN_DIR`` then aggregates the folds into ``metrics.json`` and
registers the final model with its temperature and operating points, exactly as a run
that measured them while training.

Used when the measurement code is newer than the run (a long run started before it
landed), or to add a localisation measure to a run trained without masks. The test
probabilities are predicted again with the kept weights; the stored ``predictions.csv``
must agree with them (a check that the weights are the ones that were tested).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from busviewer.training.checkpoint import load_weights

WEIGHTS = "model.safetensors"
RESULT = "result.json"


def _stored_probs(path: Path) -> list[tuple[str, float]]:
    """``(image path, p_malignant)`` rows of a phase's ``predictions.csv`` in file order."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["image"], float(r["p_malignant"])) for r in csv.DictReader(fh)]


def reevaluate_run(
    run_dir: str | Path,
    masks_dir: str | Path | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Add ``calibration`` (and with ``masks_dir`` ``localisation``) to every phase of
    ``run_dir`` whose weights were kept. Returns ``{phase: {"calibration": summary, ...}}``."""
    from busviewer.ai.device import choose_device
    from busviewer.ai.networks import build_model
    from busviewer.training.calib_eval import phase_calibration, summary
    from busviewer.training.cam_eval import MaskRunHooks
    from busviewer.training.config import TrainConfig
    from busviewer.training.data import ImageCache, load_samples
    from busviewer.training.evaluate import predict_samples
    from busviewer.training.masks import MaskOptions
    from busviewer.training.report import json_safe
    from busviewer.training.splits import SplitPlan, select

    run_dir = Path(run_dir)
    cfg = TrainConfig.load(run_dir / "config.json")
    plan = SplitPlan.load(run_dir / "split.json")
    saved = MaskOptions.load(run_dir)
    if masks_dir is not None:
        saved = MaskOptions(
            masks_dir=str(masks_dir),
            crops_dir=saved.crops_dir if saved else None,
            crop_margin=saved.crop_margin if saved else 0.2,
            cam_layer=saved.cam_layer if saved else None,
        )
        saved.save(run_dir)  # a resumed run aggregates the localisation of its phases
    hooks = MaskRunHooks(saved) if saved is not None and saved.active else None
    sset = load_samples(cfg.data, cfg.normal, cfg.label_sources, cfg.use_rois)
    if hooks is not None:
        sset = hooks.samples(sset)
    dev = choose_device(device)
    cache = ImageCache()
    out: dict[str, Any] = {}
    parts = [(f"fold-{i + 1}", f) for i, f in enumerate(plan.folds)] + [("final", plan.fixed)]
    for name, split in parts:
        phase_dir = run_dir / name
        if not (phase_dir / WEIGHTS).is_file() or not (phase_dir / RESULT).is_file():
            continue
        model = build_model(cfg.architecture, cfg.input_mode, 2, pretrained=False, variant=cfg.variant)
        model.load_state_dict(load_weights(phase_dir / WEIGHTS))
        model.to(dev).eval()
        val, test = select(sset.samples, split.val), select(sset.samples, split.test)
        probs = (
            predict_samples(model, test, cfg.input_size, cfg.mean, cfg.std, dev, cfg.eval_batch_size, cache)
            if test
            else None
        )
        stored = _stored_probs(phase_dir / "predictions.csv")
        if probs is not None and stored:
            same_images = [p for p, _ in stored] == [str(s.path) for s in test]
            if not same_images or np.max(np.abs(np.array([q for _, q in stored]) - np.asarray(probs))) > 1e-3:
                raise ValueError(
                    f"{phase_dir / WEIGHTS}: its test predictions differ from predictions.csv; "
                    "these are not the weights that were tested"
                )
        result = json.loads((phase_dir / RESULT).read_text(encoding="utf-8"))
        result["calibration"] = phase_calibration(
            model, cfg, val, test, None if probs is None else probs.tolist(), dev, cache
        )
        if hooks is not None:
            result["localisation"] = hooks.phase(model, cfg, val, test, phase_dir, cache, dev, lambda: None)
        (phase_dir / RESULT).write_text(json.dumps(json_safe(result), indent=2), encoding="utf-8")
        out[name] = {"calibration": summary(result["calibration"]), "localisation": result.get("localisation")}
        if progress:
            s = out[name]["calibration"]
            progress(
                f"{name}: T={s['temperature']:.3f} ECE {s['ece_before']} -> {s['ece_after']}"
                if s.get("ece_before") is not None
                else f"{name}: T={s['temperature']:.3f}"
            )
    return out
