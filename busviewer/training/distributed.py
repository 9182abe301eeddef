"""Multi-GPU training with ``torchrun`` (DistributedDataParallel).

Launch the same command under torchrun; nothing else changes::

    torchrun --standalone --nproc_per_node=4 -m busviewer train --model ensemble \\
        --data /data/busi/manifest.csv --epochs 30

When ``WORLD_SIZE`` > 1 every process joins the process group (NCCL on CUDA, Gloo on
CPU), uses GPU ``LOCAL_RANK``, wraps the network of each training stage in
``DistributedDataParallel`` and reads its own shard of the training images through a
distributed sampler (the batch size is per process, so the effective batch is
``batch_size * WORLD_SIZE``). Validation and test predictions are computed identically on
every rank and rank 0's early-stopping decision is broadcast, so all ranks stop together.
Only rank 0 writes the run directory (checkpoints, split, metrics, plots), prints
progress and registers the model; ``--resume`` works the same way (all ranks read the
checkpoint, so the run directory must be on a shared file system for multi-node runs).
A cancel request on any rank stops all ranks at the same step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return dist.is_available() and dist.is_initialized()

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def setup(distributed: bool | None, device_hint: str | None = None) -> DistInfo:
    """Join the process group when asked (``True``) or when ``WORLD_SIZE`` > 1 (``None``)."""
    if distributed is False or not dist.is_available():
        return DistInfo()
    if dist.is_initialized():
        return DistInfo(dist.get_world_size(), dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")))
    if distributed is None and env_world_size() <= 1:
        return DistInfo()
    use_cuda = torch.cuda.is_available() and (device_hint in (None, "cuda") or str(device_hint).startswith("cuda"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(dist.get_world_size(), dist.get_rank(), local_rank, initialized_here=True)


def cleanup(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled or info.world_size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any rank."""
    if not info.enabled or info.world_size == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_across(value: float, info: DistInfo, device: torch.device) -> float:
    if not info.enabled or info.world_size == 1:
        return value
    t = torch.tensor([float(value)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item() / info.world_size)


def barrier(info: DistInfo) -> None:
    if info.enabled and info.world_size > 1:
        dist.barrier()
