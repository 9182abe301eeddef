"""Datasets, patient-wise splits, augmentation, training loop and metrics. Never imports Qt.

Entry points (imported lazily, so ``import busviewer.training`` does not load torch)::

    from busviewer.training import TrainConfig, AugmentConfig, run_training, resume_training
    from busviewer.training import evaluate_model, RunResult, events

See :mod:`busviewer.training.run` for the run directory layout and
:mod:`busviewer.training.events` for the progress events.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "TrainConfig": "busviewer.training.config",
    "AugmentConfig": "busviewer.training.config",
    "run_training": "busviewer.training.run",
    "resume_training": "busviewer.training.run",
    "evaluate_model": "busviewer.training.run",
    "RunResult": "busviewer.training.run",
    "TrainingCancelled": "busviewer.training.loop",
    "ProgressPrinter": "busviewer.training.events",
}

__all__ = [*_LAZY, "events"]


def __getattr__(name: str) -> Any:
    if name == "events":
        return importlib.import_module("busviewer.training.events")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'busviewer.training' has no attribute {name!r}")
