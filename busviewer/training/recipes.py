"""Named training recipes: presets of :class:`~busviewer.training.config.TrainConfig`.

- ``seed``: the papers' settings (seeds 001/000): Adam lr 1e-4, constant rate,
  cross-entropy, random resized crop + flip + light jitter, early stopping on the
  validation loss, the ensemble trained in stages, the classic torchvision networks.
- ``busviewer`` (the default of ``busviewer train`` and the wizard): what measured best
  here from random initialisation (docs/RESULTS.md has the figures and the ablation):
  batch-normalised networks, AdamW with weight decay, warm-up + cosine decay, early
  stopping on validation patient AUC with best-weights restore, ultrasound augmentation
  (resized crop, flip, small rotation, gain/gamma), label smoothing, EMA of the weights,
  class-balanced sampling and the ensemble trained end to end in one stage.

Explicit settings always override the preset; ``TrainConfig.recipe`` records the preset.
"""

from __future__ import annotations

from typing import Any

from busviewer.training.config import AugmentConfig, TrainConfig

RECIPES: tuple[str, ...] = ("seed", "busviewer")
DEFAULT_RECIPE = "busviewer"

_BUSVIEWER: dict[str, Any] = {
    "variant": "bn",
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.05,
    "schedule": "cosine",
    "warmup_epochs": 2,
    "epochs": 40,
    "patience": 12,
    "early_stop": "val_auc",
    "label_smoothing": 0.1,
    "mixup": 0.0,
    "ema": 0.99,
    "balance": "sampler",
    "ensemble_schedule": "joint",
    "augment": {
        "crop": "resized",
        "crop_scale": (0.6, 1.0),
        "hflip": True,
        "brightness": 0.25,
        "contrast": 0.25,
        "scale": 0.0,
        "rotation": 10.0,
        "gamma": 0.25,
        "noise": 0.0,
        "blur": 0.0,
    },
}


def recipe_settings(name: str) -> dict[str, Any]:
    """The settings a recipe sets (``seed``: the dataclass defaults, i.e. nothing)."""
    if name == "seed":
        return {}
    if name == "busviewer":
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in _BUSVIEWER.items()}
    raise ValueError(f"unknown recipe {name!r}; expected one of {RECIPES}")


def make_config(recipe: str = DEFAULT_RECIPE, augment: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a recipe, with explicit ``overrides`` (and augmentation
    ``augment`` overrides) applied on top."""
    settings = recipe_settings(recipe)
    aug = dict(settings.pop("augment", {}))
    aug.update(augment or {})
    settings.update(overrides)
    settings["recipe"] = recipe
    return TrainConfig(augment=AugmentConfig(**aug), **settings)
