"""Run-directory, resume and machinery helpers of a training run (used by :mod:`busviewer.training.run`).

Holds the run directory's file names, the settings a resumed run may change, the
:class:`RunResult`, preparing (or re-opening, on resume) the run directory, and the
device, mixed-precision, seeding and step-count helpers.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from busviewer.training import distributed as ddp
from busviewer.training.config import TrainConfig

CHECKPOINT_NAME = "checkpoint.safetensors"
FINAL_WEIGHTS = "model.safetensors"
RESULT_NAME = "result.json"
#: Settings that may differ when a run is resumed (machinery, not the experiment).
RESUME_OVERRIDABLE = (
    "device",
    "amp",
    "num_workers",
    "register",
    "name",
    "description",
    "keep_checkpoints",
    "keep_phase_weights",
    "checkpoints",
    "eval_batch_size",
    "distributed",
)


@dataclass
class RunResult:
    status: str  # "finished" | "cancelled"
    run_dir: Path
    metrics: dict[str, Any] | None = None
    model: str | None = None  # "name:version" when registered
    entry: Any = None  # busviewer.ai.registry.ModelEntry when registered
    wall_s: float = 0.0


def default_run_dir(cfg: TrainConfig) -> Path:
    from busviewer.core.paths import runs_dir

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return runs_dir() / f"{cfg.model_name}-{stamp}"


def prepare_run_dir(cfg: TrainConfig, resume: bool, dist: ddp.DistInfo) -> tuple[TrainConfig, Path]:
    """The run's config and resolved directory; creates it and writes ``config.json`` (main rank).

    On resume the stored config is used, with only the :data:`RESUME_OVERRIDABLE`
    settings taken from ``cfg``.
    """
    if resume:
        if not cfg.run_dir:
            raise ValueError("resume needs the run directory (TrainConfig.run_dir)")
        run_dir = Path(cfg.run_dir)
        stored = run_dir / "config.json"
        if not stored.is_file():
            raise FileNotFoundError(f"{run_dir}: no config.json; not a training run directory")
        saved = TrainConfig.load(stored)
        overrides = {k: getattr(cfg, k) for k in RESUME_OVERRIDABLE}
        cfg = dataclasses.replace(saved, **overrides, run_dir=str(run_dir))
    else:
        run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
        if dist.is_main and (run_dir / "config.json").exists():
            raise FileExistsError(f"{run_dir} already holds a training run; resume it or choose another directory")
        run_dir = Path(ddp.broadcast_object(str(run_dir), dist))
        cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    resolved = run_dir.resolve()
    if dist.is_main:
        resolved.mkdir(parents=True, exist_ok=True)
        cfg.save(resolved / "config.json")
    return cfg, resolved


def resume_config(run_dir: str | Path, device: str | None, overrides: dict[str, Any]) -> TrainConfig:
    """The stored config of ``run_dir`` with the allowed ``overrides`` (and ``device``) applied."""
    stored = TrainConfig.load(Path(run_dir) / "config.json")
    bad = sorted(set(overrides) - set(RESUME_OVERRIDABLE))
    if bad:
        raise ValueError(f"cannot change {bad} when resuming (only {RESUME_OVERRIDABLE})")
    if device:
        overrides["device"] = device
    return dataclasses.replace(stored, run_dir=str(run_dir), **overrides)


def amp_dtype_for(device: torch.device, amp: str) -> torch.dtype | None:
    """Mixed precision only on CUDA: bf16 where supported (``auto``), else fp16."""
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def choose_run_device(pref: str | None, dist: ddp.DistInfo) -> torch.device:
    """The device for this rank: ``pref`` (or the best available), the local GPU under torchrun."""
    from busviewer.ai.device import choose_device

    device = choose_device(pref)
    if device.type == "cuda" and dist.enabled:
        return torch.device("cuda", dist.local_rank)
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def steps_per_epoch(n_train: int, cfg: TrainConfig, world_size: int = 1) -> int:
    steps = math.ceil(math.ceil(n_train / max(1, world_size)) / cfg.batch_size)
    return min(steps, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else steps


def stage_names(architecture: str) -> tuple[str, ...]:
    return ("alexnet", "resnet", "head") if architecture == "ensemble" else (architecture,)
