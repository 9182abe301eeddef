"""The data page's two larger boxes (step 1 of the training wizard): the patient table and
the checks before training."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from busviewer.gui.wizard_common import BLOCK_STYLE, OK_STYLE, WARN_STYLE, dim
from busviewer.services import training_data as wd


class PatientTable(QGroupBox):
    """The data page's "Patients" box: a row per patient with a Use tick, a search field and
    use / leave out all shown. Unticked patients are in ``excluded``; ``changed`` is emitted
    after each change the reader makes."""

    changed = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__("Patients", parent)
        self.excluded: set[str] = set()
        self.summary: wd.Summary | None = None  # the page's summary the rows show (None: none)
        self._filling = False
        pl = QVBoxLayout(self)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search patient ID…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._apply_search)
        self.table = QTableWidget(0, 5, self)
        self.table.setHorizontalHeaderLabels(["Use", "Patient", "Benign", "Malignant", "Patient label"])
        self.table.horizontalHeaderItem(4).setToolTip(
            "A patient counts as malignant when any of their images is malignant (used to balance the split)."
        )
        self.table.horizontalHeaderItem(2).setToolTip("Benign images (or crops) of the patient")
        self.table.horizontalHeaderItem(3).setToolTip("Malignant images (or crops) of the patient")
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip("Untick a patient to leave all of their images out of this training run.")
        self.table.itemChanged.connect(self._item_changed)
        btns = QHBoxLayout()
        self.include_shown = QPushButton("Use all shown", self)
        self.exclude_shown = QPushButton("Leave out all shown", self)
        self.include_shown.clicked.connect(lambda: self._set_shown(True))
        self.exclude_shown.clicked.connect(lambda: self._set_shown(False))
        btns.addWidget(self.include_shown)
        btns.addWidget(self.exclude_shown)
        btns.addStretch(1)
        self.patient_count = dim("", self, wrap=False)
        pl.addWidget(self.search)
        pl.addWidget(self.table, 1)
        pl.addLayout(btns)
        pl.addWidget(self.patient_count)

    def fill(self, s: wd.Summary) -> None:
        """One row per patient of ``s``, ticked unless left out; the search filter is kept."""
        self.summary = s
        self._filling = True
        t = self.table
        t.setUpdatesEnabled(False)
        try:
            pats = sorted(s.patients.values(), key=lambda c: c.patient)
            t.setRowCount(len(pats))
            for r, pc in enumerate(pats):
                use = QTableWidgetItem()
                use.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                use.setCheckState(Qt.CheckState.Unchecked if pc.patient in self.excluded else Qt.CheckState.Checked)
                use.setData(Qt.ItemDataRole.UserRole, pc.patient)
                t.setItem(r, 0, use)
                t.setItem(r, 1, QTableWidgetItem(pc.patient))
                for col, v in ((2, pc.benign), (3, pc.malignant)):
                    item = QTableWidgetItem(str(v))
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    t.setItem(r, col, item)
                lab = QTableWidgetItem(pc.label + ("  ⚠ mixed labels" if pc.conflicting else ""))
                if pc.conflicting:
                    lab.setToolTip("This patient has images labelled benign and images labelled malignant.")
                t.setItem(r, 4, lab)
        finally:
            t.setUpdatesEnabled(True)
            self._filling = False
        self._apply_search(self.search.text())
        self._update_patient_count()

    def _update_patient_count(self) -> None:
        if self.summary is None:
            return
        total = len(self.summary.patients)
        used = total - len(self.excluded & set(self.summary.patients))
        self.patient_count.setText(f"{used} of {total} patients used")

    def _apply_search(self, text: str) -> None:
        text = text.strip().lower()
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 1)
            self.table.setRowHidden(r, bool(text) and (item is None or text not in item.text().lower()))

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != 0:
            return
        patient = item.data(Qt.ItemDataRole.UserRole)
        if item.checkState() == Qt.CheckState.Checked:
            self.excluded.discard(patient)
        else:
            self.excluded.add(patient)
        self._update_patient_count()
        self.changed.emit()

    def set_patient_used(self, patient: str, used: bool) -> None:
        """Tick or untick ``patient`` as the reader would (``changed`` follows)."""
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == patient:
                item.setCheckState(Qt.CheckState.Checked if used else Qt.CheckState.Unchecked)
                return

    def _set_shown(self, used: bool) -> None:
        """Tick or untick every row the search shows."""
        self._filling = True
        try:
            for r in range(self.table.rowCount()):
                if self.table.isRowHidden(r):
                    continue
                item = self.table.item(r, 0)
                patient = item.data(Qt.ItemDataRole.UserRole)
                item.setCheckState(Qt.CheckState.Checked if used else Qt.CheckState.Unchecked)
                (self.excluded.discard if used else self.excluded.add)(patient)
        finally:
            self._filling = False
        self._update_patient_count()
        self.changed.emit()


class DataChecks(QGroupBox):
    """The data page's "Check before training" box: the warnings about the selected data, what
    passed, and the near-duplicate check's status line (``dup_status``)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__("Check before training", parent)
        wl = QVBoxLayout(self)
        self.warnings_widget = QWidget(self)
        self.warnings_layout = QVBoxLayout(self.warnings_widget)
        self.warnings_layout.setContentsMargins(0, 0, 0, 0)
        self.warnings_layout.setSpacing(6)
        self.warnings_layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.warnings_widget)
        wl.addWidget(scroll, 1)
        self.dup_status = dim("", self)
        wl.addWidget(self.dup_status)

    def show_warnings(self, warnings: list[wd.DataWarning], near_checked: bool) -> None:
        """One label per warning (✖ blocks training, ⚠ does not), then one for the checks that passed."""
        lay = self.warnings_layout
        while lay.count() > 1:
            item = lay.takeAt(0)
            w = item.widget()
            if w is not None:
                w.setParent(None)
                w.deleteLater()
        i = 0
        for i, w in enumerate(warnings):
            lab = QLabel(("✖ " if w.blocking else "⚠ ") + w.text, self.warnings_widget)
            lab.setWordWrap(True)
            lab.setStyleSheet(BLOCK_STYLE if w.blocking else WARN_STYLE)
            lab.setProperty("kind", w.kind)
            lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            lay.insertWidget(i, lab)
        passed = wd.passed_checks(warnings, near_checked)
        if passed:
            ok = QLabel(
                "✓ Checked, no problem: "
                + "; ".join(passed)
                + "."
                + ("" if near_checked else " (Near-identical images: still checking…)"),
                self.warnings_widget,
            )
            ok.setWordWrap(True)
            ok.setStyleSheet(OK_STYLE)
            lay.insertWidget(len(warnings), ok)


__all__ = ["DataChecks", "PatientTable"]
