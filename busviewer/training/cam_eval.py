"""Grad-CAM localisation of a model on labelled samples with lesion masks, and the hooks
that add it (and lesion crops) to training runs and evaluations.

``localisation_report`` computes Grad-CAM (:mod:`busviewer.ai.gradcam`, fused map for the
ensemble, explaining the predicted class as the reader sees it) for every test sample
that has a mask, chooses the CAM box's parameters on the validation samples (when given)
and returns the summary of :mod:`busviewer.training.localisation` plus per-image rows.

:class:`MaskRunHooks` is what :mod:`busviewer.training.run` calls: it saves/loads
``masks.json`` in the run directory (so a resumed run keeps the settings), turns samples
into lesion crops, measures each phase (folds and final) and adds ``metrics.localisation``
and ``metrics.cv.localisation`` (mean ± SD over the folds' test images).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from busviewer.ai.roi_suggest import DEFAULT_BOX_PARAMS, BoxParams
from busviewer.training.data import ImageCache, Sample, SampleSet
from busviewer.training.localisation import (
    choose_box_params,
    mean_sd_localisation,
    score_image,
    score_rows,
    summarise,
)
from busviewer.training.masks import MaskOptions, crop_samples, sample_mask

LOCALISATION_CSV = "localisation.csv"


def phase_card(
    architecture: str,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    variant: str = "classic",
    input_mode: str = "bmode",
) -> Any:
    """An unregistered model card carrying the preprocessing (for Grad-CAM during training)."""
    from busviewer.ai.modelcard import ModelCard

    return ModelCard(
        "training-phase",
        0,
        architecture,
        input_mode,
        input_size,
        normalisation={"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        pretrained_init="random",
        variant=variant,
    )


def masked(samples: Sequence[Sample], masks_dir: str | Path) -> tuple[list[Sample], list[np.ndarray], int]:
    """The samples that have a (non-empty) mask, their masks, and how many were skipped."""
    keep, masks = [], []
    for s in samples:
        m = sample_mask(masks_dir, s)
        if m is not None:
            keep.append(s)
            masks.append(m)
    return keep, masks, len(samples) - len(keep)


def sample_cams(
    model: nn.Module,
    card: Any,
    samples: Sequence[Sample],
    cache: ImageCache | None = None,
    device: torch.device | str | None = None,
    layer: str | None = None,
    batch_size: int = 16,
    check_cancel: Callable[[], None] | None = None,
) -> list[np.ndarray]:
    """Grad-CAM heatmap (predicted class) of each sample in its own pixels."""
    from busviewer.ai.gradcam import gradcam_batch

    cache = cache or ImageCache()
    out: list[np.ndarray] = []
    for start in range(0, len(samples), batch_size):
        if check_cancel is not None:
            check_cancel()
        chunk = [cache.get(s) for s in samples[start : start + batch_size]]
        out += [r.heatmap for r in gradcam_batch(model, card, chunk, device=device, batch_size=batch_size, layer=layer)]
    return out


def localisation_report(
    model: nn.Module,
    card: Any,
    test_samples: Sequence[Sample],
    masks_dir: str | Path,
    *,
    val_samples: Sequence[Sample] | None = None,
    box_params: BoxParams | None = None,
    layer: str | None = None,
    cache: ImageCache | None = None,
    device: torch.device | str | None = None,
    check_cancel: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(summary, per-image rows)``; the box parameters are chosen on ``val_samples``
    (with masks) if given, else ``box_params`` or the default."""
    from busviewer.ai.gradcam import DEFAULT_CAM_LAYER

    def cams_of(samples: Sequence[Sample]) -> list[np.ndarray]:
        return sample_cams(model, card, samples, cache=cache, device=device, layer=layer, check_cancel=check_cancel)

    params, chosen_on = box_params or DEFAULT_BOX_PARAMS, None
    if val_samples:
        vs, vmasks, _ = masked(val_samples, masks_dir)
        if vs:
            params, _table = choose_box_params(cams_of(vs), vmasks)
            chosen_on = len(vs)
    ts, masks, skipped = masked(test_samples, masks_dir)
    cams = cams_of(ts) if ts else []
    scores = [score_image(c, m, params, s.key) for c, m, s in zip(cams, masks, ts)]
    summary = summarise(scores) | {
        "skipped_no_mask": skipped,
        "layer": layer or DEFAULT_CAM_LAYER,
        "target": "predicted class",
        "box_params": {
            "fraction": params.fraction,
            "margin": params.margin,
            "source": params.source,
            "chosen_on_images": chosen_on,
        },
    }
    return summary, score_rows(scores)


def write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Per-image localisation as CSV."""
    cols = ["key", "hit", "energy", "area", "near_border", "box", "iou", "centre_in", "box_area"]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image" if c == "key" else c for c in cols])
        for r in rows:
            w.writerow([" ".join(map(str, r[c])) if c == "box" and r[c] else r[c] for c in cols])


class MaskRunHooks:
    """Lesion crops and localisation inside a training run (see the module docstring)."""

    def __init__(self, options: MaskOptions | None) -> None:
        self.options = options or MaskOptions()

    @classmethod
    def for_run(cls, options: MaskOptions | None, run_dir: Path, resume: bool, is_main: bool) -> MaskRunHooks | None:
        """Hooks for a run: a resumed run uses its saved ``masks.json``; None when unused."""
        saved = MaskOptions.load(run_dir) if resume else None
        opts = saved or options
        if opts is None or not opts.active:
            return None
        if is_main and saved is None:
            opts.save(run_dir)
        return cls(opts)

    def samples(self, sset: SampleSet) -> SampleSet:
        o = self.options
        return crop_samples(sset, o.crops_dir, o.crop_margin) if o.crops_dir else sset

    def phase(
        self,
        model: nn.Module,
        cfg: Any,
        val: Sequence[Sample],
        test: Sequence[Sample],
        phase_dir: Path,
        cache: ImageCache,
        device: torch.device,
        check_cancel: Callable[[], None] | None,
    ) -> dict[str, Any] | None:
        """Localisation of one phase's model on its test samples (box chosen on ``val``)."""
        if not self.options.masks_dir or not test:
            return None
        card = phase_card(cfg.architecture, cfg.input_size, cfg.mean, cfg.std, getattr(cfg, "variant", "classic"))
        summary, rows = localisation_report(
            model,
            card,
            test,
            self.options.masks_dir,
            val_samples=val,
            layer=self.options.cam_layer,
            cache=cache,
            device=device,
            check_cancel=check_cancel,
        )
        write_rows(phase_dir / LOCALISATION_CSV, rows)
        return summary

    @staticmethod
    def add_metrics(metrics: dict[str, Any], fold_results: Sequence[dict[str, Any]], final: dict[str, Any]) -> None:
        """``metrics.localisation`` (final model) and ``metrics.cv.localisation`` (folds)."""
        if final.get("localisation"):
            metrics["localisation"] = final["localisation"]
        folds = [r["localisation"] for r in fold_results if r.get("localisation")]
        if folds and isinstance(metrics.get("cv"), dict):
            metrics["cv"]["localisation"] = {"folds": folds, "mean_sd": mean_sd_localisation(folds)}

    @staticmethod
    def card_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
        """What the model card keeps: the box parameters for the suggested ROI and the figures."""
        loc = metrics.get("localisation")
        if not loc:
            return {}
        keep = {k: v for k, v in loc.items() if k != "box_params"}
        return {"localisation": keep | {"box_params": {k: loc["box_params"][k] for k in ("fraction", "margin")}}}


def evaluate_localisation(
    model: nn.Module,
    card: Any,
    samples: Sequence[Sample],
    options: MaskOptions,
    *,
    val_samples: Sequence[Sample] | None = None,
    device: torch.device | str | None = None,
    out_dir: str | Path | None = None,
    check_cancel: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """``busviewer evaluate --masks``: the model's localisation on ``samples``; box
    parameters chosen on ``val_samples`` if given, else the card's (or the default)."""
    from busviewer.ai.roi_suggest import box_params_for

    if not options.masks_dir:
        raise ValueError("measuring the localisation needs a folder of lesion masks (masks_dir)")
    summary, rows = localisation_report(
        model,
        card,
        samples,
        options.masks_dir,
        val_samples=val_samples,
        box_params=box_params_for(card),
        layer=options.cam_layer,
        device=device,
        check_cancel=check_cancel,
    )
    if out_dir:
        write_rows(Path(out_dir) / LOCALISATION_CSV, rows)
    return summary


def measure_run(
    run_dir: str | Path,
    masks_dir: str | Path,
    layer: str | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Re-measure the localisation of every phase of a finished run whose weights were kept
    (``<phase>/model.safetensors``): each model on its own test patients, the box chosen on
    its validation patients. Returns ``{"phases": {name: summary}, "cv": mean ± SD}``."""
    from busviewer.ai.device import choose_device
    from busviewer.ai.networks import build_model
    from busviewer.training.checkpoint import load_weights
    from busviewer.training.config import TrainConfig
    from busviewer.training.data import load_samples
    from busviewer.training.splits import SplitPlan, select

    run_dir = Path(run_dir)
    cfg = TrainConfig.load(run_dir / "config.json")
    plan = SplitPlan.load(run_dir / "split.json")
    sset = MaskRunHooks(MaskOptions.load(run_dir) or MaskOptions()).samples(
        load_samples(cfg.data, cfg.normal, cfg.label_sources, cfg.use_rois)
    )
    dev = choose_device(device)
    cache = ImageCache()
    phases: dict[str, Any] = {}
    parts = [(f"fold-{i + 1}", f) for i, f in enumerate(plan.folds)] + [("final", plan.fixed)]
    for name, split in parts:
        weights = run_dir / name / "model.safetensors"
        test = select(sset.samples, split.test)
        if not weights.is_file() or not test:
            continue
        model = build_model(cfg.architecture, cfg.input_mode, 2, pretrained=False, variant=cfg.variant)
        model.load_state_dict(load_weights(weights))
        model.to(dev).eval()
        card = phase_card(cfg.architecture, cfg.input_size, cfg.mean, cfg.std, cfg.variant)
        phases[name], _ = localisation_report(
            model,
            card,
            test,
            masks_dir,
            val_samples=select(sset.samples, split.val),
            layer=layer,
            cache=cache,
            device=dev,
        )
        if progress:
            progress(
                f"{name}: "
                + ", ".join(
                    f"{k} {phases[name][k]:.3f}"
                    for k in (
                        "pointing_game",
                        "energy_inside",
                        "mask_area_share",
                        "box_iou",
                        "box_contains_centre",
                        "box_area_share",
                    )
                    if phases[name][k] is not None
                )
            )
    folds = [v for k, v in phases.items() if k.startswith("fold-")]
    return {"run": str(run_dir), "layer": layer, "phases": phases, "cv": mean_sd_localisation(folds) if folds else None}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m busviewer.training.cam_eval RUN_DIR --masks DIR [--cam-layer L] [--out FILE]``."""
    import argparse
    import json

    from busviewer.training.localisation import format_localisation
    from busviewer.training.report import json_safe

    p = argparse.ArgumentParser(
        prog="python -m busviewer.training.cam_eval",
        description="Grad-CAM localisation of a run's kept phase weights (CV folds)",
    )
    p.add_argument("run_dir")
    p.add_argument("--masks", required=True, metavar="DIR")
    p.add_argument("--cam-layer", choices=("conv", "output"))
    p.add_argument("--device")
    p.add_argument("--out", metavar="FILE", help="write the result as JSON")
    args = p.parse_args(argv)
    res = measure_run(args.run_dir, args.masks, args.cam_layer, args.device, progress=print)
    if res["cv"]:
        print(format_localisation(res["cv"], f"{args.run_dir} ({args.cam_layer or 'default'} layer), CV mean ± SD:"))
    if args.out:
        Path(args.out).write_text(json.dumps(json_safe(res), indent=2), encoding="utf-8")
    return 0 if res["phases"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
