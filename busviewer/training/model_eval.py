"""Evaluating a registered model on labelled data (:func:`evaluate_model`, what ``busviewer
train --evaluate`` and the wizard call; re-exported by :mod:`busviewer.training.run`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from busviewer.training.calib_eval import card_calibration
from busviewer.training.cam_eval import MaskRunHooks, evaluate_localisation
from busviewer.training.data import CLASSES, load_samples
from busviewer.training.evaluate import evaluate_samples, write_predictions
from busviewer.training.loop import TrainingCancelled
from busviewer.training.masks import MaskOptions
from busviewer.training.report import write_json, write_plots
from busviewer.training.run_setup import amp_dtype_for
from busviewer.training.splits import SplitPlan, select


def evaluate_model(
    model_ref: str,
    data: str,
    *,
    split_file: str | Path | None = None,
    part: str = "test",
    normal: str = "drop",
    label_sources: Sequence[str] | None = None,
    use_rois: bool = False,
    device: str | None = None,
    batch_size: int = 64,
    threshold: float = 0.5,
    registry: Any = None,
    store: Any = None,
    out_dir: str | Path | None = None,
    cancel: Any = None,
    masks: MaskOptions | None = None,
) -> dict[str, Any]:
    """Evaluate a registered model (``name`` or ``name:version``) on labelled data,
    optionally only on the patients of one part of a saved split. Returns the report
    (image-wise, patient-wise, recognition rate, and ``calibration``: the card's temperature
    and operating points applied); with ``out_dir`` also writes ``metrics.json``,
    ``predictions.csv`` (uncalibrated network output), ``roc.png`` and ``reliability.png``
    there. ``masks``: evaluate on lesion
    crops and/or add ``localisation`` (box parameters chosen on the split's validation part)."""
    from busviewer.ai.device import choose_device
    from busviewer.ai.registry import ModelRegistry

    registry = registry or ModelRegistry()
    entry = registry.get(model_ref)
    dev = choose_device(device)
    model, card = registry.load(entry, device=dev)
    if list(card.classes) != list(CLASSES):
        raise ValueError(f"{entry.ref} has classes {card.classes}; evaluation expects {list(CLASSES)}")
    sset = load_samples(data, normal, label_sources, use_rois, store)
    if masks is not None:
        sset = MaskRunHooks(masks).samples(sset)
    samples = sset.samples
    if split_file:
        plan = SplitPlan.load(split_file)
        samples = select(samples, plan.fixed.part(part))
    if not samples:
        raise ValueError(
            "no labelled images to evaluate" + (f" in part {part!r} of {split_file}" if split_file else "")
        )

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled(None, None, None)

    report, probs = evaluate_samples(
        model,
        samples,
        card.input_size,
        card.mean,
        card.std,
        dev,
        batch_size,
        threshold,
        amp_dtype=amp_dtype_for(dev, "auto"),
        check_cancel=check,
    )
    if masks is not None and masks.masks_dir:
        val = select(sset.samples, plan.fixed.val) if split_file and part != "val" else None
        report["localisation"] = evaluate_localisation(
            model, card, samples, masks, val_samples=val, device=dev, out_dir=out_dir, check_cancel=check
        )
    report["calibration"] = card_calibration(card, samples, probs)  # the card's temperature and operating points
    report["model"] = entry.ref
    report["model_sha256"] = card.sha256
    report["data"] = str(data)
    report["split"] = {"file": str(split_file), "part": part} if split_file else None
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", report)
        write_predictions(out / "predictions.csv", samples, probs.tolist(), threshold)
        write_plots(out, report, [], title=entry.ref, calibration=report["calibration"])
    return report
