"""The training wizard's worker bodies: what runs on pool threads, with plain data in and out.

Each ``task_*`` function is handed to :func:`busviewer.gui.workers.submit` by the wizard
(:mod:`busviewer.gui.training_wizard` and its helpers); torch, the registry and the store
are only touched here, never on the GUI thread. No Qt import: a task reports through the
``ctx`` (:class:`busviewer.gui.workers.TaskContext`) it is given.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from busviewer.services import locked_tests
from busviewer.services import models as model_service
from busviewer.services import training_data as wd
from busviewer.services import training_runs as runs

if TYPE_CHECKING:
    from busviewer.gui.workers import TaskContext

log = logging.getLogger(__name__)


@dataclass
class Env:
    """What the wizard needs to know about this computer (found in a worker)."""

    registry: Any
    active: dict[str, Any]
    imagenet: dict[str, tuple[bool, str]]
    devices: list[str]
    default_device: str
    device_names: dict[str, str] = field(default_factory=dict)
    resumable: list[runs.RunInfo] = field(default_factory=list)
    locked: Any = None
    locked_error: str = ""


def resolve_registry(registry: Any, factory: Callable[[], Any] | None) -> Any:
    """The wizard's registry, else one from its factory, else the default ``ModelRegistry()``."""
    if registry is not None:
        return registry
    if factory is not None:
        return factory()
    from busviewer.ai.registry import ModelRegistry

    return ModelRegistry()


def imagenet_status() -> dict[str, tuple[bool, str]]:
    """Per architecture: are the torchvision ImageNet weights in the local torch cache?"""
    import torch
    from torchvision import models as tvm

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    need = {
        "ensemble": [tvm.AlexNet_Weights.IMAGENET1K_V1, tvm.ResNet18_Weights.IMAGENET1K_V1],
        "vgg16": [tvm.VGG16_Weights.IMAGENET1K_V1],
    }
    out = {}
    for arch, weights in need.items():
        missing = [Path(w.url).name for w in weights if not (folder / Path(w.url).name).is_file()]
        out[arch] = (not missing, f"Missing in {folder}: {', '.join(missing)}." if missing else "")
    return out


def task_env(registry: Any, factory: Callable[[], Any] | None) -> Env:
    from busviewer.ai.architectures import ARCHITECTURES
    from busviewer.ai.device import available_devices, choose_device, describe_device
    from busviewer.gui.tasks import _limit_torch_threads, warm_up_training

    _limit_torch_threads()
    warm_up_training()
    reg = resolve_registry(registry, factory)
    active = {arch: reg.active(arch) for arch in ARCHITECTURES}
    devices = available_devices()
    try:
        default = str(choose_device(None))
    except Exception as exc:  # noqa: BLE001 - a bad BUSVIEWER_DEVICE is reported, not fatal
        default = f"unavailable: {exc}"
    names = {}
    for d in devices:
        try:
            names[d] = describe_device(d)
        except Exception:  # noqa: BLE001 - cosmetic
            names[d] = d
    locked, err = locked_tests.load()
    return Env(reg, active, imagenet_status(), devices, default, names, runs.list_resumable_runs(), locked, err)


class _Forward:
    """Progress callback of a training run: hands events to the GUI thread (``ctx.partial``),
    at most ten ``StepDone`` per second."""

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.last = 0.0

    def __call__(self, e: Any) -> None:
        from busviewer.training.events import StepDone

        if isinstance(e, StepDone):
            now = time.monotonic()
            if now - self.last < 0.1 and e.step != e.steps:
                return
            self.last = now
        self.ctx.partial(e)


def _outcome(result: Any) -> dict[str, Any]:
    run_dir = Path(result.run_dir)
    metrics_path = run_dir / "metrics.json"
    cfg_path = run_dir / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    return {
        "status": result.status,
        "run_dir": run_dir,
        "model": result.model,
        "metrics": json.loads(metrics_path.read_text(encoding="utf-8"))
        if (result.status == "finished" and metrics_path.is_file())
        else None,
        "config": cfg,
        "architecture": cfg.get("architecture"),
        "wall_s": result.wall_s,
    }


def task_train(
    spec: runs.RunSpec, store: Any, registry: Any, factory: Callable[[], Any] | None, ctx: TaskContext
) -> dict[str, Any]:
    from busviewer.gui.tasks import _limit_torch_threads
    from busviewer.training.config import TrainConfig
    from busviewer.training.run import run_training

    _limit_torch_threads()
    TrainConfig.from_dict({**spec.config, "data": "store"})  # invalid settings fail before a run folder exists
    reg = resolve_registry(registry, factory)
    cfg_kw, fstore, _counts = runs.prepare_run(spec, store)
    cfg = TrainConfig.from_dict(cfg_kw)
    result = run_training(cfg, _Forward(ctx), ctx.cancel, registry=reg, store=fstore)
    return _outcome(result)


def task_resume(
    run_dir: Path, store: Any, registry: Any, factory: Callable[[], Any] | None, ctx: TaskContext
) -> dict[str, Any]:
    from busviewer.gui.tasks import _limit_torch_threads
    from busviewer.training.run import resume_training

    _limit_torch_threads()
    reg = resolve_registry(registry, factory)
    fstore = runs.filtered_store_for(store, Path(run_dir))
    result = resume_training(run_dir, _Forward(ctx), ctx.cancel, registry=reg, store=fstore)
    return _outcome(result)


def task_compare(
    registry: Any,
    factory: Callable[[], Any] | None,
    store: Any,
    run_dir: Path,
    architecture: str,
    new_ref: str | None,
    ctx: TaskContext,
) -> dict[str, Any]:
    """The active model of ``architecture`` on the run's test patients (same split file,
    same label sources, same filters)."""
    from busviewer.training.run import evaluate_model
    from busviewer.training.splits import SplitPlan

    reg = resolve_registry(registry, factory)
    active = reg.active(architecture)
    out: dict[str, Any] = {"architecture": architecture, "model": None, "report": None, "overlap": 0}
    if active is None or active.ref == new_ref:
        return out
    cfg = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
    split_file = Path(run_dir) / "split.json"
    report = evaluate_model(
        active.ref,
        "store",
        split_file=split_file,
        part="test",
        normal=cfg.get("normal", "drop"),
        label_sources=cfg.get("label_sources"),
        use_rois=bool(cfg.get("use_rois")),
        device=cfg.get("device"),
        batch_size=int(cfg.get("eval_batch_size") or 64),
        threshold=float(cfg.get("threshold", 0.5)),
        registry=reg,
        store=runs.filtered_store_for(store, Path(run_dir)),
        cancel=ctx.cancel,
    )
    out.update(model=active.ref, report=report)
    try:  # was the active model trained on any of these test patients?
        old = active.card.training.get("split", {}).get("file") if isinstance(active.card.training, dict) else None
        if old and Path(old).is_file():
            test = set(SplitPlan.load(split_file).fixed.test)
            prev = SplitPlan.load(old)
            seen = set(prev.fixed.train) | set(prev.fixed.val)
            for f in prev.folds:
                seen |= set(f.train) | set(f.val)
            out["overlap"] = len(test & seen)
    except Exception as exc:  # noqa: BLE001 - a hint only
        log.info("overlap check skipped: %s", exc)
    return out


def task_near_duplicates(store: Any, ctx: TaskContext) -> tuple[list[wd.NearDuplicate], list[str], int]:
    """Near-identical images across patients among all labelled images: ``(pairs, problems, images)``."""
    items = store.training_items(label_sources=None, use_rois=False, classes=wd.CLASSES)
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] > 0.2:
            last[0] = now
            ctx.progress(done, total)

    pairs, problems = wd.near_duplicates(items, progress=progress, cancel=ctx.cancel)
    return pairs, problems, len({it.image_id for it in items})


def task_promote(registry: Any, factory: Callable[[], Any] | None, store: Any, name: str, version: int) -> Any:
    """Make ``name`` v``version`` the active model of its architecture (audited)."""
    return model_service.promote(resolve_registry(registry, factory), store, name, version)


def task_discard(registry: Any, factory: Callable[[], Any] | None, store: Any, name: str, version: int) -> str:
    """Delete ``name`` v``version`` from the registry (audited)."""
    return model_service.delete_model(resolve_registry(registry, factory), store, name, version)


__all__ = [
    "Env",
    "imagenet_status",
    "resolve_registry",
    "task_compare",
    "task_discard",
    "task_env",
    "task_near_duplicates",
    "task_promote",
    "task_resume",
    "task_train",
]
