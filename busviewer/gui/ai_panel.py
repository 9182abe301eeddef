"""The AI panel: model status, per-image probabilities, the patient vote, Grad-CAM controls.

An image whose probability is in the indeterminate band is shown as "? 0.51" (amber), not
as a call; see :mod:`busviewer.ai.results` for how it counts in the vote.

It only displays what the main window hands it (a ``PatientAnalysis`` from
``busviewer.ai.results``, read by attribute, so this module never imports torch). The
reader picks the operating point here (remembered); results are re-summarised at it
(``PatientAnalysis.at``) without running a model, and each verdict says which point and
threshold are in force.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from busviewer.core import operating
from busviewer.core.numbering import image_list
from busviewer.core.store import ImageRecord
from busviewer.gui.cam_overlay import CamControls
from busviewer.gui.notice import NoticeBanner
from busviewer.gui.verdict_card import (  # noqa: F401  (ARCH_*, verdict_summary: imported from here by others)
    ARCH_SHORT,
    ARCH_TITLES,
    VerdictCard,
    cell_text,
    label_colour,
    operating_point_combo,
    outside_lines,
    prediction_table,
    verdict_summary,
)
from busviewer.services import guidance

NO_MODEL_MESSAGE = guidance.NO_MODEL
ARCH_ORDER = ("ensemble", "vgg16")
SETTINGS_AUTO = "ai/auto_analyse"
SETTINGS_OPERATING_POINT = "ai/operating_point"
ID_ROLE = Qt.ItemDataRole.UserRole + 1


def settings() -> QSettings:
    return QSettings()


class AIPanel(QWidget):
    """Model output for the open patient, always under the research-use notice."""

    analyseRequested = Signal()
    cancelRequested = Signal()
    imageClicked = Signal(int)
    operatingPointChanged = Signal(str)
    overrideRequested = Signal(bool)  # True: classify the flagged images anyway; False: withdraw

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("aiPanel")
        self.numbers: dict[int, int] = {}
        self.records: list[ImageRecord] = []
        self.analysis: Any = None
        self.models_ready = False

        self.banner = NoticeBanner(self)
        self.models_label = QLabel("Models: loading in the background…", self)
        self.models_label.setObjectName("modelsLabel")
        self.models_label.setWordWrap(True)
        self.message = QLabel("", self)
        self.message.setObjectName("aiMessage")
        self.message.setWordWrap(True)
        self.message.hide()
        self.situation = guidance.Situation()
        self.guide = QLabel("", self)
        self.guide.setObjectName("nextStep")
        self.guide.setWordWrap(True)
        self.guide.hide()

        self.analyse_button = QPushButton("Analyse patient (A)", self)
        self.analyse_button.setToolTip("Classify every image of this patient with the active models")
        self.analyse_button.clicked.connect(self.analyseRequested)
        self.auto = QCheckBox("Run on opening", self)
        self.auto.setToolTip("Analyse every patient automatically when it is opened (remembered)")
        self.auto.setChecked(bool(settings().value(SETTINGS_AUTO, True, type=bool)))
        self.auto.toggled.connect(self._auto_toggled)
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.cancel_button.hide()
        saved = str(settings().value(SETTINGS_OPERATING_POINT, operating.DEFAULT_OPERATING_POINT))
        self.point_combo = operating_point_combo(self, saved)
        self.point_combo.currentIndexChanged.connect(self._point_changed)
        controls = QHBoxLayout()
        controls.addWidget(self.analyse_button)
        controls.addWidget(self.auto, 1)
        point_row = QHBoxLayout()
        point_row.addWidget(QLabel("Operating point:", self))
        point_row.addWidget(self.point_combo, 1)
        prog = QHBoxLayout()
        prog.addWidget(self.progress, 1)
        prog.addWidget(self.cancel_button)

        self.cards = {arch: VerdictCard(arch, self) for arch in ARCH_ORDER}
        self.disagree = QLabel("", self)
        self.disagree.setObjectName("disagreeFlag")
        self.disagree.setWordWrap(True)
        self.disagree.hide()
        self.outside_note = QLabel("", self)
        self.outside_note.setObjectName("outsideNote")
        self.outside_note.setWordWrap(True)
        self.outside_note.hide()
        self.override_button = QPushButton("Classify flagged images anyway", self)
        self.override_button.setObjectName("overrideButton")
        self.override_button.setToolTip(
            "Show the models' results for the images flagged as outside their training data (recorded with your name)"
        )
        self.override_button.clicked.connect(lambda: self.overrideRequested.emit(not self._overridden()))
        self.override_button.hide()

        self.table = prediction_table(self)
        self.table.cellClicked.connect(self._cell_clicked)
        self._fit_table()

        results = QGroupBox("Patient verdict (majority vote)", self)
        results.setToolTip("Benign only if benign images outnumber malignant ones; a tie counts as malignant")
        rl = QVBoxLayout(results)
        rl.setSpacing(4)
        for card in self.cards.values():
            rl.addWidget(card)
        rl.addWidget(self.disagree)
        rl.addWidget(self.outside_note)
        rl.addWidget(self.override_button)
        per_image = QGroupBox("Per image: p(malignant)", self)
        pl = QVBoxLayout(per_image)
        pl.addWidget(self.table)

        self.cam = CamControls(self)
        cam_box = QGroupBox("Grad-CAM overlay", self)
        cl = QVBoxLayout(cam_box)
        cl.addWidget(self.cam)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(6)
        lay.addWidget(self.banner)
        lay.addWidget(self.models_label)
        lay.addWidget(self.message)
        lay.addWidget(self.guide)
        lay.addLayout(controls)
        lay.addLayout(point_row)
        lay.addLayout(prog)
        lay.addWidget(results)
        lay.addWidget(per_image)
        lay.addWidget(cam_box)
        self.result_boxes = (results, per_image, cam_box)  # hidden during a blinded first read
        self.blinded = False
        lay.addStretch(1)
        self.set_models_ready(False)

    # ----------------------------------------------------------------- models
    def set_models_loading(self, text: str = "Models: loading in the background…") -> None:
        self.models_ready = False
        self.models_label.setText(text)
        self.message.hide()
        self.set_models_ready(False)

    def _situation(self, **changes: Any) -> None:
        """Update what the panel knows of the workstation and the next-step hint."""
        self.situation = dataclasses.replace(self.situation, **changes)
        text = guidance.next_step(self.situation)
        self.guide.setText(text)
        self.guide.setVisible(bool(text))

    def set_store_empty(self, empty: bool) -> None:
        self._situation(store_empty=empty)

    def set_models(self, cards: dict[str, Any], device: str, shipped: Sequence[str] = ()) -> None:
        parts = [
            f"{ARCH_SHORT.get(a, a)}: {c.name} v{c.version}"
            for a, c in sorted(cards.items(), key=lambda kv: _order(kv[0]))
        ]
        missing = [ARCH_SHORT.get(a, a) for a in ARCH_ORDER if a not in cards]
        text = "Models: " + " · ".join(parts) + f" · {device}"
        if missing:
            text += f"\nNo active {', '.join(missing)} model."
        self.models_label.setText(text)
        self.message.hide()
        self.set_models_ready(True)
        self._situation(models="ready", shipped_active=tuple(shipped))

    def set_no_model(self, detail: str = "", installed: int | None = None) -> None:
        """No active model; ``installed`` model versions exist (None: as last told)."""
        n = self.situation.installed if installed is None else installed
        self.models_label.setText("Models: none active")
        main = guidance.no_model_text(n)
        self.show_message(
            main + (f"\n{detail}" if detail and detail not in (NO_MODEL_MESSAGE, main) else ""), warn=True
        )
        self.set_models_ready(False)
        self._situation(models="none", installed=n, shipped_active=())

    def set_models_ready(self, ready: bool) -> None:
        self.models_ready = ready
        self.analyse_button.setEnabled(ready and bool(self.records))

    def show_message(self, text: str, warn: bool = False) -> None:
        self.message.setProperty("warn", warn)
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # --------------------------------------------------------------- patient
    def set_patient(self, records: Sequence[ImageRecord]) -> None:
        self.records = list(records)
        self._situation(patient_open=True, store_empty=False)
        self.numbers = {r.id: i for i, r in enumerate(records, start=1)}
        self.analysis = None
        for card in self.cards.values():
            card.clear()
        self.disagree.hide()
        self.outside_note.hide()
        self.override_button.hide()
        if self.message.property("warn") is not True:
            self.message.hide()
        self.table.setRowCount(len(records))
        self._fit_table()
        for row, rec in enumerate(records):
            item = QTableWidgetItem(f"#{row + 1}  {rec.name}")
            item.setData(ID_ROLE, rec.id)
            item.setToolTip(str(rec.source_path))
            self.table.setItem(row, 0, item)
            for col in (1, 2):
                self.table.setItem(row, col, QTableWidgetItem("–"))
        self.set_models_ready(self.models_ready)

    def _fit_table(self, max_rows: int = 8) -> None:
        """As tall as its rows (up to ``max_rows``, then it scrolls), so nothing below is pushed out."""
        rows = max(1, min(self.table.rowCount(), max_rows))
        h = self.table.horizontalHeader().sizeHint().height() + rows * self.table.verticalHeader().defaultSectionSize()
        self.table.setFixedHeight(h + 2 * self.table.frameWidth() + 2)

    def set_running(self, running: bool, done: int = 0, total: int = 0) -> None:
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.analyse_button.setEnabled(not running and self.models_ready and bool(self.records))
        if running:
            if total:
                self.progress.setRange(0, total)
                self.progress.setValue(done)
                self.progress.setFormat(f"Analysing image {min(done + 1, total)} of {total}…")
            else:
                self.progress.setRange(0, 0)
                self.progress.setFormat("Analysing…")
            for card in self.cards.values():
                if card.verdict.text() == "–":
                    card.clear("…")

    def operating_point(self) -> str:
        """The operating point the reader chose."""
        return str(self.point_combo.currentData())

    def set_operating_point(self, name: str) -> None:
        self.point_combo.setCurrentIndex(self.point_combo.findData(operating.check_operating_point(name)))

    def _point_changed(self, _index: int) -> None:
        s = settings()
        s.setValue(SETTINGS_OPERATING_POINT, self.operating_point())
        s.sync()
        if self.analysis is not None:
            self.show_analysis(self.analysis)
        self.operatingPointChanged.emit(self.operating_point())

    def show_analysis(self, analysis: Any) -> None:
        """Show ``analysis`` re-summarised at the chosen operating point."""
        op = self.operating_point()
        if hasattr(analysis, "at") and getattr(analysis, "operating_point", op) != op:
            analysis = analysis.at(op)
        self.analysis = analysis
        self._fill_table(analysis.predictions)
        models = {}
        for (_iid, arch), p in analysis.predictions.items():
            models[arch] = f"{p.model_name} v{p.model_version}"
        for arch, card in self.cards.items():
            v = analysis.verdicts.get(arch)
            if v is None:
                card.clear("no model")
            else:
                card.show_verdict(v, self.numbers, models.get(arch, ""))
        dis = tuple(analysis.disagreements)
        split = len(analysis.verdicts) > 1 and len({v.label for v in analysis.verdicts.values()}) > 1
        imgs = image_list(dis, self.numbers)
        if split:
            text = "⚠ The models disagree on the patient verdict." + (f" Images in dispute: {imgs}." if dis else "")
        elif dis:
            text = f"⚠ The ensemble and VGG-16 disagree on image(s) {imgs}."
        else:
            text = ""
        self.disagree.setText(text)
        self.disagree.setVisible(bool(text))
        self._show_outside(analysis)

    def _overridden(self) -> bool:
        return bool(getattr(self.analysis, "overridden", None))

    def _show_outside(self, analysis: Any) -> None:
        outside = dict(getattr(analysis, "outside", {}) or {})
        overridden = dict(getattr(analysis, "overridden", {}) or {})
        lines = outside_lines(outside, overridden, self.numbers)
        self.outside_note.setText("\n".join(lines))
        self.outside_note.setVisible(bool(lines))
        self.override_button.setText(
            "Withdraw the override" if overridden and not outside else "Classify flagged images anyway"
        )
        self.override_button.setVisible(bool(outside or overridden))

    def _fill_table(self, predictions: dict[tuple[int, str], Any]) -> None:
        disputed = set(getattr(self.analysis, "disagreements", ()) or ())
        for row in range(self.table.rowCount()):
            image_id = self.table.item(row, 0).data(ID_ROLE)
            for col, arch in ((1, "ensemble"), (2, "vgg16")):
                p = predictions.get((image_id, arch))
                reason = (getattr(self.analysis, "outside", {}) or {}).get(image_id)
                if p is not None and reason:
                    item = QTableWidgetItem("outside")
                    item.setForeground(QBrush(label_colour("outside")))
                    item.setToolTip(reason[:1].upper() + reason[1:])
                elif p is None:
                    item = QTableWidgetItem("–")
                else:
                    unsure = self._unsure(image_id, arch)
                    item = QTableWidgetItem(cell_text(p, unsure))
                    item.setForeground(QBrush(label_colour("indeterminate" if unsure else p.label)))
                    probs = ", ".join(f"{k} {v:.3f}" for k, v in p.probabilities.items())
                    lean = f"\nIndeterminate (leans {p.label}; not counted in the vote)" if unsure else ""
                    item.setToolTip(f"{ARCH_SHORT.get(arch, arch)} {p.model_name} v{p.model_version}: {probs}{lean}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
            first = self.table.item(row, 0)
            text = first.text().lstrip("⚠ ")
            first.setText(("⚠ " + text) if image_id in disputed else text)
            if image_id in disputed:
                first.setToolTip("The ensemble and VGG-16 disagree on this image")

    def _unsure(self, image_id: int, arch: str) -> bool:
        check = getattr(self.analysis, "is_indeterminate", None)
        return bool(check(image_id, arch)) if check is not None else False

    def set_blinded(self, hidden: bool) -> None:
        """Hide the AI result until the reader's first read is recorded (see gui/blinded_read.py)."""
        self.blinded = hidden
        for box in self.result_boxes:
            box.setVisible(not hidden)

    def image_short_labels(self) -> dict[int, str]:
        """e.g. {image_id: "M 0.82 / B 0.31"} for the thumbnails (none while blinded)."""
        if self.analysis is None or self.blinded:
            return {}
        outside = getattr(self.analysis, "outside", {}) or {}
        out: dict[int, list[str]] = {}
        for arch in ARCH_ORDER:
            for (iid, a), p in self.analysis.predictions.items():
                if a == arch:
                    out.setdefault(iid, []).append(cell_text(p, self._unsure(iid, a)))
        return {k: "outside" if k in outside else " / ".join(v) for k, v in out.items()}

    def highlight_image(self, image_id: int) -> None:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(ID_ROLE) == image_id:
                self.table.blockSignals(True)
                self.table.selectRow(row)
                self.table.blockSignals(False)
                self.table.scrollToItem(self.table.item(row, 0))
                return

    def _cell_clicked(self, row: int, _col: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.imageClicked.emit(int(item.data(ID_ROLE)))

    def _auto_toggled(self, on: bool) -> None:
        s = settings()
        s.setValue(SETTINGS_AUTO, bool(on))
        s.sync()

    def auto_analyse(self) -> bool:
        return self.auto.isChecked()


def _order(arch: str) -> int:
    return ARCH_ORDER.index(arch) if arch in ARCH_ORDER else len(ARCH_ORDER)
