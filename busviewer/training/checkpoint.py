"""Resumable training checkpoints without pickle: one safetensors file per checkpoint.

Tensors (model weights, best weights of the current stage, the optimizer's per-parameter
state, RNG states) are safetensors entries under prefixes ``model.``, ``best.``,
``optim.``, ``rng.``; everything else (epoch, stage, early-stopping state, history, the
optimizer's param groups and non-tensor state, the GradScaler state, Python/NumPy RNG
states) is JSON stored in the safetensors header metadata (``busviewer.checkpoint``).
The file is written to a temporary name and moved into place with ``os.replace``, so a
crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

META_KEY = "busviewer.checkpoint"
FORMAT = "busviewer-checkpoint/1"


@dataclass
class Checkpoint:
    meta: dict[str, Any]
    model: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor] | None = None
    optimizer: dict[str, Any] | None = None
    rng: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = field(default=None, repr=False)
    ema: dict[str, torch.Tensor] | None = field(default=None, repr=False)  # averaged weights (TrainConfig.ema)


# ---------------------------------------------------------------- optimizer state
def flatten_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``state.<param>.<key>``) and JSON."""
    tensors: dict[str, torch.Tensor] = {}
    json_state: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = value
            else:
                json_state.setdefault(str(pid), {})[key] = value
    groups = []
    for g in state["param_groups"]:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()})
    return tensors, {"param_groups": groups, "scalars": json_state}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = t
    for pid, vals in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(vals)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g and isinstance(g["betas"], list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------- RNG
def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    np_state = np.random.get_state(legacy=True)
    if not isinstance(np_state, tuple):  # legacy=True gives the MT19937 tuple unless another bit generator is in use
        raise RuntimeError(f"numpy's global random state is not MT19937: {np_state.get('bit_generator')}")
    tensors["numpy"] = torch.from_numpy(np.asarray(np_state[1], dtype=np.uint32).astype(np.int64))
    py_state = random.getstate()
    meta = {
        "numpy": [str(np_state[0]), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    if "torch" in tensors:
        torch.set_rng_state(tensors["torch"].to(torch.uint8).cpu())
    cuda = sorted((int(k.split(".")[1]), v) for k, v in tensors.items() if k.startswith("cuda."))
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([v.to(torch.uint8).cpu() for _, v in cuda])
    if "numpy" in tensors and "numpy" in meta:
        name, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((name, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    if "python" in meta:
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))


# ---------------------------------------------------------------- save / load
def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def save_checkpoint(
    path: str | Path,
    meta: dict[str, Any],
    model_state: dict[str, torch.Tensor],
    best_state: dict[str, torch.Tensor] | None = None,
    optimizer_state: dict[str, Any] | None = None,
    rng: bool = True,
    ema_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in _cpu(model_state).items()}
    full_meta: dict[str, Any] = {"format": FORMAT, "meta": meta, "has_best": best_state is not None}
    if best_state is not None:
        tensors |= {f"best.{k}": v for k, v in _cpu(best_state).items()}
    if ema_state is not None:
        tensors |= {f"ema.{k}": v for k, v in _cpu(ema_state).items()}
    if optimizer_state is not None:
        opt_tensors, opt_meta = flatten_optimizer_state(optimizer_state)
        tensors |= {f"optim.{k}": v for k, v in _cpu(opt_tensors).items()}
        full_meta["optimizer"] = opt_meta
    if rng:
        rng_tensors, rng_meta = capture_rng()
        tensors |= {f"rng.{k}": v for k, v in _cpu(rng_tensors).items()}
        full_meta["rng"] = rng_meta
    # Tensors sharing storage (tied weights) must be stored separately.
    seen: set[tuple[int, int]] = set()
    for k, v in list(tensors.items()):
        key = (v.untyped_storage().data_ptr(), int(v.storage_offset()))
        if v.numel() and key in seen:
            tensors[k] = v.clone()
        seen.add(key)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(full_meta)})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """Only the JSON part (cheap: no tensors are read)."""
    with safe_open(str(path), framework="pt") as f:
        md = f.metadata() or {}
    if META_KEY not in md:
        raise ValueError(f"{path} is not a busviewer checkpoint")
    return json.loads(md[META_KEY])["meta"]


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "best": {}, "optim": {}, "rng": {}, "ema": {}}
    with safe_open(str(path), framework="pt", device=str(device) if str(device) != "mps" else "cpu") as f:
        md = f.metadata() or {}
        if META_KEY not in md:
            raise ValueError(f"{path} is not a busviewer checkpoint")
        full = json.loads(md[META_KEY])
        for name in f.keys():  # noqa: SIM118 - safe_open has no __iter__
            prefix, rest = name.split(".", 1)
            groups[prefix][rest] = f.get_tensor(name)
    if full.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format {full.get('format')!r}")
    opt = unflatten_optimizer_state(groups["optim"], full["optimizer"]) if "optimizer" in full else None
    rng_tensors = {k: v.cpu() for k, v in groups["rng"].items()}
    return Checkpoint(
        meta=full["meta"],
        model=groups["model"],
        best=groups["best"] if full.get("has_best") else None,
        optimizer=opt,
        rng=(rng_tensors, full.get("rng", {})) if rng_tensors else None,
        ema=groups["ema"] or None,
    )


def save_weights(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Model weights only (safetensors), written atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(_cpu(state), str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_weights(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path), device=device)
