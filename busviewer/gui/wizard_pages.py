"""Pages 1-4 of the training wizard: data, model, validation (locked test set), settings.

Each page only wires widgets to :mod:`busviewer.services.training_data` and
:mod:`busviewer.training.locked_test`; store queries, image decoding and everything that
imports torch run in workers started through the wizard (:meth:`TrainingWizard.submit`).
"""

from __future__ import annotations

import dataclasses
import html
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDate, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from busviewer.services import training_data as wd
from busviewer.services import training_runs as runs

if TYPE_CHECKING:
    from busviewer.gui.training_wizard import TrainingWizard

RECIPE_TEXT = {
    "busviewer": "busviewer (recommended without ImageNet weights)",
    "seed": "Original recipe (Adam 1e-4, crop + flip)",
}
ARCH_TEXT = {
    "ensemble": (
        "Ensemble: AlexNet + ResNet-18",
        "Two networks whose features are combined by one classifier (the design busviewer started "
        "from). Trained end to end (busviewer recipe) or in three stages: AlexNet, ResNet-18, then the "
        "joint classifier (original recipe). Used for the Grad-CAM maps of both branches.",
    ),
    "vgg16": (
        "VGG-16",
        "One deeper network, fine-tuned as a whole (its original publication reported accuracy 0.92, "
        "AUC 0.93 on its own data). "
        "Slower to train on a CPU.",
    ),
}
BSE_TOOLTIP = (
    "B-mode + strain elastography (4 channels, as in the original ensemble design) needs a strain image "
    "paired with each "
    "B-mode image. busviewer does not store such pairs yet, so only B-mode training is possible."
)
WARN_STYLE = (
    "QLabel { color: #ffcc80; background: #3a2a14; border: 1px solid #7a5420; border-radius: 3px; padding: 5px; }"
)
BLOCK_STYLE = (
    "QLabel { color: #ff8a80; background: #3a1a18; border: 1px solid #7a3030; border-radius: 3px; padding: 5px; }"
)
OK_STYLE = "QLabel { color: #a5d6a7; padding: 5px; }"


def dim(text: str, parent: QWidget | None = None, wrap: bool = True) -> QLabel:
    lab = QLabel(text, parent)
    lab.setObjectName("dimLabel")
    lab.setWordWrap(wrap)
    return lab


def _hline(parent: QWidget) -> QFrame:
    f = QFrame(parent)
    f.setFrameShape(QFrame.Shape.HLine)
    f.setFrameShadow(QFrame.Shadow.Sunken)
    return f


# =========================================================================== 1 data
class DataPage(QWizardPage):
    """Which labelled images (or ROI crops) to learn from, with counts and warnings."""

    def __init__(self, wiz: TrainingWizard) -> None:
        super().__init__(wiz)
        self.wiz = wiz
        self.setTitle("Step 1 of 6 · Which images to learn from")
        self.setSubTitle(
            "Choose the labelled images for training. Counts and warnings update as you change the "
            "filters; nothing is trained until step 5."
        )
        self.candidates: wd.Candidates | None = None
        self.summary: wd.Summary | None = None
        self.warnings: list[wd.DataWarning] = []
        self.near: list[wd.NearDuplicate] | None = None
        self.near_problems: list[str] = []
        self.excluded: set[str] = set()
        self._load_generation = 0
        self._started = False
        self._filling = False
        self._recount_timer = QTimer(self)
        self._recount_timer.setObjectName("busviewer-wizard-recount")
        self._recount_timer.setSingleShot(True)
        self._recount_timer.setInterval(120)
        self._recount_timer.timeout.connect(self.recount)
        self._build()

    # ----------------------------------------------------------------- layout
    def _build(self) -> None:
        # resume banner
        self.resume_box = QFrame(self)
        self.resume_box.setObjectName("resumeBox")
        self.resume_box.setStyleSheet(
            "QFrame#resumeBox { background: #1e2d3a; border: 1px solid #2d6da3; border-radius: 4px; }"
        )
        rb = QHBoxLayout(self.resume_box)
        rb.setContentsMargins(8, 6, 8, 6)
        self.resume_label = QLabel("<b>Unfinished training run:</b>", self.resume_box)
        self.resume_label.setToolTip(
            "A run that was cancelled or interrupted; resuming continues it from its last "
            "completed epoch, with the settings and patients it started with."
        )
        self.resume_combo = QComboBox(self.resume_box)
        self.resume_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.resume_button = QPushButton("Resume this run", self.resume_box)
        self.resume_button.setToolTip("Continue it where it stopped (step 5)")
        self.resume_button.clicked.connect(self._resume_clicked)
        rb.addWidget(self.resume_label)
        rb.addWidget(self.resume_combo, 1)
        rb.addWidget(self.resume_button)
        self.resume_box.hide()

        # labels
        labels = QGroupBox("Labels to use", self)
        ll = QVBoxLayout(labels)
        self.source_checks: dict[str, QCheckBox] = {}
        for src, text in wd.LABEL_SOURCE_TITLES.items():
            cb = QCheckBox(text, labels)
            cb.setChecked(True)
            cb.toggled.connect(self._reload)
            self.source_checks[src] = cb
            ll.addWidget(cb)
        ll.addWidget(
            dim(
                "An image labelled by several sources uses the most trusted one: biopsy, then reader, then imported.",
                labels,
            )
        )

        # filters
        filters = QGroupBox("Filter and kind of image", self)
        fl = QGridLayout(filters)
        self.since_check = QCheckBox("Only labels set or changed since", filters)
        self.since_date = QDateEdit(filters)
        self.since_date.setCalendarPopup(True)
        self.since_date.setDisplayFormat("yyyy-MM-dd")
        self.since_date.setDate(QDate.currentDate().addMonths(-6))
        self.since_date.setEnabled(False)
        self.since_date.setMaximumWidth(140)
        self.since_check.toggled.connect(self.since_date.setEnabled)
        self.since_check.toggled.connect(lambda _on: self.schedule_recount())
        self.since_date.dateChanged.connect(lambda _d: self.schedule_recount())
        fl.addWidget(self.since_check, 0, 0)
        fl.addWidget(self.since_date, 0, 1, Qt.AlignmentFlag.AlignLeft)
        self.whole_radio = QRadioButton("Whole images", filters)
        self.roi_radio = QRadioButton("Lesion crops (saved ROIs)", filters)
        self.whole_radio.setChecked(True)
        self.kind_group = QButtonGroup(self)
        self.kind_group.addButton(self.whole_radio)
        self.kind_group.addButton(self.roi_radio)
        self.roi_radio.toggled.connect(self._reload)
        self.roi_count = dim("", filters, wrap=False)
        fl.addWidget(QLabel("Train on:", filters), 1, 0)
        kind = QHBoxLayout()
        kind.addWidget(self.whole_radio)
        kind.addWidget(self.roi_radio)
        kind.addWidget(self.roi_count)
        kind.addStretch(1)
        fl.addLayout(kind, 1, 1)
        fl.addWidget(
            dim(
                "Crops around the lesion usually classify better (as reported for the original ensemble); "
                "every saved ROI is "
                "one training sample.",
                filters,
            ),
            2,
            0,
            1,
            2,
        )
        fl.setColumnStretch(1, 1)

        top = QHBoxLayout()
        top.addWidget(labels, 1)
        top.addWidget(filters, 1)

        # summary + warnings
        sel = QGroupBox("Selected for training", self)
        sl = QVBoxLayout(sel)
        self.summary_label = QLabel("Counting the labelled images…", sel)
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.summary_label.setWordWrap(True)
        sl.addWidget(self.summary_label)
        warn = QGroupBox("Check before training", self)
        wl = QVBoxLayout(warn)
        self.warnings_widget = QWidget(warn)
        self.warnings_layout = QVBoxLayout(self.warnings_widget)
        self.warnings_layout.setContentsMargins(0, 0, 0, 0)
        self.warnings_layout.setSpacing(6)
        self.warnings_layout.addStretch(1)
        scroll = QScrollArea(warn)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.warnings_widget)
        wl.addWidget(scroll, 1)
        self.dup_status = dim("", warn)
        wl.addWidget(self.dup_status)
        left = QVBoxLayout()
        left.addWidget(sel)
        left.addWidget(warn, 1)

        # patients
        pats = QGroupBox("Patients", self)
        pl = QVBoxLayout(pats)
        self.search = QLineEdit(pats)
        self.search.setPlaceholderText("Search patient ID…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._apply_search)
        self.table = QTableWidget(0, 5, pats)
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
        self.include_shown = QPushButton("Use all shown", pats)
        self.exclude_shown = QPushButton("Leave out all shown", pats)
        self.include_shown.clicked.connect(lambda: self._set_shown(True))
        self.exclude_shown.clicked.connect(lambda: self._set_shown(False))
        btns.addWidget(self.include_shown)
        btns.addWidget(self.exclude_shown)
        btns.addStretch(1)
        self.patient_count = dim("", pats, wrap=False)
        pl.addWidget(self.search)
        pl.addWidget(self.table, 1)
        pl.addLayout(btns)
        pl.addWidget(self.patient_count)

        middle = QHBoxLayout()
        middle.addLayout(left, 5)
        middle.addWidget(pats, 4)

        lay = QVBoxLayout(self)
        lay.addWidget(self.resume_box)
        lay.addLayout(top)
        lay.addLayout(middle, 1)

    # ----------------------------------------------------------------- state
    def label_sources(self) -> list[str] | None:
        chosen = [s for s, cb in self.source_checks.items() if cb.isChecked()]
        return None if len(chosen) == len(self.source_checks) else chosen

    def use_rois(self) -> bool:
        return self.roi_radio.isChecked()

    def since(self) -> datetime | None:
        if not self.since_check.isChecked():
            return None
        d = self.since_date.date()
        local = datetime.combine(datetime(d.year(), d.month(), d.day()).date(), time(0, 0))
        return local.astimezone().astimezone(UTC)

    def initializePage(self) -> None:
        if not self._started:
            self._started = True
            self._reload()
            self.wiz.start_near_duplicate_scan()

    def isComplete(self) -> bool:
        return self.summary is not None and not any(w.blocking for w in self.warnings)

    def set_resumable(self, runs: list[runs.RunInfo]) -> None:
        self.resume_combo.clear()
        for r in runs:
            self.resume_combo.addItem(r.describe(), str(r.run_dir))
            self.resume_combo.setItemData(
                self.resume_combo.count() - 1, f"{r.describe()}\n{r.run_dir}", Qt.ItemDataRole.ToolTipRole
            )
        self.resume_box.setVisible(bool(runs))

    def _resume_clicked(self) -> None:
        run_dir = self.resume_combo.currentData()
        if run_dir:
            self.wiz.resume_run(run_dir)

    # --------------------------------------------------------------- loading
    def _reload(self, *_args: Any) -> None:
        if not self.source_checks or not any(cb.isChecked() for cb in self.source_checks.values()):
            self.candidates = None
            self.summary = None
            self.summary_label.setText("Tick at least one kind of label.")
            self._show_warnings([wd.DataWarning("no_data", "No label source is chosen.", True)])
            self.completeChanged.emit()
            return
        self._load_generation += 1
        gen = self._load_generation
        self.summary_label.setText("Counting the labelled images…")
        self.wiz.submit(
            wd.load_candidates,
            self.wiz.store,
            self.label_sources(),
            self.use_rois(),
            name="wizard data",
            on_result=lambda c, g=gen: self._loaded(g, c),
            on_error=lambda e: self.wiz.show_error("The labelled images could not be read", str(e)),
        )

    def _loaded(self, generation: int, cands: wd.Candidates) -> None:
        if generation != self._load_generation:
            return
        self.candidates = cands
        n = cands.n_roi_items or 0
        self.roi_count.setText(f"({n} crop{'s' if n != 1 else ''} saved)")
        self.roi_radio.setEnabled(n > 0 or self.roi_radio.isChecked())
        self.roi_radio.setToolTip(
            ""
            if n
            else "No lesion ROIs are saved for the labelled images yet (draw them in the ROI panel of the main window)."
        )
        self.recount()

    def schedule_recount(self) -> None:
        self._recount_timer.start()

    def recount(self) -> None:
        self._recount_timer.stop()
        if self.candidates is None:
            return
        self.summary = wd.summarize(self.candidates, self.since(), self.excluded)
        self._fill_table()
        self._show_summary()
        self.refresh_warnings()
        self.completeChanged.emit()
        self.wiz.dataSummarized.emit(self.summary)

    def set_near_duplicates(self, pairs: list[wd.NearDuplicate] | None, problems: list[str], status: str) -> None:
        self.near = pairs
        self.near_problems = problems
        self.dup_status.setText(status)
        self.refresh_warnings()

    def refresh_warnings(self) -> None:
        if self.summary is None:
            return
        self.warnings = wd.data_warnings(self.summary, self.near)
        self._show_warnings(self.warnings)

    def _show_warnings(self, warnings: list[wd.DataWarning]) -> None:
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
        passed = wd.passed_checks(warnings, self.near is not None)
        if passed:
            ok = QLabel(
                "✓ Checked, no problem: "
                + "; ".join(passed)
                + "."
                + ("" if self.near is not None else " (Near-identical images: still checking…)"),
                self.warnings_widget,
            )
            ok.setWordWrap(True)
            ok.setStyleSheet(OK_STYLE)
            lay.insertWidget(len(warnings), ok)

    def warning_kinds(self) -> list[str]:
        return [w.kind for w in self.warnings]

    def _show_summary(self) -> None:
        s = self.summary
        assert s is not None
        ipc, ppc = s.images_per_class, s.patients_per_class
        what = "lesion crops" if self.use_rois() else "images"
        src = self.label_sources()
        rows = [
            f"<b>{s.n_images}</b> {what} of <b>{s.n_patients}</b> patients",
            f"benign: {ipc['benign']} {what}, {ppc['benign']} patients",
            f"malignant: {ipc['malignant']} {what}, {ppc['malignant']} patients",
        ]
        extra = []
        if s.excluded:
            extra.append(f"{len(s.excluded & set(s.patients))} patient(s) left out by you")
        if self.since() is not None:
            extra.append(f"labels changed since {self.since_date.date().toString('yyyy-MM-dd')}")
        extra.append("labels: " + (", ".join(src) if src else "all sources"))
        self.summary_label.setText(
            "<br>".join(rows) + "<br><span style='color:#9aa0a6'>" + html.escape(" · ".join(extra)) + "</span>"
        )

    # -------------------------------------------------------------- patients
    def _fill_table(self) -> None:
        s = self.summary
        assert s is not None
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
        self.schedule_recount()

    def set_patient_used(self, patient: str, used: bool) -> None:
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == patient:
                item.setCheckState(Qt.CheckState.Checked if used else Qt.CheckState.Unchecked)
                return

    def _set_shown(self, used: bool) -> None:
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
        self.schedule_recount()


# ========================================================================== 2 model
class ModelPage(QWizardPage):
    """Architecture, input mode, where the weights start from."""

    def __init__(self, wiz: TrainingWizard) -> None:
        super().__init__(wiz)
        self.wiz = wiz
        self.setTitle("Step 2 of 6 · Which model to train")
        self.setSubTitle(
            "The new model is saved as a new version next to the current ones; it is not used for "
            "patients until you promote it (step 6)."
        )
        self._build()

    def _build(self) -> None:
        arch = QGroupBox("Architecture", self)
        al = QVBoxLayout(arch)
        self.arch_group = QButtonGroup(self)
        self.arch_buttons: dict[str, QRadioButton] = {}
        for key, (title, text) in ARCH_TEXT.items():
            rb = QRadioButton(title, arch)
            self.arch_buttons[key] = rb
            self.arch_group.addButton(rb)
            al.addWidget(rb)
            d = dim(text, arch)
            d.setContentsMargins(24, 0, 0, 6)
            al.addWidget(d)
        self.arch_buttons["ensemble"].setChecked(True)

        inp = QGroupBox("Input", self)
        il = QVBoxLayout(inp)
        self.bmode_radio = QRadioButton("B-mode images", inp)
        self.bmode_radio.setChecked(True)
        self.bse_radio = QRadioButton("B-mode + strain elastography (B+SE)", inp)
        self.bse_radio.setEnabled(False)
        self.bse_radio.setToolTip(BSE_TOOLTIP)
        self.input_group = QButtonGroup(self)
        self.input_group.addButton(self.bmode_radio)
        self.input_group.addButton(self.bse_radio)
        il.addWidget(self.bmode_radio)
        row = QHBoxLayout()
        row.addWidget(self.bse_radio)
        why = dim("— not available yet: paired strain images are not stored (hover for details)", inp, wrap=False)
        why.setToolTip(BSE_TOOLTIP)
        row.addWidget(why)
        row.addStretch(1)
        il.addLayout(row)
        self.kind_label = dim("", inp)
        il.addWidget(self.kind_label)

        init = QGroupBox("Start from", self)
        nl = QVBoxLayout(init)
        self.init_group = QButtonGroup(self)
        self.init_active = QRadioButton("The active model (fine-tune it further)", init)
        self.init_imagenet = QRadioButton("ImageNet weights (general photographs; the usual starting point)", init)
        self.init_random = QRadioButton("Random weights (no prior knowledge; needs much more data)", init)
        for rb in (self.init_active, self.init_imagenet, self.init_random):
            self.init_group.addButton(rb)
            rb.toggled.connect(self._update_note)
            nl.addWidget(rb)
        self.init_note = QLabel("Checking which starting points are available…", init)
        self.init_note.setWordWrap(True)
        nl.addWidget(self.init_note)
        self._init_chosen_by_user = False
        for rb in (self.init_active, self.init_imagenet, self.init_random):
            rb.clicked.connect(self._user_chose_init)

        lay = QVBoxLayout(self)
        lay.addWidget(arch)
        lay.addWidget(inp)
        lay.addWidget(init)
        lay.addStretch(1)
        for rb in self.arch_buttons.values():
            rb.toggled.connect(self._update)

    def _user_chose_init(self) -> None:
        self._init_chosen_by_user = True

    def architecture(self) -> str:
        return next(k for k, rb in self.arch_buttons.items() if rb.isChecked())

    def init_choice(self) -> str:
        if self.init_active.isChecked():
            return "active"
        if self.init_imagenet.isChecked():
            return "imagenet"
        return "random"

    def active_entry(self) -> Any:
        env = self.wiz.env
        return env.active.get(self.architecture()) if env is not None else None

    def imagenet_available(self) -> bool | None:
        env = self.wiz.env
        if env is None:
            return None
        return env.imagenet.get(self.architecture(), (False, ""))[0]

    def initializePage(self) -> None:
        data = self.wiz.data_page
        what = "lesion crops (saved ROIs)" if data.use_rois() else "whole images"
        self.kind_label.setText(f"Training on {what} — chosen in step 1.")
        self._update()

    def _update(self, *_args: Any) -> None:
        active = self.active_entry()
        env = self.wiz.env
        if env is None:
            self.init_active.setText("The active model (checking…)")
            self.init_active.setEnabled(False)
        elif active is None:
            self.init_active.setText("The active model — there is no active model of this architecture")
            self.init_active.setEnabled(False)
        else:
            self.init_active.setText(f"The active model: {active.name} v{active.version} (fine-tune it further)")
            self.init_active.setEnabled(True)
        avail = self.imagenet_available()
        if avail is False:
            self.init_imagenet.setText("ImageNet weights — not available on this computer")
        else:
            self.init_imagenet.setText("ImageNet weights (general photographs; the usual starting point)")
        if (
            not self._init_chosen_by_user
            or not self.init_group.checkedButton()
            or not self.init_group.checkedButton().isEnabled()
        ):
            if active is not None:
                self.init_active.setChecked(True)
            elif avail:
                self.init_imagenet.setChecked(True)
            elif env is not None:
                self.init_random.setChecked(True)
        self._update_note()
        self.completeChanged.emit()

    def _update_note(self, *_args: Any) -> None:
        choice = self.init_choice() if self.init_group.checkedButton() else None
        env = self.wiz.env
        avail = self.imagenet_available()
        if choice == "imagenet" and avail is False:
            detail = env.imagenet.get(self.architecture(), (False, ""))[1] if env else ""
            self.init_note.setText(
                "⚠ The ImageNet weights are not stored on this computer, so training would start from "
                f"<b>random weights</b> instead. {html.escape(detail)}"
            )
            self.init_note.setStyleSheet(WARN_STYLE)
        elif choice == "active":
            a = self.active_entry()
            self.init_note.setText(
                f"The new version starts from {a.name} v{a.version} and records it as its parent." if a else ""
            )
            self.init_note.setStyleSheet("")
        elif choice == "random":
            self.init_note.setText(
                "Every layer is trained from scratch. Expect poor results with fewer than several hundred patients."
            )
            self.init_note.setStyleSheet(WARN_STYLE)
        elif choice == "imagenet":
            self.init_note.setText("ImageNet weights are stored on this computer.")
            self.init_note.setStyleSheet("")
        else:
            self.init_note.setText("Checking which starting points are available…")
            self.init_note.setStyleSheet("")

    def isComplete(self) -> bool:
        return self.init_group.checkedButton() is not None


# ===================================================================== 3 validation
class ValidationPage(QWizardPage):
    """Validation for early stopping, and the locked test set."""

    def __init__(self, wiz: TrainingWizard) -> None:
        super().__init__(wiz)
        self.wiz = wiz
        self.setTitle("Step 3 of 6 · How the model is tested")
        self.setSubTitle("Patients, never single images, are split: all images of a patient stay together.")
        self.preview_ok = False
        self.preview_counts: dict[str, Any] = {}
        self._build()
        wiz.lockedChanged.connect(self.update_locked)

    def _build(self) -> None:
        locked = QGroupBox("Locked test set", self)
        ll = QVBoxLayout(locked)
        ll.addWidget(
            dim(
                "A fixed group of patients set aside once and never used for training. Every model trained here is "
                "tested on the same patients, so new and current models can be compared fairly. Patients added "
                "later never join it.",
                locked,
            )
        )
        self.locked_label = QLabel("Reading the locked test set…", locked)
        self.locked_label.setWordWrap(True)
        self.locked_label.setTextFormat(Qt.TextFormat.RichText)
        ll.addWidget(self.locked_label)
        self.create_row = QWidget(locked)
        cr = QHBoxLayout(self.create_row)
        cr.setContentsMargins(0, 0, 0, 0)
        cr.addWidget(QLabel("Set aside", self.create_row))
        self.locked_fraction = QSpinBox(self.create_row)
        self.locked_fraction.setRange(5, 50)
        self.locked_fraction.setValue(15)
        self.locked_fraction.setSuffix(" %")
        cr.addWidget(self.locked_fraction)
        cr.addWidget(QLabel("of the labelled patients (chosen at random within each class; seed", self.create_row))
        self.locked_seed = QSpinBox(self.create_row)
        self.locked_seed.setRange(0, 99999)
        self.locked_seed.setMaximumWidth(90)
        cr.addWidget(self.locked_seed)
        cr.addWidget(QLabel(")", self.create_row))
        self.create_locked_button = QPushButton("Create locked test set", self.create_row)
        self.create_locked_button.clicked.connect(self.wiz.create_locked_test)
        cr.addWidget(self.create_locked_button)
        cr.addStretch(1)
        ll.addWidget(self.create_row)
        reset_row = QHBoxLayout()
        reset_row.addStretch(1)
        self.reset_locked_button = QPushButton("Reset locked test set…", locked)
        self.reset_locked_button.setToolTip(
            "Retire the locked test set (asks for confirmation; recorded in the "
            "audit log). Models tested on different sets cannot be compared."
        )
        self.reset_locked_button.clicked.connect(lambda: self.wiz.reset_locked_test())
        reset_row.addWidget(self.reset_locked_button)
        ll.addLayout(reset_row)

        val = QGroupBox("Validation (decides when training stops)", self)
        vl = QGridLayout(val)
        self.holdout_radio = QRadioButton("Hold-out: one validation group", val)
        self.kfold_radio = QRadioButton("k-fold cross-validation, then the final model", val)
        self.holdout_radio.setChecked(True)
        self.method_group = QButtonGroup(self)
        self.method_group.addButton(self.holdout_radio)
        self.method_group.addButton(self.kfold_radio)
        self.val_fraction = QSpinBox(val)
        self.val_fraction.setRange(5, 40)
        self.val_fraction.setValue(15)
        self.val_fraction.setSuffix(" %")
        self.folds = QSpinBox(val)
        self.folds.setRange(2, 10)
        self.folds.setValue(5)
        self.folds.setSuffix(" folds")
        vl.addWidget(self.holdout_radio, 0, 0)
        vl.addWidget(QLabel("Validation patients:", val), 0, 1)
        vl.addWidget(self.val_fraction, 0, 2)
        vl.addWidget(dim("of the patients outside the locked test set", val, wrap=False), 0, 3)
        vl.addWidget(self.kfold_radio, 1, 0)
        vl.addWidget(QLabel("Folds:", val), 1, 1)
        vl.addWidget(self.folds, 1, 2)
        self.kfold_note = dim(
            "Trains one extra model per fold to estimate how much the results vary (mean ± SD); "
            "takes about k + 1 times as long. The locked test patients stay out of every fold.",
            val,
        )
        vl.addWidget(self.kfold_note, 2, 0, 1, 4)
        vl.setColumnStretch(3, 1)
        for w in (self.holdout_radio, self.kfold_radio):
            w.toggled.connect(self.update_preview)
        self.val_fraction.valueChanged.connect(self.update_preview)
        self.folds.valueChanged.connect(self.update_preview)
        self.kfold_radio.toggled.connect(self.folds.setEnabled)
        self.folds.setEnabled(False)

        prev = QGroupBox("This run", self)
        pl = QVBoxLayout(prev)
        self.preview_label = QLabel("", prev)
        self.preview_label.setWordWrap(True)
        self.preview_label.setTextFormat(Qt.TextFormat.RichText)
        pl.addWidget(self.preview_label)

        lay = QVBoxLayout(self)
        lay.addWidget(locked)
        lay.addWidget(val)
        lay.addWidget(prev)
        lay.addStretch(1)

    def folds_value(self) -> int:
        return self.folds.value() if self.kfold_radio.isChecked() else 0

    def val_fraction_value(self) -> float:
        return self.val_fraction.value() / 100.0

    def initializePage(self) -> None:
        self.update_locked()

    def update_locked(self) -> None:
        w = self.wiz
        locked = w.locked
        busy = w.locked_busy
        if w.locked_error:
            self.locked_label.setText(
                f"<span style='color:#ff8a80'>✖ {html.escape(w.locked_error)}</span><br>Reset it to create a new one."
            )
            self.create_row.setVisible(False)
        elif locked is None:
            self.locked_label.setText(
                "<b>No locked test set yet.</b> Next (“Create locked test set”) makes it once (training needs it) "
                "and shows its patients here before you go on."
                if not busy
                else "Working on the locked test set…"
            )
            self.create_row.setVisible(True)
        else:
            c = locked.counts
            when = runs.local_time(locked.created)
            self.locked_label.setText(
                f"<b>{len(locked.patients)} patients</b> ({c.get('benign', '?')} benign, {c.get('malignant', '?')} "
                f"malignant; {c.get('images', '?')} images), created {html.escape(when)} from the "
                f"{c.get('candidates', '?')} labelled patients then in the store ({locked.fraction:.0%}, "
                f"seed {locked.seed}). Kept out of every training run. Reset it only on purpose (below)."
                + (
                    f"<br><span style='color:#ffcc80'>⚠ It was made for another store ({html.escape(locked.store)}); "
                    "its patients may not exist in this one.</span>"
                    if locked.store and locked.store != str(getattr(w.store, "url", locked.store))
                    else ""
                )
            )
            self.create_row.setVisible(False)
        self.create_locked_button.setEnabled(not busy and locked is None and not w.locked_error)
        self._next_text()
        self.reset_locked_button.setEnabled(not busy and (locked is not None or bool(w.locked_error)))
        self.update_preview()

    def update_preview(self, *_args: Any) -> None:
        from busviewer.training.data import samples_from_items
        from busviewer.training.locked_test import plan_with_locked_test

        w = self.wiz
        summary = w.data_page.summary
        self.preview_ok = False
        if w.locked is None or summary is None:
            self.preview_label.setText(
                "The split is shown once a locked test set exists."
                if summary is not None
                else "Waiting for the data of step 1…"
            )
            self.completeChanged.emit()
            return
        samples = samples_from_items(summary.items, use_rois=w.data_page.use_rois()).samples
        try:
            plan = plan_with_locked_test(samples, w.locked, self.val_fraction_value(), 0, w.settings_page.seed.value())
        except ValueError as exc:
            self.preview_label.setText(f"<span style='color:#ff8a80'>✖ {html.escape(str(exc))}</span>")
            self.completeChanged.emit()
            return
        c = plan.counts
        self.preview_counts = c
        absent = len(set(w.locked.patients) - {s.patient for s in samples})
        lines = [
            f"Training: <b>{c['train']['patients']}</b> patients ({c['train']['images']} images) · "
            f"Validation: <b>{c['val']['patients']}</b> patients ({c['val']['images']} images) · "
            f"Test (locked): <b>{c['test']['patients']}</b> patients ({c['test']['images']} images)"
        ]
        if absent:
            lines.append(
                f"<span style='color:#ffcc80'>{absent} locked patient(s) are not in the selected data and "
                "are not tested this time (they are still never trained on).</span>"
            )
        if c["test"]["patients"] == 0:
            lines.append(
                "<span style='color:#ff8a80'>✖ None of the locked test patients is in the selected data: "
                "the new model could not be tested.</span>"
            )
        elif min(c["test"].get("benign", 0), c["test"].get("malignant", 0)) == 0:
            lines.append(
                "<span style='color:#ffcc80'>The test patients have images of one class only: the AUC "
                "cannot be computed.</span>"
            )
        if self.kfold_radio.isChecked():
            k = self.folds.value()
            n_rest = c["train"]["patients"] + c["val"]["patients"]
            if n_rest < k:
                lines.append(f"<span style='color:#ff8a80'>✖ {n_rest} patients cannot make {k} folds.</span>")
                self.preview_label.setText("<br>".join(lines))
                self.completeChanged.emit()
                return
            lines.append(
                f"Cross-validation: {k} folds over the {n_rest} patients outside the locked test set, "
                "then the final model on the split above."
            )
        self.preview_ok = c["test"]["patients"] > 0 and c["train"]["patients"] > 0 and c["val"]["patients"] > 0
        self.preview_label.setText("<br>".join(lines))
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        w = self.wiz
        if w.locked_busy:
            return False
        if w.locked is None:  # Next creates it (and stays here to show it)
            return not w.locked_error and w.data_page.summary is not None
        return self.preview_ok

    def validatePage(self) -> bool:
        """Without a locked test set, Next creates it and stays on this page so its counts are seen."""
        if self.wiz.locked is None:
            self.wiz.create_locked_test()
            return False
        return True

    def _next_text(self) -> None:
        w = self.wiz
        self.setButtonText(
            QWizard.WizardButton.NextButton,
            "Create locked test set" if w.locked is None and not w.locked_error else "Next >",
        )


# ======================================================================= 4 settings
class SettingsPage(QWizardPage):
    """Training settings with the seeds' defaults; Advanced for the rest."""

    def __init__(self, wiz: TrainingWizard) -> None:
        super().__init__(wiz)
        self.wiz = wiz
        self.setTitle("Step 4 of 6 · Training settings")
        self.setSubTitle(
            "The busviewer recipe is what measured best here without ImageNet weights "
            "(docs/RESULTS.md); the original recipe repeats the published training "
            "(Adam, learning rate 0.0001, early stopping). "
            "Pressing “Start training” begins step 5."
        )
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Start training")
        self._build()

    def _build(self) -> None:
        from busviewer.training.config import AugmentConfig, TrainConfig
        from busviewer.training.recipes import DEFAULT_RECIPE, RECIPES

        d = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
        aug = AugmentConfig()

        main = QGroupBox("Training", self)
        form = QFormLayout(main)
        self.recipe = QComboBox(main)
        for name in RECIPES:
            self.recipe.addItem(RECIPE_TEXT.get(name, name), name)
        self.recipe.setToolTip("A preset of all settings; changing it resets the fields below to the preset.")
        form.addRow("Recipe:", self.recipe)
        self.epochs = QSpinBox(main)
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(int(d["epochs"]))
        self.epochs.setToolTip("Upper limit per training stage; early stopping usually ends sooner.")
        self.patience = QSpinBox(main)
        self.patience.setRange(1, 200)
        self.patience.setValue(int(d["patience"]))
        self.patience.setSuffix(" epochs")
        self.patience.setToolTip(
            "Stop when the validation loss has not improved for this many epochs; the best weights are kept."
        )
        self.batch_size = QSpinBox(main)
        self.batch_size.setRange(1, 1024)
        self.batch_size.setValue(int(d["batch_size"]))
        self.lr = QDoubleSpinBox(main)
        self.lr.setDecimals(6)
        self.lr.setRange(0.000001, 0.1)
        self.lr.setSingleStep(0.00005)
        self.lr.setValue(float(d["lr"]))
        self.lr.setToolTip(
            "Peak learning rate; 0.0001 (1e-4) with Adam in the original recipe, 0.001 with AdamW, "
            "warm-up and cosine decay in the busviewer recipe."
        )
        self.input_size = QSpinBox(main)
        self.input_size.setRange(32, 1024)
        self.input_size.setSingleStep(32)
        self.input_size.setValue(int(d["input_size"]))
        self.input_size.setSuffix(" px")
        self.input_size.setToolTip(
            "Images are resized to a square of this size (224 in the original recipe). Smaller trains faster on a CPU."
        )
        form.addRow("Maximum epochs per stage:", self.epochs)
        form.addRow("Early stopping after:", self.patience)
        form.addRow("Batch size:", self.batch_size)
        form.addRow("Learning rate:", self.lr)
        form.addRow("Input size:", self.input_size)

        augb = QGroupBox("Augmentation (random changes to training images)", self)
        al = QVBoxLayout(augb)
        self.aug_crop = QCheckBox("Random crop", augb)
        self.aug_crop.setChecked(aug.crop != "none")
        self.aug_flip = QCheckBox("Horizontal flip", augb)
        self.aug_flip.setChecked(aug.hflip)
        self.aug_jitter = QCheckBox("Brightness / contrast", augb)
        self.aug_jitter.setChecked(aug.brightness > 0 or aug.contrast > 0)
        self.aug_scale = QCheckBox("Scale (small zoom in / out)", augb)
        self.aug_scale.setChecked(aug.scale > 0)
        for cb in (self.aug_crop, self.aug_flip, self.aug_jitter, self.aug_scale):
            al.addWidget(cb)
        al.addWidget(
            dim(
                "Augmentation makes the model less sensitive to position, gain and size; "
                "validation and test images are never changed.",
                augb,
            )
        )
        al.addStretch(1)

        top = QHBoxLayout()
        top.addWidget(main, 1)
        top.addWidget(augb, 1)

        # advanced (collapsible)
        self.advanced_toggle = QToolButton(self)
        self.advanced_toggle.setText("Advanced settings")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setStyleSheet(
            "QToolButton { border: none; font-weight: 600; } "
            "QToolButton:checked { background: transparent; color: #e6e6e6; }"
        )
        self.advanced_toggle.toggled.connect(self._toggle_advanced)
        self.advanced = QGroupBox(self)
        grid = QGridLayout(self.advanced)
        self.balance = QComboBox(self.advanced)
        for text, key in (("Weighted loss", "loss"), ("Oversample the smaller class", "sampler"), ("None", "none")):
            self.balance.addItem(text, key)
        self.freezing = QComboBox(self.advanced)
        self.freezing.addItem("Automatic (seed 001 schedule; all layers from random weights)", "auto")
        self.freezing.addItem("Custom", "custom")
        self.alexnet_last = QSpinBox(self.advanced)
        self.alexnet_last.setRange(1, 8)
        self.alexnet_last.setValue(3)
        self.alexnet_last.setToolTip("AlexNet layers trained in stage 1, counted from the end (3 in seed 001).")
        self.resnet_frozen = QSpinBox(self.advanced)
        self.resnet_frozen.setRange(0, 6)
        self.resnet_frozen.setValue(4)
        self.resnet_frozen.setToolTip("ResNet-18 layers kept frozen in stage 1 (conv1, bn1, layer1-4; 4 in seed 001).")
        self.vgg_frozen = QSpinBox(self.advanced)
        self.vgg_frozen.setRange(0, 5)
        self.vgg_frozen.setValue(0)
        self.vgg_frozen.setToolTip("VGG-16 convolution blocks kept frozen (0: fine-tune all, as in seed 000).")
        self.head_init = QComboBox(self.advanced)
        self.head_init.addItem("Average of the two branch classifiers", "branches")
        self.head_init.addItem("Random", "random")
        self.freezing.currentIndexChanged.connect(self._freezing_changed)
        self.seed = QSpinBox(self.advanced)
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(int(d["seed"]))
        self.seed.setToolTip(
            "Fixes the random choices (split of validation patients, augmentation, initial "
            "weights) so a run can be repeated."
        )
        self.seed.valueChanged.connect(lambda _v: self.wiz.validation_page.update_preview())
        self.device = QComboBox(self.advanced)
        self.device.addItem("Automatic (best available)", None)
        self.amp = QComboBox(self.advanced)
        for text, key in (
            ("Automatic (bf16 or fp16 on CUDA)", "auto"),
            ("Off", "off"),
            ("fp16", "fp16"),
            ("bf16", "bf16"),
        ):
            self.amp.addItem(text, key)
        self.amp.setToolTip("Mixed precision speeds up training on NVIDIA GPUs; it is always off on the CPU.")
        self.max_steps = QSpinBox(self.advanced)
        self.max_steps.setRange(0, 1_000_000)
        self.max_steps.setSpecialValueText("all (normal)")
        self.max_steps.setToolTip("For a quick trial only: at most this many batches per epoch.")
        self.name = QLineEdit(self.advanced)
        self.name.setPlaceholderText("default: the architecture (ensemble / vgg16)")
        self.name.setToolTip("Model name; the registry numbers the versions (name v1, v2, …).")
        self.description = QLineEdit(self.advanced)
        self.description.setPlaceholderText("optional note stored on the model card")
        rows = [
            ("Class balancing:", self.balance),
            ("Frozen layers:", self.freezing),
            ("AlexNet layers trained:", self.alexnet_last),
            ("ResNet-18 layers frozen:", self.resnet_frozen),
            ("VGG-16 blocks frozen:", self.vgg_frozen),
            ("Ensemble classifier starts as:", self.head_init),
        ]
        rows2 = [
            ("Random seed:", self.seed),
            ("Device:", self.device),
            ("Mixed precision:", self.amp),
            ("Steps per epoch:", self.max_steps),
            ("Model name:", self.name),
            ("Description:", self.description),
        ]
        for r, (label, w) in enumerate(rows):
            grid.addWidget(QLabel(label, self.advanced), r, 0)
            grid.addWidget(w, r, 1)
        for r, (label, w) in enumerate(rows2):
            grid.addWidget(QLabel(label, self.advanced), r, 2)
            grid.addWidget(w, r, 3)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        grid.setHorizontalSpacing(10)
        self.advanced.setVisible(False)
        self._freezing_changed()
        self.recipe.currentIndexChanged.connect(self._apply_recipe)
        self.recipe.setCurrentIndex(max(0, self.recipe.findData(DEFAULT_RECIPE)))
        self._apply_recipe()

        self.summary = dim("", self)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(_hline(self))
        lay.addWidget(self.advanced_toggle)
        lay.addWidget(self.advanced)
        lay.addStretch(1)
        lay.addWidget(self.summary)

    def _toggle_advanced(self, on: bool) -> None:
        self.advanced.setVisible(on)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    def _freezing_changed(self, *_args: Any) -> None:
        custom = self.freezing.currentData() == "custom"
        for w in (self.alexnet_last, self.resnet_frozen, self.vgg_frozen):
            w.setEnabled(custom)

    def set_devices(self, devices: list[str], default_text: str) -> None:
        current = self.device.currentData()
        self.device.blockSignals(True)
        self.device.clear()
        self.device.addItem(f"Automatic: {runs.device_text(default_text)}", None)
        for dev in devices:
            self.device.addItem(dev.upper() if dev == "cpu" else dev, dev)
        idx = self.device.findData(current)
        self.device.setCurrentIndex(max(idx, 0))
        self.device.blockSignals(False)

    def set_device(self, device: str | None) -> None:
        idx = self.device.findData(device)
        if idx < 0 and device:
            self.device.addItem(device, device)
            idx = self.device.count() - 1
        self.device.setCurrentIndex(max(idx, 0))

    def initializePage(self) -> None:
        arch = self.wiz.model_page.architecture()
        self.head_init.setEnabled(arch == "ensemble")
        self.alexnet_last.setVisible(True)
        joint = self._recipe_config().ensemble_schedule == "joint"
        stages = (
            (
                "one stage (both networks and the joint classifier together)"
                if joint
                else "three stages (AlexNet, ResNet-18, joint classifier)"
            )
            if arch == "ensemble"
            else "one stage"
        )
        self.summary.setText(
            f"The {ARCH_TEXT[arch][0]} trains in {stages}, each for up to the maximum number of "
            "epochs. Progress, curves and an estimate of the time left are shown in step 5; you can "
            "cancel at any time and resume later."
        )

    def _recipe_config(self) -> Any:
        from busviewer.training.recipes import make_config

        return make_config(self.recipe.currentData(), data="store")

    def _apply_recipe(self) -> None:
        """Reset the fields to the chosen recipe's values."""
        cfg = self._recipe_config()
        self.epochs.setValue(cfg.epochs)
        self.patience.setValue(cfg.patience)
        self.batch_size.setValue(cfg.batch_size)
        self.lr.setValue(cfg.lr)
        a = cfg.augment
        self.aug_crop.setChecked(a.crop != "none")
        self.aug_flip.setChecked(a.hflip)
        self.aug_jitter.setChecked(a.brightness > 0 or a.contrast > 0)
        self.aug_scale.setChecked(a.scale > 0)
        self.balance.setCurrentIndex(max(0, self.balance.findData(cfg.balance)))
        if hasattr(self, "summary") and getattr(self.wiz, "model_page", None) is not None:
            self.initializePage()

    def augment(self) -> dict[str, Any]:
        from busviewer.training.config import AugmentConfig

        a = self._recipe_config().augment
        base = AugmentConfig()
        return {
            "enabled": True,
            "crop": (a.crop if a.crop != "none" else base.crop) if self.aug_crop.isChecked() else "none",
            "crop_scale": a.crop_scale,
            "hflip": self.aug_flip.isChecked(),
            "brightness": (a.brightness or base.brightness) if self.aug_jitter.isChecked() else 0.0,
            "contrast": (a.contrast or base.contrast) if self.aug_jitter.isChecked() else 0.0,
            "scale": (a.scale or base.scale) if self.aug_scale.isChecked() else 0.0,
            "rotation": a.rotation,
            "gamma": a.gamma,
            "noise": a.noise,
            "blur": a.blur,
        }

    def config_values(self) -> dict[str, Any]:
        from busviewer.training.recipes import recipe_settings

        custom = self.freezing.currentData() == "custom"
        preset = {k: v for k, v in recipe_settings(self.recipe.currentData()).items() if k != "augment"}
        return preset | {
            "recipe": self.recipe.currentData(),
            "epochs": self.epochs.value(),
            "patience": self.patience.value(),
            "batch_size": self.batch_size.value(),
            "lr": float(self.lr.value()),
            "input_size": self.input_size.value(),
            "augment": self.augment(),
            "balance": self.balance.currentData(),
            "alexnet_trainable_last": self.alexnet_last.value() if custom else None,
            "resnet_frozen_first": self.resnet_frozen.value() if custom else None,
            "vgg_frozen_blocks": self.vgg_frozen.value() if custom else None,
            "head_init": self.head_init.currentData(),
            "seed": self.seed.value(),
            "device": self.device.currentData(),
            "amp": self.amp.currentData(),
            "max_steps_per_epoch": self.max_steps.value() or None,
            "name": self.name.text().strip() or None,
            "description": self.description.text().strip(),
        }

    def validatePage(self) -> bool:
        import re

        name = self.name.text().strip()
        if name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", name):
            self.wiz.show_error(
                "Invalid model name", f"“{name}” cannot be used: use letters, digits, '.', '_' or '-' (no spaces)."
            )
            return False
        return self.wiz.confirm_start()


__all__ = ["DataPage", "ModelPage", "SettingsPage", "ValidationPage"]
