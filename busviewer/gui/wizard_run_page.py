"""Step 5 of the training wizard: the run, with live loss / AUC curves, progress with an
estimate of the time left, a log, cancel and resume. It is fed the pipeline's events
(:mod:`busviewer.training.events`) on the GUI thread by the wizard's run control."""

from __future__ import annotations

import math
import time
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWizardPage,
)

from busviewer.gui.wizard_common import WizardHost
from busviewer.services import training_data as wd
from busviewer.services import training_runs as runs
from busviewer.training import events as ev

STAGE_TITLES = {
    "alexnet": "AlexNet branch",
    "resnet": "ResNet-18 branch",
    "head": "joint classifier",
    "vgg16": "VGG-16",
}
STAGE_SHORT = {"alexnet": " AlexNet", "resnet": " ResNet-18", "head": " joint", "vgg16": " VGG-16"}
TRAIN_PEN = pg.mkPen("#64b5f6", width=2)
VAL_PEN = pg.mkPen("#ffb74d", width=2)
AUC_PEN = pg.mkPen("#81c784", width=2)


def _tag(phase: str, stage: str | None = None) -> str:
    """Log prefix: the stage, and the cross-validation fold when it is not the final model."""
    parts = [] if phase == "final" else [phase.replace("-", " ")]
    if stage:
        parts.append(STAGE_SHORT.get(stage, stage).strip())
    return f"[{' / '.join(parts)}] " if parts else ""


def _plot(title: str, y_label: str) -> pg.PlotWidget:
    w = pg.PlotWidget()
    w.setBackground("#1b1e21")
    w.setTitle(title, color="#d0d4d8", size="10pt")
    w.showGrid(x=True, y=True, alpha=0.25)
    w.setLabel("bottom", "epoch")
    w.setLabel("left", y_label)
    w.setMouseEnabled(x=False, y=False)
    w.hideButtons()
    w.setMinimumHeight(190)
    w.getAxis("left").enableAutoSIPrefix(False)
    w.getAxis("bottom").setTickSpacing(1, 1)
    return w


def _integer_ticks(plot: pg.PlotWidget, n: int) -> None:
    """Whole epochs on the x axis, about ten labels at most."""
    step = max(1, math.ceil(n / 10))
    plot.getAxis("bottom").setTickSpacing(step, step)
    plot.setXRange(0.5, max(n, 1) + 0.5, padding=0)


class RunPage(QWizardPage):
    """Live training progress fed by the pipeline's events (delivered on the GUI thread)."""

    def __init__(self, wiz: WizardHost) -> None:
        super().__init__(wiz)
        self.wiz = wiz
        self.setTitle("Step 5 of 6 · Training")
        self.setSubTitle(
            "Training runs in the background: you can keep reading patients in the main window. "
            "Cancelling keeps the run so it can be resumed later."
        )
        self.state = "idle"  # idle | starting | running | cancelling | cancelled | finished | failed
        self.events: list[ev.Event] = []
        self._x = 0
        self._hist: dict[str, list[float]] = {"x": [], "train": [], "val": [], "auc_x": [], "auc": []}
        self._t0 = 0.0
        self._p0: float | None = None
        self._tick = QTimer(self)
        self._tick.setObjectName("busviewer-wizard-elapsed")
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._update_elapsed)
        self._last_step: ev.StepDone | None = None
        self._build()

    def _build(self) -> None:
        self.headline = QLabel("Preparing…", self)
        self.headline.setObjectName("sectionTitle")
        self.device_label = QLabel("", self)
        self.device_label.setObjectName("dimLabel")
        self.stage_label = QLabel("", self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p%")
        self.eta_label = QLabel("", self)
        self.eta_label.setMinimumWidth(330)
        self.eta_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.cancel_button = QPushButton("Cancel training", self)
        self.cancel_button.setToolTip("Stop after the current step; the run is kept and can be resumed.")
        self.cancel_button.clicked.connect(self.wiz.cancel_run)
        self.resume_button = QPushButton("Resume", self)
        self.resume_button.setToolTip("Continue this run from its last completed epoch")
        self.resume_button.clicked.connect(lambda: self.wiz.resume_run(self.wiz.run_dir))
        self.resume_button.hide()
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.eta_label)
        bar.addWidget(self.cancel_button)
        bar.addWidget(self.resume_button)

        self.loss_plot = _plot("Loss (lower is better)", "cross-entropy")
        self.loss_plot.addLegend(offset=(-10, 10))
        self.train_curve = self.loss_plot.plot(
            [], [], pen=TRAIN_PEN, name="training", symbol="o", symbolSize=5, symbolBrush="#64b5f6"
        )
        self.val_curve = self.loss_plot.plot(
            [], [], pen=VAL_PEN, name="validation", symbol="o", symbolSize=5, symbolBrush="#ffb74d"
        )
        self.auc_plot = _plot("Validation AUC (higher is better)", "AUC")
        self.auc_plot.setYRange(0.0, 1.0, padding=0.02)
        self.auc_curve = self.auc_plot.plot([], [], pen=AUC_PEN, symbol="o", symbolSize=5, symbolBrush="#81c784")
        self._markers: list[Any] = []
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot, 1)
        plots.addWidget(self.auc_plot, 1)

        self.notice_label = QLabel("", self)
        self.notice_label.setWordWrap(True)
        self.notice_label.setObjectName("aiMessage")
        self.notice_label.setProperty("warn", True)
        self.notice_label.hide()
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setMinimumHeight(90)
        self.log.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.log.setStyleSheet("QPlainTextEdit { font-family: 'DejaVu Sans Mono', monospace; font-size: 9pt; }")

        lay = QVBoxLayout(self)
        head = QHBoxLayout()
        head.addWidget(self.headline)
        head.addStretch(1)
        head.addWidget(self.device_label)
        lay.addLayout(head)
        lay.addWidget(self.stage_label)
        lay.addLayout(bar)
        lay.addLayout(plots, 3)
        lay.addWidget(self.notice_label)
        lay.addWidget(self.log, 1)

    # -------------------------------------------------------------- lifecycle
    def initializePage(self) -> None:
        self.wiz.start_pending_run()

    def isComplete(self) -> bool:
        return self.state == "finished" and self.wiz.outcome is not None

    def reset(self, resumed: bool) -> None:
        self.events.clear()
        self._clear_plots()
        self.log.clear()
        self.notice_label.hide()
        self.progress.setValue(0)
        self.eta_label.setText("")
        self.stage_label.setText("")
        self.headline.setText("Resuming the run…" if resumed else "Preparing the data and the split…")
        self.device_label.setText("")
        self._last_step = None
        self._p0 = None
        self._t0 = time.monotonic()
        self.set_state("starting")

    def set_state(self, state: str) -> None:
        self.state = state
        running = state in ("starting", "running", "cancelling")
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(state in ("starting", "running"))
        self.cancel_button.setText("Cancelling…" if state == "cancelling" else "Cancel training")
        self.resume_button.setVisible(state in ("cancelled", "failed") and self.wiz.run_dir is not None)
        if running:
            if not self._tick.isActive():
                self._tick.start()
        else:
            self._tick.stop()
        self.completeChanged.emit()

    def stop_timers(self) -> None:
        self._tick.stop()

    # ----------------------------------------------------------------- events
    def _clear_plots(self) -> None:
        self._x = 0
        for v in self._hist.values():
            v.clear()
        self.train_curve.setData([], [])
        self.val_curve.setData([], [])
        self.auc_curve.setData([], [])
        for plot in (self.loss_plot, self.auc_plot):
            _integer_ticks(plot, 1)
        for plot, line in self._markers:
            plot.removeItem(line)
        self._markers.clear()

    def _say(self, text: str) -> None:
        self.log.appendPlainText(text)

    def on_event(self, e: ev.Event) -> None:
        if isinstance(e, ev.StepDone):
            self._step(e)
            return
        self.events.append(e)
        if isinstance(e, ev.RunStarted):
            self.set_state("running")
            self.headline.setText(
                ("Resumed: " if e.resumed else "Training ")
                + ("the ensemble (AlexNet + ResNet-18)" if e.architecture == "ensemble" else "VGG-16")
            )
            self.device_label.setText(f"Device: {runs.device_text(self.wiz.describe_device(e.device))}")
            self._say(f"Run folder: {e.run_dir}")
        elif isinstance(e, ev.DataLoaded):
            sc = e.split_counts
            self._say(
                f"Data: {e.n_images} images of {e.n_patients} patients "
                f"(benign {e.per_class.get('benign', 0)}, malignant {e.per_class.get('malignant', 0)}); "
                + ", ".join(f"{k} {v.get('patients', 0)} patients" for k, v in sc.items())
            )
        elif isinstance(e, ev.PhaseStarted):
            self._clear_plots()
            what = "final model" if e.phase == "final" else f"cross-validation {e.phase.replace('-', ' ')}"
            self._phase_text = f"Model {e.index} of {e.total} ({what})" if e.total > 1 else ""
            self.loss_plot.setTitle(
                f"Loss — {what}" if e.total > 1 else "Loss (lower is better)", color="#d0d4d8", size="10pt"
            )
            self._say(f"{_tag(e.phase)}training {e.n_train}, validation {e.n_val}, test {e.n_test} patients")
        elif isinstance(e, ev.StageStarted):
            if len(self._stage_list()) > 1:
                for plot in (self.loss_plot, self.auc_plot):
                    line = pg.InfiniteLine(
                        pos=self._x + 0.5,
                        angle=90,
                        pen=pg.mkPen("#6b7075", style=Qt.PenStyle.DotLine),
                        label=STAGE_SHORT.get(e.stage, e.stage),
                        labelOpts={
                            "position": 0.97,
                            "color": "#9aa0a6",
                            "anchors": [(0, 0), (0, 0)],
                            "fill": (27, 30, 33, 210),
                        },
                    )
                    plot.addItem(line)
                    self._markers.append((plot, line))
            self._stage = e.stage
            self._say(
                f"{_tag(e.phase)}stage {STAGE_TITLES.get(e.stage, e.stage)}: up to {e.epochs} epochs of "
                f"{e.steps_per_epoch} steps" + (f", from epoch {e.start_epoch}" if e.start_epoch > 1 else "")
            )
        elif isinstance(e, ev.EpochStarted):
            stages = self._stage_list()
            idx = stages.index(e.stage) + 1 if e.stage in stages else 0
            prefix = getattr(self, "_phase_text", "")
            self.stage_label.setText(
                (prefix + " · " if prefix else "")
                + (f"Stage {idx} of {len(stages)}: " if len(stages) > 1 else "")
                + f"{STAGE_TITLES.get(e.stage, e.stage)} · epoch {e.epoch} of at most {e.epochs}"
            )
        elif isinstance(e, ev.EpochDone):
            self._x += 1
            h = self._hist
            h["x"].append(self._x)
            h["train"].append(e.train_loss)
            h["val"].append(e.val_loss)
            self.train_curve.setData(h["x"], h["train"])
            self.val_curve.setData(h["x"], h["val"])
            _integer_ticks(self.loss_plot, self._x)
            _integer_ticks(self.auc_plot, self._x)
            auc = e.val_metrics.get("auc")
            if isinstance(auc, float) and math.isfinite(auc):
                h["auc_x"].append(self._x)
                h["auc"].append(auc)
                self.auc_curve.setData(h["auc_x"], h["auc"])
            self._say(
                f"{_tag(e.phase, e.stage)}epoch {e.epoch}: training loss {e.train_loss:.4f}, validation loss "
                f"{e.val_loss:.4f}, AUC {runs.fmt_metric(auc)} ({e.epoch_s:.0f} s)"
                + ("  ← best so far" if e.best else "")
            )
        elif isinstance(e, ev.StageDone):
            how = "stopped early" if e.stopped_early else "reached the maximum epochs"
            self._say(
                f"{_tag(e.phase, e.stage)}done after {e.epochs_run} epochs ({how}); best epoch {e.best_epoch} kept"
            )
        elif isinstance(e, ev.PhaseDone):
            img = e.metrics.get("image", {}) if isinstance(e.metrics, dict) else {}
            self._say(
                f"{_tag(e.phase)}test patients: AUC {runs.fmt_metric(img.get('auc'))}, sensitivity "
                f"{runs.fmt_metric(img.get('sensitivity'))}, "
                f"specificity {runs.fmt_metric(img.get('specificity'))}" + (" (finished earlier)" if e.resumed else "")
            )
        elif isinstance(e, ev.Notice):
            self._say(f"{e.level}: {e.text}")
            if e.level == "warning":
                self.notice_label.setText("⚠ " + e.text)
                self.notice_label.show()
        elif isinstance(e, ev.Registered):
            self._say(f"Saved as model {e.name} v{e.version} (not active yet)")

    def _stage_list(self) -> list[str]:
        arch = next((e.architecture for e in self.events if isinstance(e, ev.RunStarted)), "ensemble")
        return ["alexnet", "resnet", "head"] if arch == "ensemble" else [arch]

    def _step(self, e: ev.StepDone) -> None:
        self._last_step = e
        self.progress.setValue(int(round(1000 * max(0.0, min(1.0, e.progress)))))
        if self._p0 is None:
            self._p0, self._t0 = e.progress, time.monotonic()
        self._update_elapsed()

    def _update_elapsed(self) -> None:
        e = self._last_step
        if e is None or self._p0 is None:
            if self.state in ("starting", "running"):
                self.eta_label.setText("Estimating the time left…")
            return
        done = e.progress - self._p0
        spent = time.monotonic() - self._t0
        if done > 1e-4 and spent > 0:
            left = spent * (1.0 - e.progress) / done
            self.eta_label.setText(f"about {wd.fmt_duration(left)} left at most (early stopping may finish sooner)")
        else:
            self.eta_label.setText(f"stage {STAGE_TITLES.get(e.stage, e.stage)}: {wd.fmt_duration(e.eta_s)} left")

    # -------------------------------------------------------------- outcomes
    def finished(self, outcome: dict[str, Any]) -> None:
        self.progress.setValue(1000)
        model = outcome.get("model")
        self.headline.setText("Training finished" + (f": new model {model.replace(':', ' v')}" if model else ""))
        self.stage_label.setText("Press Next to see the results on the locked test patients.")
        self.eta_label.setText(f"took {wd.fmt_duration(float(outcome.get('wall_s') or 0))}")
        self.set_state("finished")

    def cancelled(self, run_dir: Any) -> None:
        self.headline.setText("Training cancelled — nothing was registered")
        self.stage_label.setText(
            f"The run is kept in {run_dir}. “Resume” continues it from its last completed "
            "epoch "
            "(also later, from step 1 of the wizard)."
        )
        self.eta_label.setText("")
        self._say("Cancelled; the run can be resumed.")
        self.set_state("cancelled")

    def failed(self, text: str) -> None:
        self.headline.setText("Training stopped by an error")
        self.stage_label.setText(text)
        self._say(f"error: {text}")
        self.set_state("failed")


__all__ = ["RunPage"]
