"""Training run use cases (the training wizard and ``busviewer train runs``), no Qt:

- :func:`prepare_run` writes the run's split (locked test patients as the test part) and
  the wizard's choices into a new run directory; :func:`list_resumable_runs` finds runs
  that were stopped before they finished; display helpers for their figures.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from busviewer.services.training_data import CLASSES, WIZARD_FILE, WIZARD_FORMAT, WIZARD_SPLIT, FilteredStore


@dataclass
class RunSpec:
    """Everything the wizard decided, as plain data for the training worker."""

    config: dict[str, Any]  # TrainConfig keyword arguments (data, run_dir, split_file are set here)
    since: datetime | None
    excluded: list[str]
    locked: Any  # LockedTestSet
    val_fraction: float
    folds: int
    seed: int
    store_url: str = ""
    run_dir: Path | None = None


def new_run_dir(name: str, root: Path | None = None) -> Path:
    from busviewer.core.paths import runs_dir

    base = Path(root) if root is not None else runs_dir()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    d = base / f"{name}-{stamp}"
    k = 2
    while d.exists():
        d = base / f"{name}-{stamp}-{k}"
        k += 1
    return d


def filtered_store_for(store: Any, run_dir: Path) -> Any:
    """The store as a wizard run saw it (date / patient filters from ``wizard.json``)."""
    p = Path(run_dir) / WIZARD_FILE
    if not p.is_file():
        return store
    d = json.loads(p.read_text(encoding="utf-8"))
    since = datetime.fromisoformat(d["label_updated_since"]) if d.get("label_updated_since") else None
    return FilteredStore(store, since, d.get("excluded_patients") or [])


def prepare_run(spec: RunSpec, store: Any) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Create the run directory: the split (test = the locked patients) as ``wizard_split.json``
    and the wizard's filters as ``wizard.json``. Returns ``(config kwargs, filtered store,
    split counts)``. Run in a worker."""
    from busviewer.training.data import samples_from_items
    from busviewer.training.locked_test import plan_with_locked_test, save_plan

    cfg = dict(spec.config)
    fstore = FilteredStore(store, spec.since, spec.excluded)
    items = fstore.training_items(
        label_sources=cfg.get("label_sources"), use_rois=bool(cfg.get("use_rois")), classes=CLASSES
    )
    samples = samples_from_items(items, normal="drop", use_rois=bool(cfg.get("use_rois"))).samples
    plan = plan_with_locked_test(samples, spec.locked, spec.val_fraction, spec.folds, spec.seed)
    run_dir = Path(spec.run_dir or new_run_dir(str(cfg.get("name") or cfg.get("architecture", "model"))))
    run_dir.mkdir(parents=True, exist_ok=False)
    split_file = save_plan(plan, spec.locked, run_dir / WIZARD_SPLIT, samples)
    wizard = {
        "format": WIZARD_FORMAT,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "label_updated_since": spec.since.isoformat() if spec.since else None,
        "excluded_patients": sorted(spec.excluded),
        "validation": {"val_fraction": spec.val_fraction, "folds": spec.folds, "seed": spec.seed},
        "locked_test": {
            "created": spec.locked.created,
            "patients": len(spec.locked.patients),
            "seed": spec.locked.seed,
            "fraction": spec.locked.fraction,
        },
        "store": spec.store_url,
    }
    (run_dir / WIZARD_FILE).write_text(json.dumps(wizard, indent=1), encoding="utf-8")
    cfg.update(data="store", run_dir=str(run_dir), split_file=str(split_file), folds=spec.folds, seed=spec.seed)
    return cfg, fstore, plan.counts


@dataclass
class RunInfo:
    """A run directory found in ``runs_dir()``."""

    run_dir: Path
    name: str
    architecture: str
    started: datetime | None
    state: str  # cancelled | failed | interrupted | finished | registered
    where: str = ""  # e.g. "final / alexnet, epoch 3"
    from_wizard: bool = False
    error: str = ""

    @property
    def resumable(self) -> bool:
        return self.state in ("cancelled", "failed", "interrupted")

    def describe(self) -> str:
        when = self.started.strftime("%Y-%m-%d %H:%M") if self.started else "?"
        how = {"cancelled": "cancelled", "failed": "stopped by an error", "interrupted": "interrupted"}.get(
            self.state, self.state
        )
        arch = ARCH_NAMES.get(self.architecture, self.architecture)
        title = arch if self.name in (self.architecture, "") else f"“{self.name}” ({arch})"
        return f"{title}, started {when}, {how}" + (f" {self.where}" if self.where else "")


ARCH_NAMES = {"ensemble": "Ensemble", "vgg16": "VGG-16"}
STAGE_NAMES = {
    "alexnet": "AlexNet stage",
    "resnet": "ResNet-18 stage",
    "head": "joint-classifier stage",
    "vgg16": "VGG-16 training",
}


def _where(phase: Any, stage: Any, epoch: Any) -> str:
    """``epoch 3 of the AlexNet stage`` (``, cross-validation fold 2`` for CV phases)."""
    text = f"epoch {epoch}" + (f" of the {STAGE_NAMES.get(str(stage), stage)}" if stage else "")
    if phase and phase != "final":
        text += f", cross-validation {str(phase).replace('-', ' ')}"
    return text


#: Forward-pass cost per image at 224 px (GFLOP): AlexNet 0.7 + ResNet-18 1.8; VGG-16 15.5.
FORWARD_GFLOP_224 = {"ensemble": 2.5, "vgg16": 15.5}
#: What a device sustains in training, in GFLOP/s: deliberately modest (a loaded CPU, no tuning).
DEVICE_GFLOPS = {"cpu": 40.0, "cuda": 4000.0, "mps": 400.0}


def estimate_training_seconds(
    architecture: str,
    input_size: int,
    train_images: int,
    val_images: int,
    epochs: int,
    device: str,
    stages: int = 1,
    folds: int = 0,
    max_steps: int | None = None,
    batch_size: int = 16,
) -> float:
    """A rough upper bound of a run's time from the network's size (not a measurement): every
    stage runs all its epochs (early stopping usually ends sooner); training costs about three
    forward passes per image, validation one; k folds add k more runs."""
    per_image = FORWARD_GFLOP_224.get(architecture, 10.0) * (input_size / 224.0) ** 2
    if max_steps:
        train_images = min(train_images, max_steps * batch_size)
    per_epoch = per_image * (3 * train_images + val_images)
    speed = DEVICE_GFLOPS.get(device.split(":")[0].lower(), DEVICE_GFLOPS["cpu"])
    return per_epoch * epochs * max(1, stages) * (1 + max(0, folds)) / speed


def device_text(description: str) -> str:
    """``cpu (1 threads)`` -> ``CPU (1 thread)``."""
    text = description.replace("(1 threads)", "(1 thread)")
    return "CPU" + text[3:] if text.startswith("cpu") else text


def local_time(iso: str) -> str:
    """An ISO time (UTC) as local ``YYYY-MM-DD HH:MM``."""
    try:
        dt = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone().strftime("%Y-%m-%d %H:%M")


def read_run(run_dir: Path) -> RunInfo | None:
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        return None
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    state, where, started, error = "interrupted", "", None, ""
    ev_path = run_dir / "events.jsonl"
    last_epoch = ""
    if ev_path.is_file():
        try:
            lines = ev_path.read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kind = ev.get("event")
            if kind == "RunStarted" and started is None and ev.get("time"):
                started = datetime.fromtimestamp(float(ev["time"]))
            elif kind == "EpochDone":
                last_epoch = _where(ev.get("phase"), ev.get("stage"), ev.get("epoch"))
            elif kind == "RunFinished":
                state = "finished"
            elif kind == "Cancelled":
                state = "cancelled"
                if ev.get("phase"):
                    where = "in " + _where(ev.get("phase"), ev.get("stage"), ev.get("epoch"))
            elif kind == "RunFailed":
                state, error = "failed", str(ev.get("error", ""))
            elif kind == "RunStarted":
                state = "interrupted"  # a resume started; a later terminal event says more
    if (run_dir / "registered.json").is_file():
        state = "registered"
    if state == "interrupted" and last_epoch:
        where = f"after {last_epoch}"
    elif state == "failed" and error:
        where = f"({error[:80]})"
    if started is None:
        try:
            started = datetime.fromtimestamp(cfg_path.stat().st_mtime)
        except OSError:
            started = None
    name = str(cfg.get("name") or cfg.get("architecture") or run_dir.name)
    return RunInfo(
        run_dir,
        name,
        str(cfg.get("architecture", "?")),
        started,
        state,
        where,
        (run_dir / WIZARD_FILE).is_file(),
        error,
    )


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Every run directory in the runs folder (newest first)."""
    from busviewer.core.paths import runs_dir

    base = Path(root) if root is not None else runs_dir()
    out = []
    if base.is_dir():
        for d in base.iterdir():
            if d.is_dir():
                info = read_run(d)
                if info is not None:
                    out.append(info)
    out.sort(key=lambda r: r.started or datetime.min, reverse=True)
    return out


def list_resumable_runs(root: Path | None = None, wizard_only: bool = False) -> list[RunInfo]:
    """Runs that were cancelled, failed or interrupted (newest first)."""
    return [r for r in list_runs(root) if r.resumable and (r.from_wizard or not wizard_only)]


def fmt_metric(v: Any) -> str:
    """Metrics as the results page shows them (3 decimals; n/a when undefined)."""
    if isinstance(v, bool) or v is None:
        return "n/a"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.3f}" if math.isfinite(v) else "n/a"
    return str(v)


__all__ = [
    "RunInfo",
    "RunSpec",
    "device_text",
    "estimate_training_seconds",
    "filtered_store_for",
    "fmt_metric",
    "list_resumable_runs",
    "list_runs",
    "local_time",
    "new_run_dir",
    "prepare_run",
    "read_run",
]
