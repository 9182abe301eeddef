"""Blinded first read in the GUI (issue 14): Reading > Blinded first read (a setting).

While it is on, a patient's AI result (verdict cards, per-image table, Grad-CAM, the
thumbnails' and worklist's AI text) and its labels (the worklist's Label column, the
thumbnails' captions and frames, the label editors) stay hidden until the reader has recorded a call
(benign/malignant + BI-RADS) in the AI panel's "Your first read" box; recording reveals
the result, and the AI verdict shown then is stored next to the read. Reading > Reader vs
AI... shows agreement and sensitivity/specificity. The logic is in
:mod:`busviewer.services.blinded_read`; store work runs in workers.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.gui import workers
from busviewer.gui.label_panel import BIRADS
from busviewer.services import blinded_read as br

HIDDEN_TEXT = "hidden until your read"


class FirstReadBox(QGroupBox):
    """The reader's call before the AI result is shown."""

    recorded = Signal(str, str)  # call, BI-RADS ("" when not given)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Your first read (AI result hidden)", parent)
        self.setObjectName("firstReadBox")
        self.benign = QRadioButton("Benign", self)
        self.malignant = QRadioButton("Malignant", self)
        self.calls = QButtonGroup(self)
        for b in (self.benign, self.malignant):
            self.calls.addButton(b)
        self.birads = QComboBox(self)
        for cat in BIRADS:
            self.birads.addItem(f"BI-RADS {cat}" if cat else "BI-RADS –", cat)
        self.button = QPushButton("Record my read and show the AI result", self)
        self.button.setEnabled(False)
        self.calls.buttonToggled.connect(lambda *_: self.button.setEnabled(self.calls.checkedButton() is not None))
        self.button.clicked.connect(self._record)
        note = QLabel(
            "Blinded first read is on (Reading menu): the AI result of this patient is shown once "
            "your call is recorded. Both are kept for the Reader vs AI comparison.",
            self,
        )
        note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.benign)
        row.addWidget(self.malignant)
        row.addWidget(self.birads, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(note)
        lay.addLayout(row)
        lay.addWidget(self.button)

    def reset(self) -> None:
        self.calls.setExclusive(False)
        self.benign.setChecked(False)
        self.malignant.setChecked(False)
        self.calls.setExclusive(True)
        self.birads.setCurrentIndex(0)
        self.button.setEnabled(False)

    def _record(self) -> None:
        call = "malignant" if self.malignant.isChecked() else "benign" if self.benign.isChecked() else ""
        if call:
            self.button.setEnabled(False)
            self.recorded.emit(call, str(self.birads.currentData() or ""))


class ReaderVsAIDialog(QDialog):
    """Agreement and the reader's and the AI's sensitivity/specificity, by month and overall."""

    COLUMNS = (
        "Period",
        "Reads",
        "Revealed",
        "AI no call",
        "Agreement",
        "With truth",
        "Reader sens.",
        "Reader spec.",
        "AI sens.",
        "AI spec.",
    )

    def __init__(self, total: br.Tally, periods: list[br.Tally], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Reader vs AI")
        self.setObjectName("readerVsAI")
        self.table = QTableWidget(0, len(self.COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().hide()
        for t in [*periods, total]:
            r = t.rates()
            cells = (
                t.period,
                str(t.reads),
                str(t.revealed),
                str(t.ai_no_call),
                br.fmt_rate(t.agreement),
                str(t.with_truth),
                br.fmt_rate(r["reader_sensitivity"]),
                br.fmt_rate(r["reader_specificity"]),
                br.fmt_rate(r["ai_sensitivity"]),
                br.fmt_rate(r["ai_specificity"]),
            )
            row = self.table.rowCount()
            self.table.insertRow(row)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(
                    Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    if col
                    else Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
                )
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self.summary = QLabel(
            (
                f"{total.reads} first read(s); agreement over {total.compared} revealed read(s) where the AI made a "
                f"call ({total.ai_no_call} where it did not: indeterminate or not classified). Sensitivity and "
                f"specificity over {total.with_truth} patient(s) with biopsy or imported ground truth."
            )
            if total.reads
            else "No first reads recorded yet: turn on Reading > Blinded first read.",
            self,
        )
        self.summary.setWordWrap(True)
        notice = QLabel(RESEARCH_NOTICE, self)
        notice.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addWidget(self.table)
        lay.addWidget(notice)
        lay.addWidget(buttons)
        self.resize(860, 300)


class BlindedReading:
    """Wires the setting, the first-read box and the dialog to the main window."""

    def __init__(self, window: Any, menu: QMenu) -> None:
        self.window = window
        window.blinded = self
        self.read_keys: set[str] = set()  # patients this reader has read (their AI result may show)
        self.box = FirstReadBox(window.ai_panel)
        window.ai_panel.layout().insertWidget(3, self.box)
        self.box.hide()
        self.box.recorded.connect(self.record)
        self.act = menu.addAction("Blinded first read")
        self.act.setCheckable(True)
        self.act.setToolTip("Record your call before the AI result of each patient is shown")
        self.act.setChecked(bool(QSettings().value(br.SETTING, False, type=bool)))
        self.act.toggled.connect(self.set_on)
        self.act_compare = menu.addAction("Reader vs AI…", self.open_comparison)
        self.act_compare.setShortcut(QKeySequence("Ctrl+Shift+R"))
        self.dialog: ReaderVsAIDialog | None = None
        model = window.worklist.model
        self._set_verdict, self._set_verdicts = model.set_verdict, model.set_verdicts
        model.set_verdict = self._worklist_verdict  # the worklist's AI column obeys the blinding
        model.set_verdicts = lambda verdicts: self._set_verdicts(
            {k: (v if self.visible(k) else HIDDEN_TEXT) for k, v in verdicts.items()}
        )
        model.labels_hidden = lambda key: not self.visible(key)  # a label (truth) would give the answer away
        window.patientOpened.connect(self.patient_opened)
        window.analysisFinished.connect(self.analysis_shown)
        self.load_reads()

    @property
    def on(self) -> bool:
        return self.act.isChecked()

    def visible(self, patient_key: str | None) -> bool:
        return not self.on or patient_key in self.read_keys

    def _worklist_verdict(self, key: str, text: str) -> None:
        self._set_verdict(key, text if self.visible(key) else HIDDEN_TEXT)

    def load_reads(self) -> None:
        store = self.window.store
        workers.submit(
            lambda: {r.patient_key for r in br.reads(store, store.user)}, name="reads", on_result=self._reads_loaded
        )

    def _reads_loaded(self, keys: set[str]) -> None:
        self.read_keys = set(keys)
        self.refresh()
        self._worklist_labels_changed()

    def _worklist_labels_changed(self) -> None:
        """Redraw the worklist's Label column, from the event loop: a dataChanged sent while the
        filter proxy handles its own change (a search that re-selects a patient) corrupts it."""
        QTimer.singleShot(0, self.window, self.window.worklist.model.refresh_labels)

    def set_on(self, on: bool) -> None:
        s = QSettings()
        s.setValue(br.SETTING, bool(on))
        s.sync()
        self.refresh()
        self._worklist_labels_changed()
        self.window.refresh_worklist()

    def refresh(self) -> None:
        """Hide or show the open patient's AI result."""
        w = self.window
        hidden = not self.visible(w.patient_key) and w.patient_key is not None
        w.ai_panel.set_blinded(hidden)
        w.labels.set_hidden(hidden)
        w.thumbnails.set_labels_hidden(hidden)
        self.box.setVisible(hidden)
        if hidden:
            self.box.reset()
            w.ai_panel.cam.enabled.setChecked(False)
        if w.ai_panel.analysis is not None:
            w._show_analysis(w.ai_panel.analysis)

    def patient_opened(self, _key: str) -> None:
        self.refresh()

    def record(self, call: str, birads: str) -> None:
        w = self.window
        key, analysis = w.patient_key, w.ai_panel.analysis
        if key is None:
            return
        shown = analysis if analysis is not None and analysis.patient_key == key else None

        def run(store: Any) -> Any:
            rec = br.record(store, key, call, birads or None)
            return br.reveal(store, key, shown) if shown is not None else rec

        workers.submit(
            run,
            w.store,
            name="first read",
            on_result=lambda rec, k=key: self._recorded(k, rec),
            on_error=lambda e: w.report_error("First read not saved", str(e)),
        )

    def _recorded(self, key: str, rec: Any) -> None:
        self.read_keys.add(key)
        w = self.window
        w.statusBar().showMessage(f"First read of {key} recorded: {rec.call}, BI-RADS {rec.birads or '-'}", 10000)
        if key in w.analyses:
            self._set_verdict(key, br_verdict_text(w, w.analyses[key]))
        self.refresh()
        self._worklist_labels_changed()

    def analysis_shown(self, analysis: Any) -> None:
        """An analysis arrived after the read was recorded: that is when it is revealed."""
        key = getattr(analysis, "patient_key", None)
        if not self.on or key not in self.read_keys:
            return
        store = self.window.store

        def run() -> Any:
            rec = br.read_of(store, key)
            return br.reveal(store, key, analysis) if rec is not None and not rec.revealed else rec

        workers.submit(run, name="reveal", on_error=lambda e: self.window.report_error("Reveal not saved", str(e)))

    def open_comparison(self) -> None:
        store = self.window.store
        workers.submit(
            br.compare,
            store,
            name="reader vs AI",
            on_result=self._show_comparison,
            on_error=lambda e: self.window.report_error("Reader vs AI", str(e)),
        )

    def _show_comparison(self, result: tuple[br.Tally, list[br.Tally]]) -> None:
        self.dialog = ReaderVsAIDialog(result[0], result[1], self.window)
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog.destroyed.connect(lambda *_: setattr(self, "dialog", None))
        self.dialog.show()


def br_verdict_text(window: Any, analysis: Any) -> str:
    from busviewer.gui.tasks import verdict_text

    return verdict_text(dict(analysis.verdicts))


def install_blinded_reading(window: Any, menu: QMenu) -> BlindedReading:
    return BlindedReading(window, menu)
