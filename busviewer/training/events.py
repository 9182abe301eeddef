"""Structured progress events of a training run, and a plain-text terminal printer.

A run calls ``progress(event)`` with one of the small frozen dataclasses below. The
order is always::

    RunStarted
    DataLoaded
    ( PhaseStarted
        ( StageStarted
            ( EpochStarted StepDone* EpochDone )*
          StageDone )*
      PhaseDone )*
    Registered?
    RunFinished | Cancelled | RunFailed

A *phase* is one model trained from scratch: ``fold-1`` ... ``fold-k`` for
cross-validation and ``final`` for the model of the fixed split (the one that is
registered). A *stage* is one step of the fine-tuning schedule: ``alexnet``, ``resnet``
and ``head`` for the ensemble (seed 001), ``vgg16`` for VGG-16. Epochs and steps are
counted from 1. ``Notice`` events (warnings such as "no ImageNet weights") may come at
any point. On resume, phases already finished are announced with ``PhaseDone`` (and
``resumed=True``) without their stages.

Events are emitted on the thread that runs the training; a GUI must hand them over to
its own thread (e.g. a Qt signal) before touching widgets.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO


@dataclass(frozen=True)
class Event:
    """Base class of all progress events."""

    def to_dict(self) -> dict[str, Any]:
        d = {"event": type(self).__name__}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = str(v) if isinstance(v, Path) else v
        return d


@dataclass(frozen=True)
class RunStarted(Event):
    run_dir: Path
    architecture: str
    device: str
    phases: tuple[str, ...]
    resumed: bool
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataLoaded(Event):
    n_images: int
    n_patients: int
    per_class: dict[str, int]
    dropped: dict[str, int]
    split_counts: dict[str, dict[str, int]]


@dataclass(frozen=True)
class PhaseStarted(Event):
    phase: str
    index: int  # 1-based
    total: int
    n_train: int
    n_val: int
    n_test: int
    stages: tuple[str, ...]


@dataclass(frozen=True)
class StageStarted(Event):
    phase: str
    stage: str
    epochs: int
    steps_per_epoch: int
    trainable_params: int
    start_epoch: int = 1  # > 1 when resumed mid-stage


@dataclass(frozen=True)
class EpochStarted(Event):
    stage: str
    epoch: int
    epochs: int
    phase: str = "final"


@dataclass(frozen=True)
class StepDone(Event):
    """One optimiser step. ``eta_s``: seconds left in the stage if it runs all its epochs
    (an upper bound: early stopping may end it sooner). ``progress``: fraction 0..1 of the
    whole run (planned steps)."""

    stage: str
    epoch: int
    step: int
    steps: int
    loss: float
    eta_s: float
    phase: str = "final"
    progress: float = 0.0


@dataclass(frozen=True)
class EpochDone(Event):
    stage: str
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_metrics: dict[str, Any]
    best: bool  # this epoch is the best so far (lowest validation loss)
    epoch_s: float
    phase: str = "final"


@dataclass(frozen=True)
class StageDone(Event):
    phase: str
    stage: str
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool


@dataclass(frozen=True)
class PhaseDone(Event):
    phase: str
    metrics: dict[str, Any]  # evaluation on the phase's test patients (scalars only)
    resumed: bool = False


@dataclass(frozen=True)
class Registered(Event):
    name: str
    version: int
    path: str


@dataclass(frozen=True)
class RunFinished(Event):
    run_dir: Path
    metrics: dict[str, Any]
    model: str | None  # "name:version" when registered
    wall_s: float


@dataclass(frozen=True)
class Cancelled(Event):
    """The run stopped on request; ``checkpoint`` (if any) lets ``resume`` continue it."""

    run_dir: Path
    phase: str | None
    stage: str | None
    epoch: int | None
    checkpoint: Path | None


@dataclass(frozen=True)
class RunFailed(Event):
    run_dir: Path | None
    error: str


@dataclass(frozen=True)
class Notice(Event):
    level: str  # "info" | "warning"
    text: str


ProgressCallback = Callable[[Event], None]

#: Events that end a run.
TERMINAL_EVENTS = (RunFinished, Cancelled, RunFailed)


def fmt_duration(seconds: float) -> str:
    """Seconds as ``MM:SS`` or ``H:MM:SS`` (``--:--`` when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _fmt_metric(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) and math.isfinite(v) else "n/a"


class ProgressPrinter:
    """Progress bar and epoch lines on a text stream (stderr by default), no dependencies.

    On a terminal the step bar is redrawn in place with ``\\r``; otherwise (log files)
    only one line per epoch is written.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 28, bar: bool | None = None):
        self.stream = stream or sys.stderr
        self.width = width
        self.bar = self.stream.isatty() if bar is None else bar
        self._open_line = False
        self._last_draw = 0.0

    def _line(self, text: str) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, RunStarted):
            self._line(
                f"run {ev.run_dir} | {ev.architecture} on {ev.device} | phases: {', '.join(ev.phases)}"
                + (" | resumed" if ev.resumed else "")
            )
        elif isinstance(ev, DataLoaded):
            per = ", ".join(f"{k} {v}" for k, v in ev.per_class.items())
            parts = "; ".join(
                f"{name}: {c.get('patients', 0)} patients / {c.get('images', 0)} images"
                for name, c in ev.split_counts.items()
            )
            dropped = f" (dropped: {ev.dropped})" if ev.dropped else ""
            self._line(f"data: {ev.n_images} images, {ev.n_patients} patients ({per}){dropped}")
            if parts:
                self._line(f"split: {parts}")
        elif isinstance(ev, PhaseStarted):
            self._line(
                f"[{ev.phase}] {ev.index}/{ev.total}: train {ev.n_train}, val {ev.n_val}, "
                f"test {ev.n_test} patients; stages {', '.join(ev.stages)}"
            )
        elif isinstance(ev, StageStarted):
            start = f", from epoch {ev.start_epoch}" if ev.start_epoch > 1 else ""
            self._line(
                f"[{ev.phase}/{ev.stage}] up to {ev.epochs} epochs x {ev.steps_per_epoch} steps, "
                f"{ev.trainable_params:,} trainable parameters{start}"
            )
        elif isinstance(ev, StepDone):
            if not self.bar:
                return
            now = time.monotonic()
            if ev.step != ev.steps and now - self._last_draw < 0.2:
                return
            self._last_draw = now
            filled = int(self.width * ev.step / max(ev.steps, 1))
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(
                f"\r[{ev.phase}/{ev.stage}] epoch {ev.epoch} [{bar}] {ev.step}/{ev.steps} "
                f"loss {ev.loss:.4f} eta {fmt_duration(ev.eta_s)} ({ev.progress * 100:.0f}% of run) "
            )
            self.stream.flush()
            self._open_line = True
        elif isinstance(ev, EpochDone):
            m = ev.val_metrics
            self._line(
                f"[{ev.phase}/{ev.stage}] epoch {ev.epoch}/{ev.epochs}: train loss {ev.train_loss:.4f}, "
                f"val loss {ev.val_loss:.4f}, val acc {_fmt_metric(m.get('accuracy'))}, "
                f"val AUC {_fmt_metric(m.get('auc'))} ({ev.epoch_s:.0f}s){' *' if ev.best else ''}"
            )
        elif isinstance(ev, StageDone):
            how = "early stop" if ev.stopped_early else "max epochs"
            self._line(
                f"[{ev.phase}/{ev.stage}] done after {ev.epochs_run} epochs ({how}); "
                f"best epoch {ev.best_epoch}, val loss {ev.best_val_loss:.4f} (weights restored)"
            )
        elif isinstance(ev, PhaseDone):
            img = ev.metrics.get("image", {})
            pat = ev.metrics.get("patient", {})
            self._line(
                f"[{ev.phase}] test: image AUC {_fmt_metric(img.get('auc'))}, "
                f"sens {_fmt_metric(img.get('sensitivity'))}, spec {_fmt_metric(img.get('specificity'))}; "
                f"patient AUC {_fmt_metric(pat.get('auc'))}, sens {_fmt_metric(pat.get('sensitivity'))}, "
                f"spec {_fmt_metric(pat.get('specificity'))}" + (" (from earlier run)" if ev.resumed else "")
            )
        elif isinstance(ev, Registered):
            self._line(f"registered model {ev.name}:{ev.version} ({ev.path}); not activated")
        elif isinstance(ev, RunFinished):
            self._line(f"finished in {fmt_duration(ev.wall_s)}; results in {ev.run_dir}")
        elif isinstance(ev, Cancelled):
            where = f" during {ev.phase}/{ev.stage} epoch {ev.epoch}" if ev.phase else ""
            ck = f"; checkpoint {ev.checkpoint} (resume with --resume {ev.run_dir})" if ev.checkpoint else ""
            self._line(f"cancelled{where}; nothing registered{ck}")
        elif isinstance(ev, RunFailed):
            self._line(f"failed: {ev.error}")
        elif isinstance(ev, Notice):
            self._line(f"{ev.level}: {ev.text}")


class EventLog:
    """Appends every event except ``StepDone`` as one JSON line to ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, StepDone):
            return
        d = ev.to_dict()
        d["time"] = time.time()
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(d, default=str) + "\n")


def fan_out(*callbacks: ProgressCallback | None) -> ProgressCallback:
    """One callback calling all the given ones (``None`` entries are skipped)."""
    cbs = [cb for cb in callbacks if cb is not None]

    def emit(ev: Event) -> None:
        for cb in cbs:
            cb(ev)

    return emit
