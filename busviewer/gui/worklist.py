"""The patient worklist: a table model of the store's patients, a search/filter proxy, the view."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from busviewer.core.store import PatientSummary

COLUMNS = ("Patient", "Imgs", "Label", "AI", "Read")
HEADER_TIPS = (
    "Patient ID",
    "Number of images",
    "Reader/biopsy label, else the image labels",
    "Patient verdict of the active models (majority vote; ⚠ = the two models disagree)",
    "● unread · ○ opened · ✓ reviewed",
)
STATE_TEXT = {"reviewed": "✓", "opened": "○", "unread": "●"}
LABEL_HIDDEN = "hidden"
COL_PATIENT, COL_IMAGES, COL_LABEL, COL_VERDICT, COL_STATE = range(len(COLUMNS))
KEY_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2

MALIGNANT_COLOUR = QColor("#ff8a80")
BENIGN_COLOUR = QColor("#8fd19e")

Index = QModelIndex | QPersistentModelIndex


class PatientTableModel(QAbstractTableModel):
    """Rows of :class:`PatientSummary` plus the AI verdict text per patient."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[PatientSummary] = []
        self._verdicts: dict[str, str] = {}
        self._opened: set[str] = set()
        #: patients whose labels must not show (blinded first read: until the reader's call)
        self.labels_hidden: Callable[[str], bool] = lambda _key: False

    # ---------------------------------------------------------------- data
    def set_patients(self, patients: Sequence[PatientSummary]) -> None:
        self.beginResetModel()
        self._rows = list(patients)
        self.endResetModel()

    def update_patient(self, summary: PatientSummary) -> None:
        for row, p in enumerate(self._rows):
            if p.patient_key == summary.patient_key:
                self._rows[row] = summary
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
                return
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows))
        self._rows.append(summary)
        self.endInsertRows()

    def set_verdict(self, patient_key: str, text: str) -> None:
        self._verdicts[patient_key] = text
        row = self.row_of(patient_key)
        if row is not None:
            idx = self.index(row, COL_VERDICT)
            self.dataChanged.emit(idx, idx)

    def set_verdicts(self, verdicts: dict[str, str]) -> None:
        self._verdicts.update(verdicts)
        if self._rows:
            self.dataChanged.emit(self.index(0, COL_VERDICT), self.index(len(self._rows) - 1, COL_VERDICT))

    def verdict(self, patient_key: str) -> str:
        return self._verdicts.get(patient_key, "")

    def label_text(self, p: PatientSummary) -> str:
        """The Label column's text (hidden where :attr:`labels_hidden` says so)."""
        return LABEL_HIDDEN if self.labels_hidden(p.patient_key) else _label_text(p)

    def refresh_labels(self) -> None:
        """Redraw the Label column (after :attr:`labels_hidden` changed its answers)."""
        if self._rows:
            self.dataChanged.emit(self.index(0, COL_LABEL), self.index(len(self._rows) - 1, COL_LABEL))

    def mark_opened(self, patient_key: str) -> None:
        self._opened.add(patient_key)
        row = self.row_of(patient_key)
        if row is not None:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def state(self, p: PatientSummary) -> str:
        """ "reviewed", "opened" (this session) or "unread"."""
        if p.reviewed:
            return "reviewed"
        return "opened" if p.patient_key in self._opened else "unread"

    def row_of(self, patient_key: str) -> int | None:
        for row, p in enumerate(self._rows):
            if p.patient_key == patient_key:
                return row
        return None

    def patient(self, row: int) -> PatientSummary:
        return self._rows[row]

    def patients(self) -> list[PatientSummary]:
        return list(self._rows)

    # ------------------------------------------------------------ Qt model
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        p = self._rows[index.row()]
        col = index.column()
        if role == KEY_ROLE:
            return p.patient_key
        if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE):
            if col == COL_PATIENT:
                return p.patient_key
            if col == COL_IMAGES:
                return p.image_count
            if col == COL_LABEL:
                return self.label_text(p)
            if col == COL_VERDICT:
                return self._verdicts.get(p.patient_key, "–" if role == Qt.ItemDataRole.DisplayRole else "")
            if col == COL_STATE:
                return STATE_TEXT[self.state(p)]
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == COL_PATIENT:
                return p.patient_key + (f"\n{p.name}" if p.name else "")
            if col == COL_STATE:
                return {
                    "reviewed": "Reviewed (R toggles)",
                    "opened": "Opened, not marked reviewed (R marks it)",
                    "unread": "Unread: not opened yet",
                }[self.state(p)]
            if col == COL_LABEL and self.labels_hidden(p.patient_key):
                return "Hidden until you record your first read of this patient (blinded first read)"
            if col == COL_LABEL:
                counts = ", ".join(f"{v} {k}" for k, v in sorted(p.label_counts.items()))
                return "Patient label (reader/biopsy)" if p.patient_label else f"Image labels: {counts or 'none'}"
            if col == COL_IMAGES:
                return f"{p.image_count} image(s)"
            if col == COL_VERDICT:
                return "Majority vote of the active models (research use only)"
        if role == Qt.ItemDataRole.FontRole and not p.reviewed and p.patient_key not in self._opened:
            f = QFont()
            f.setBold(True)
            return f
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == COL_VERDICT:
                v = self._verdicts.get(p.patient_key, "")
                if "malignant" in v.lower():
                    return QBrush(MALIGNANT_COLOUR)
                if "benign" in v.lower():
                    return QBrush(BENIGN_COLOUR)
            if col == COL_STATE and p.reviewed:
                return QBrush(BENIGN_COLOUR)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == COL_IMAGES:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == COL_STATE:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.ForegroundRole and col == COL_STATE and self.state(p) == "unread":
            return QBrush(QColor("#64b5f6"))
        return None


def _label_text(p: PatientSummary) -> str:
    if p.patient_label is not None:
        suffix = " (biopsy)" if p.patient_label.source == "biopsy" else ""
        return p.patient_label.label + suffix
    if not p.label_counts:
        return "–"
    if len(p.label_counts) == 1:
        return next(iter(p.label_counts))
    return "mixed " + "/".join(f"{v}{k[0].upper()}" for k, v in sorted(p.label_counts.items()))


STATE_FILTERS = ("All patients", "Unread", "Reviewed", "AI: malignant", "AI: benign")


class PatientFilterProxy(QSortFilterProxyModel):
    """Case-insensitive search over patient id/name/label, plus a state filter."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._state = STATE_FILTERS[0]
        self.setSortRole(SORT_ROLE)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def set_search(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_text", text.strip().lower()))

    def set_state(self, state: str) -> None:
        self._refilter(lambda: setattr(self, "_state", state))

    def _refilter(self, change: Any) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.10
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model: PatientTableModel = self.sourceModel()  # type: ignore[assignment]
        p = model.patient(source_row)
        if self._text:
            hay = " ".join([p.patient_key, p.name or "", model.label_text(p), model.verdict(p.patient_key)]).lower()
            if self._text not in hay:
                return False
        verdict = model.verdict(p.patient_key).lower()
        if self._state == "Unread":
            return not p.reviewed
        if self._state == "Reviewed":
            return p.reviewed
        if self._state == "AI: malignant":
            return "malignant" in verdict
        if self._state == "AI: benign":
            return "benign" in verdict
        return True


class WorklistWidget(QWidget):
    """Search box, state filter and the patient table."""

    patientActivated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = PatientTableModel(self)
        self.proxy = PatientFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search patients (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.set_search)
        self.state = QComboBox(self)
        self.state.addItems(STATE_FILTERS)
        self.state.currentTextChanged.connect(self.proxy.set_state)
        self.count_label = QLabel(self)
        self.count_label.setObjectName("dimLabel")
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COL_PATIENT, Qt.SortOrder.AscendingOrder)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # both ends of a cut id stay readable
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        header = self.table.horizontalHeader()
        header.setMinimumSectionSize(30)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)  # the reader can drag any column
        header.sectionResized.connect(self._section_resized)
        self._user_sized: set[int] = set()
        self._fitting = False
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        self.proxy.rowsInserted.connect(self._update_count)
        self.proxy.rowsRemoved.connect(self._update_count)
        self.proxy.modelReset.connect(self._update_count)
        self.proxy.layoutChanged.connect(self._update_count)
        self.model.modelReset.connect(self.fit_columns)
        self.model.dataChanged.connect(lambda *_: self.fit_columns())

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.search, 1)
        top.addWidget(self.state)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        title = QLabel("Worklist", self)
        title.setObjectName("sectionTitle")
        lay.addWidget(title)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.count_label)

    # --------------------------------------------------------------- API
    def set_patients(self, patients: Sequence[PatientSummary], keep: str | None = None) -> None:
        self.table.selectionModel().blockSignals(True)
        self.model.set_patients(patients)
        self.table.selectionModel().blockSignals(False)
        if keep is not None:
            self.select(keep, emit=False)
        self._update_count()

    def fit_columns(self) -> None:
        """Columns as wide as their content (shown rows and header); the patient id gets the
        room left, never less than its longest shown id. Columns the reader sized stay."""
        header = self.table.horizontalHeader()
        bold = QFont(self.table.font())
        bold.setBold(True)  # unread rows are bold
        fm = QFontMetrics(bold)
        pad = 2 * self.table.style().pixelMetric(self.table.style().PixelMetric.PM_FocusFrameHMargin) + 14
        widths = {}
        for col in range(len(COLUMNS)):
            texts = [str(self.proxy.index(r, col).data() or "") for r in range(min(self.proxy.rowCount(), 500))]
            content = max((fm.horizontalAdvance(t) for t in texts), default=0)
            title = header.fontMetrics().horizontalAdvance(COLUMNS[col]) + 16
            if header.isSortIndicatorShown() and header.sortIndicatorSection() == col:
                title += 14  # room for the sort arrow
            widths[col] = max(content + pad, title)
        table = self.table
        rows_high = self.proxy.rowCount() * table.verticalHeader().defaultSectionSize()
        vbar = table.verticalScrollBar()
        bar = max(vbar.sizeHint().width(), vbar.width() if vbar.isVisible() else 0)
        bar = bar if rows_high > table.viewport().height() else 0
        room = table.contentsRect().width() - bar - 4 - sum(w for c, w in widths.items() if c != COL_PATIENT)
        widths[COL_PATIENT] = max(widths[COL_PATIENT], room)
        self._fitting = True
        try:
            for col, width in widths.items():
                if col not in self._user_sized:
                    header.resizeSection(col, width)
        finally:
            self._fitting = False

    def _section_resized(self, col: int, _old: int, _new: int) -> None:
        if not self._fitting:
            self._user_sized.add(col)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.fit_columns()

    def select(self, patient_key: str, emit: bool = True) -> bool:
        row = self.model.row_of(patient_key)
        if row is None:
            return False
        proxy_idx = self.proxy.mapFromSource(self.model.index(row, 0))
        if not proxy_idx.isValid():  # filtered out: clear the filter so it can be shown
            self.search.clear()
            self.state.setCurrentIndex(0)
            proxy_idx = self.proxy.mapFromSource(self.model.index(row, 0))
        sm = self.table.selectionModel()
        if not emit:
            sm.blockSignals(True)
        self.table.setCurrentIndex(proxy_idx)
        sm.select(proxy_idx, sm.SelectionFlag.ClearAndSelect | sm.SelectionFlag.Rows)
        if not emit:
            sm.blockSignals(False)
        self.table.scrollTo(proxy_idx)
        return True

    def step(self, delta: int) -> str | None:
        """Move the selection ``delta`` rows (in the shown order); returns the new key."""
        n = self.proxy.rowCount()
        if n == 0:
            return None
        cur = self.table.currentIndex()
        row = cur.row() + delta if cur.isValid() else (0 if delta > 0 else n - 1)
        row = max(0, min(n - 1, row))
        idx = self.proxy.index(row, 0)
        self.table.setCurrentIndex(idx)
        self.table.selectRow(row)
        return idx.data(KEY_ROLE)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.patientActivated.emit(current.data(KEY_ROLE))

    def _update_count(self, *_: Any) -> None:
        total = self.model.rowCount()
        shown = self.proxy.rowCount()
        reviewed = sum(1 for p in self.model.patients() if p.reviewed)
        text = f"{shown} of {total} patients" if shown != total else f"{total} patients"
        self.count_label.setText(f"{text} · {reviewed} reviewed")
