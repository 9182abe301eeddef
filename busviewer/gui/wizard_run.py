"""Pages 5 and 6 of the training wizard: the run (live curves, progress, cancel/resume) and
the results (ROC, reliability diagram, confusion matrix, metrics next to the active model;
promote or discard).

The numbers on the results page are the pipeline's ``metrics.json`` of the run (new model)
and ``evaluate_model`` on the same ``split.json`` test part (active model); they are
formatted with :func:`busviewer.services.training_runs.fmt_metric` and kept unrounded in each
table item's ``Qt.UserRole``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from busviewer.gui.notice import NoticeBanner
from busviewer.gui.reliability_plot import ReliabilityPlot
from busviewer.services import training_data as wd
from busviewer.services import training_runs as runs
from busviewer.training import events as ev

if TYPE_CHECKING:
    from busviewer.gui.training_wizard import TrainingWizard

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
NEW_PEN = pg.mkPen("#64b5f6", width=2)
ACTIVE_PEN = pg.mkPen("#ffb74d", width=2, style=Qt.PenStyle.DashLine)
METRIC_ROWS = (
    ("accuracy", "Accuracy"),
    ("sensitivity", "Sensitivity (malignant found)"),
    ("specificity", "Specificity (benign found)"),
    ("precision", "Precision (PPV)"),
    ("f1", "F1 score"),
    ("auc", "AUC"),
    ("n", "Tested (images / patients)"),
)


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


# ============================================================================ 5 run
class RunPage(QWizardPage):
    """Live training progress fed by the pipeline's events (delivered on the GUI thread)."""

    def __init__(self, wiz: TrainingWizard) -> None:
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


# ======================================================================== 6 results
def _item(value: Any, text: str | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(runs.fmt_metric(value) if text is None else text)
    item.setData(Qt.ItemDataRole.UserRole, value)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class ResultsPage(QWizardPage):
    """The new model next to the active one, on the same locked test patients."""

    COLS = ("new/image", "new/patient", "active/image", "active/patient")

    def __init__(self, wiz: TrainingWizard) -> None:
        super().__init__(wiz)
        self.wiz = wiz
        self.setTitle("Step 6 of 6 · Results on the locked test patients")
        self.setSubTitle("The new model and the active one, tested on the same patients that neither was trained on.")
        self.comparison: dict[str, Any] | None = None
        self.decision: str | None = None  # promoted | discarded
        self._build()

    def _build(self) -> None:
        self.banner = NoticeBanner(self)
        self.title_label = QLabel("", self)
        self.title_label.setObjectName("sectionTitle")
        self.title_label.setWordWrap(True)

        self.models_label = QLabel("", self)
        self.models_label.setWordWrap(True)
        self.table = QTableWidget(len(METRIC_ROWS), 4, self)
        self.table.setHorizontalHeaderLabels(
            ["New\nper image", "New\nper patient", "Active\nper image", "Active\nper patient"]
        )
        self.table.setVerticalHeaderLabels([t for _k, t in METRIC_ROWS])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.table.setToolTip(
            "Per image: every test image on its own. Per patient: the majority vote of a "
            "patient's images (a tie counts as malignant)."
        )
        self.extra_label = QLabel("", self)
        self.extra_label.setObjectName("dimLabel")
        self.extra_label.setWordWrap(True)
        self.compare_label = QLabel("", self)
        self.compare_label.setWordWrap(True)

        self.cm_level = QComboBox(self)
        self.cm_level.addItem("per image", "image")
        self.cm_level.addItem("per patient", "patient")
        self.cm_level.currentIndexChanged.connect(self._fill_confusion)
        self.cm_new = self._cm_table()
        self.cm_active = self._cm_table()
        cm = QGroupBox("Confusion matrix", self)
        cml = QGridLayout(cm)
        cml.addWidget(QLabel("Count:", cm), 0, 0)
        cml.addWidget(self.cm_level, 0, 1, Qt.AlignmentFlag.AlignLeft)
        cml.addWidget(QLabel("rows: label in the store · columns (→): the model's call", cm), 0, 2, 1, 2)
        self.cm_new_title = QLabel("New model", cm)
        self.cm_active_title = QLabel("Active model", cm)
        cml.addWidget(self.cm_new_title, 1, 0, 1, 2)
        cml.addWidget(self.cm_active_title, 1, 2, 1, 2)
        cml.addWidget(self.cm_new, 2, 0, 1, 2)
        cml.addWidget(self.cm_active, 2, 2, 1, 2)

        self.roc = pg.PlotWidget()
        self.roc.setBackground("#1b1e21")
        self.roc.setTitle("ROC per image", color="#d0d4d8", size="10pt")
        self.roc.setLabel("bottom", "1 − specificity (false positive rate)")
        self.roc.setLabel("left", "sensitivity")
        self.roc.setXRange(0, 1, padding=0.02)
        self.roc.setYRange(0, 1, padding=0.02)
        self.roc.showGrid(x=True, y=True, alpha=0.25)
        self.roc.setMouseEnabled(x=False, y=False)
        self.roc.hideButtons()
        self.roc.setAspectLocked(True)
        self.roc.setMinimumSize(300, 280)
        self.roc_legend = self.roc.addLegend(offset=(-10, -10))
        self.roc.plot([0, 1], [0, 1], pen=pg.mkPen("#6b7075", style=Qt.PenStyle.DotLine))
        self.roc_new = self.roc.plot([], [], pen=NEW_PEN, name="new")
        self.roc_active = self.roc.plot([], [], pen=ACTIVE_PEN, name="active")
        self.reliability = ReliabilityPlot(self)  # the new model's calibration and operating points

        self.promote_button = QPushButton("Promote: use the new model for patients", self)
        self.promote_button.clicked.connect(lambda: self.wiz.promote())
        self.discard_button = QPushButton("Discard the new model…", self)
        self.discard_button.clicked.connect(lambda: self.wiz.discard())
        self.decision_label = QLabel(
            "If you do neither, the new version stays in Model > Manage models, not active.", self
        )
        self.decision_label.setObjectName("dimLabel")
        self.decision_label.setWordWrap(True)

        left = QVBoxLayout()
        left.addWidget(self.models_label)
        left.addWidget(self.table)
        left.addWidget(self.extra_label)
        left.addWidget(cm, 1)
        right = QVBoxLayout()
        right.addWidget(self.roc, 1)
        right.addWidget(self.reliability, 1)
        body = QHBoxLayout()
        body.addLayout(left, 3)
        body.addLayout(right, 2)
        buttons = QHBoxLayout()
        buttons.addWidget(self.promote_button)
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.decision_label, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.banner)
        lay.addWidget(self.title_label)
        lay.addLayout(body, 1)
        lay.addWidget(self.compare_label)
        lay.addLayout(buttons)

    def _set_models_label(self, new_ref: str, active_ref: str | None) -> None:
        arch = (self.wiz.outcome or {}).get("architecture", "")
        active = active_ref.replace(":", " v") if active_ref else f"the active {arch} model"
        self.models_label.setText(
            f"<b>New</b> = {new_ref.replace(':', ' v')} (this run) · <b>Active</b> = {active} (used for patients now)"
        )

    def _fit_table(self) -> None:
        t = self.table
        t.resizeRowsToContents()
        h = t.horizontalHeader().height() + sum(t.rowHeight(r) for r in range(t.rowCount())) + 2 * t.frameWidth()
        t.setFixedHeight(h + 2)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self._fit_table()

    def _cm_table(self) -> QTableWidget:
        t = QTableWidget(2, 2, self)
        t.setHorizontalHeaderLabels(["→ benign", "→ malignant"])
        t.setVerticalHeaderLabels(["benign", "malignant"])
        t.setToolTip("Rows: the label in the store (truth). Columns: what the model called it.")
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        t.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        t.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        t.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        t.setMinimumHeight(84)
        return t

    # ---------------------------------------------------------------- filling
    def initializePage(self) -> None:
        out = self.wiz.outcome or {}
        metrics = out.get("metrics") or {}
        test = metrics.get("test") or {}
        model = out.get("model") or "?"
        arch = out.get("architecture", "ensemble")
        n_pat = (test.get("n_patients") if isinstance(test, dict) else None) or "?"
        n_img = (test.get("n_images") if isinstance(test, dict) else None) or "?"
        self.title_label.setText(
            f"New model {model.replace(':', ' v')} tested on {n_pat} locked test patients ({n_img} images)"
        )
        self._set_models_label(model, None)
        self.decision = None
        self.comparison = None
        self._fill_column("new", test)
        self._fill_column("active", None)
        extras = []
        rr = test.get("recognition_rate") if isinstance(test, dict) else None
        if rr is not None:
            extras.append(f"Patient recognition rate (seed 001): {runs.fmt_metric(rr)}")
        cv = metrics.get("cv")
        if isinstance(cv, dict):
            auc = ((cv.get("mean_sd") or {}).get("image") or {}).get("auc") or {}
            if auc.get("mean") is not None:
                sd = f" ± {auc['sd']:.3f}" if auc.get("sd") is not None else ""
                extras.append(f"Cross-validation AUC per image: {auc['mean']:.3f}{sd} ({auc.get('n')} folds)")
        thr = (test.get("image") or {}).get("threshold") if isinstance(test, dict) else None
        extras.append(
            f"In this table an image is called malignant when its uncalibrated probability is ≥ "
            f"{thr if thr is not None else 0.5}; the calibrated operating points are under the "
            "reliability diagram."
        )
        self.extra_label.setText("  ·  ".join(extras))
        self._fill_confusion()
        self._fill_roc()
        self.reliability.set_calibration(metrics.get("calibration"))
        self.compare_label.setText(f"Testing the active {arch} model on the same patients…")
        self.compare_label.setStyleSheet("")
        self.promote_button.setEnabled(bool(out.get("model")))
        self.discard_button.setEnabled(bool(out.get("model")))
        self.decision_label.setText("If you do neither, the new version stays in Model > Manage models, not active.")
        self.wiz.start_comparison()

    def _fill_column(self, which: str, report: dict[str, Any] | None) -> None:
        base = 0 if which == "new" else 2
        for level_i, level in enumerate(("image", "patient")):
            m = (report or {}).get(level) or {}
            for r, (key, _title) in enumerate(METRIC_ROWS):
                if report is None:
                    item = _item(None, "…" if which == "active" and self.comparison is None else "—")
                else:
                    item = _item(m.get(key))
                self.table.setItem(r, base + level_i, item)

    def set_comparison(self, comp: dict[str, Any]) -> None:
        self.comparison = comp
        report = comp.get("report")
        ref = comp.get("model")
        if comp.get("error"):
            self._fill_column("active", {})
            for r in range(len(METRIC_ROWS)):
                for c in (2, 3):
                    self.table.setItem(r, c, _item(None, "—"))
            self.compare_label.setText(f"The active model could not be tested: {comp['error']}")
            self.compare_label.setStyleSheet("QLabel { color: #ffcc80; }")
        elif ref is None:
            for r in range(len(METRIC_ROWS)):
                for c in (2, 3):
                    self.table.setItem(r, c, _item(None, "—"))
            self.compare_label.setText(f"There is no active {comp.get('architecture')} model to compare with.")
        else:
            self._fill_column("active", report)
            self._set_models_label((self.wiz.outcome or {}).get("model") or "?", ref)
            text = f"Active model {ref.replace(':', ' v')} tested on the same {report.get('n_patients')} patients."
            overlap = comp.get("overlap")
            if overlap:
                text += (
                    f" ⚠ It was trained or validated on {overlap} of these patients (it predates the locked "
                    "test set), so its numbers here are too optimistic."
                )
                self.compare_label.setStyleSheet("QLabel { color: #ffcc80; }")
            else:
                self.compare_label.setStyleSheet("")
            self.compare_label.setText(text)
            self.cm_active_title.setText(f"Active model ({ref.replace(':', ' v')})")
        self._fill_confusion()
        self._fill_roc()

    def _report(self, which: str) -> dict[str, Any] | None:
        if which == "new":
            return ((self.wiz.outcome or {}).get("metrics") or {}).get("test")
        return (self.comparison or {}).get("report")

    def _fill_confusion(self, *_args: Any) -> None:
        level = self.cm_level.currentData()
        for which, table in (("new", self.cm_new), ("active", self.cm_active)):
            rep = self._report(which) or {}
            cm = (rep.get(level) or {}).get("confusion_matrix")
            for r in range(2):
                for c in range(2):
                    v = cm[r][c] if cm else None
                    item = _item(v, str(v) if v is not None else "—")
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    if v is not None:
                        item.setForeground(pg.mkColor("#a5d6a7" if r == c else "#ff8a80"))
                    table.setItem(r, c, item)

    def _fill_roc(self) -> None:
        self.roc_legend.clear()
        for which, curve, _name in (("new", self.roc_new, "new"), ("active", self.roc_active, "active")):
            rep = self._report(which) or {}
            img = rep.get("image") or {}
            roc = img.get("roc")
            if roc:
                curve.setData(roc["fpr"], roc["tpr"])
                active = str((self.comparison or {}).get("model", "")).replace(":", " v")
                label = "new model" if which == "new" else f"active {active}"
                self.roc_legend.addItem(curve, f"{label}: AUC {runs.fmt_metric(img.get('auc'))}")
            else:
                curve.setData([], [])

    def metric_value(self, which: str, level: str, key: str) -> Any:
        """The unrounded value shown in the table (for tests)."""
        row = [k for k, _t in METRIC_ROWS].index(key)
        col = (0 if which == "new" else 2) + (0 if level == "image" else 1)
        item = self.table.item(row, col)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def metric_text(self, which: str, level: str, key: str) -> str:
        row = [k for k, _t in METRIC_ROWS].index(key)
        col = (0 if which == "new" else 2) + (0 if level == "image" else 1)
        item = self.table.item(row, col)
        return item.text() if item is not None else ""

    def set_decision(self, decision: str, text: str) -> None:
        self.decision = decision
        self.promote_button.setEnabled(False)
        self.discard_button.setEnabled(False)
        self.decision_label.setText(text)

    def set_busy(self, busy: bool) -> None:
        if self.decision is None:
            self.promote_button.setEnabled(not busy)
            self.discard_button.setEnabled(not busy)


__all__ = ["ResultsPage", "RunPage"]
