"""Step 6 of the training wizard: the results (ROC, reliability diagram, confusion matrix,
metrics next to the active model; promote or discard).

The numbers on this page are the pipeline's ``metrics.json`` of the run (new model)
and ``evaluate_model`` on the same ``split.json`` test part (active model); they are
formatted with :func:`busviewer.services.training_runs.fmt_metric` and kept unrounded in each
table item's ``Qt.UserRole``.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from busviewer.gui.notice import NoticeBanner
from busviewer.gui.reliability_plot import ReliabilityPlot
from busviewer.gui.wizard_common import WizardHost
from busviewer.services import training_runs as runs

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


def _item(value: Any, text: str | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(runs.fmt_metric(value) if text is None else text)
    item.setData(Qt.ItemDataRole.UserRole, value)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class ResultsPage(QWizardPage):
    """The new model next to the active one, on the same locked test patients."""

    COLS = ("new/image", "new/patient", "active/image", "active/patient")

    def __init__(self, wiz: WizardHost) -> None:
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


__all__ = ["ResultsPage"]
