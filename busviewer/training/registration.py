"""The final model's card and its registration, the last step of a training run
(used by :mod:`busviewer.training.run`).

:func:`build_card` assembles the :class:`~busviewer.ai.modelcard.ModelCard` (training
settings, split, test and CV metrics, calibration); :func:`register_final` fits the input
guard, saves the model in the registry (never activated), writes ``registered.json`` and
removes ``final/model.safetensors``. A resumed run that was registered already re-uses
its ``registered.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from busviewer.training.calib_eval import CalibrationHooks
from busviewer.training.cam_eval import MaskRunHooks
from busviewer.training.config import TrainConfig
from busviewer.training.data import CLASSES
from busviewer.training.events import ProgressCallback, Registered
from busviewer.training.metrics import scalars
from busviewer.training.report import json_safe, write_json
from busviewer.training.run_setup import FINAL_WEIGHTS
from busviewer.training.splits import SplitPlan

if TYPE_CHECKING:
    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.registry import ModelEntry

FINAL_MODEL_NOTE = (
    "The registered model is the one trained on the fixed patient-wise split: trained on the "
    "train patients, early-stopped on the validation patients, evaluated on the test patients "
    "(metrics.test). Cross-validation folds, if any, only estimate performance (metrics.cv)."
)


def build_card(
    cfg: TrainConfig,
    run_dir: Path,
    final: dict[str, Any],
    metrics: dict[str, Any],
    data_summary: dict[str, Any],
    plan: SplitPlan,
    *,
    device: torch.device,
    world_size: int,
    t0: float,
) -> ModelCard:
    """The card of the run's final model (version 0: the registry numbers it).

    ``t0``: the run's start (``time.monotonic()``), for the card's ``wall_s``.
    """
    from busviewer.ai.modelcard import ModelCard

    settings = {
        k: v
        for k, v in cfg.to_dict().items()
        if k not in ("data", "run_dir", "name", "description", "register", "split_file")
    }
    training = {
        "run_dir": str(run_dir),
        "data": {"source": str(cfg.data)} | data_summary,
        "split": {
            "file": str(run_dir / "split.json"),
            "method": "patient-wise, stratified by patient label (any malignant image)",
            "seed": plan.seed,
            "val_fraction": plan.val_fraction,
            "test_fraction": plan.test_fraction,
            "counts": plan.counts,
            "cv_folds": len(plan.folds),
        },
        "settings": settings | {"loss": "cross-entropy", "early_stopping": f"{cfg.early_stop}, best weights restored"},
        "recipe": cfg.recipe,
        "stages": final.get("stages", []),
        "device": str(device),
        "world_size": world_size,
        "registered_model": FINAL_MODEL_NOTE,
        "wall_s": round(time.monotonic() - t0, 1),
    }
    card_metrics = {"test": scalars(final.get("test") or {})}
    if metrics.get("cv"):
        card_metrics["cv"] = metrics["cv"]["mean_sd"]
    card_metrics |= MaskRunHooks.card_metrics(metrics)
    card_metrics |= CalibrationHooks.card_metrics(metrics)
    return ModelCard(
        name=cfg.model_name,
        version=0,
        architecture=cfg.architecture,
        input_mode=cfg.input_mode,
        input_size=cfg.input_size,
        normalisation={"mean": [float(v) for v in cfg.mean], "std": [float(v) for v in cfg.std]},
        classes=list(CLASSES),
        training=json_safe(training),
        metrics=json_safe(card_metrics),
        parent=final.get("_parent"),
        pretrained_init=final.get("_init") or "random",
        variant=cfg.variant,
        **CalibrationHooks.card_fields(final),
        description=cfg.description
        or f"{cfg.architecture} trained on {Path(str(cfg.data)).name if cfg.data != 'store' else 'the local store'}"
        f" (run {run_dir.name})",
    )


def register_final(
    registry: Any,
    cfg: TrainConfig,
    run_dir: Path,
    final: dict[str, Any],
    metrics: dict[str, Any],
    summary: dict[str, Any],
    plan: SplitPlan,
    train_samples: Sequence[Any] = (),
    *,
    device: torch.device,
    world_size: int,
    t0: float,
    emit: ProgressCallback,
) -> tuple[str, ModelEntry]:
    """Register the final model (``final["_model"]``) in ``registry``; returns (ref, entry).

    Emits :class:`~busviewer.training.events.Registered`. If ``registered.json`` exists
    (a resumed run registered earlier), returns that model instead.
    """
    marker = run_dir / "registered.json"
    if marker.is_file():  # resumed after the model was registered
        ref = json.loads(marker.read_text(encoding="utf-8"))["model"]
        entry = registry.get(ref)
        return ref, entry
    card = build_card(
        cfg,
        run_dir,
        final,
        metrics,
        summary | {"normal": cfg.normal},
        plan,
        device=device,
        world_size=world_size,
        t0=t0,
    )
    model = final["_model"].to("cpu")
    from busviewer.training.guard_fit import fit_guard_from_samples  # the input guard's feature summary

    guard = fit_guard_from_samples(model, card, train_samples)
    if guard is not None:
        card = card.with_updates(feature_guard=guard)
    entry = registry.save(model, card)
    write_json(
        marker,
        {
            "model": entry.ref,
            "weights": str(entry.weights_path),
            "card": str(entry.card_path),
            "sha256": entry.card.sha256,
            "activated": False,
        },
    )
    weights = run_dir / "final" / FINAL_WEIGHTS
    if weights.is_file():  # the registry holds the same weights now
        weights.unlink()
    emit(Registered(entry.name, entry.version, str(entry.weights_path)))
    return entry.ref, entry
