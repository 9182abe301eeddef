"""Step 1 of the training wizard: which labelled images (or ROI crops) to learn from, with
counts per class and patient and the checks before training (too few patients, class
imbalance, conflicting labels, near-duplicates across patients).

Store queries and image decoding run in workers started through the wizard
(:meth:`WizardHost.submit`); the counting itself is :mod:`busviewer.services.training_data`.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, time
from typing import Any

from PySide6.QtCore import QDate, Qt, QTimer
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWizardPage,
)

from busviewer.gui.wizard_common import WizardHost, dim
from busviewer.gui.wizard_data_widgets import DataChecks, PatientTable
from busviewer.services import training_data as wd
from busviewer.services import training_runs as runs


class DataPage(QWizardPage):
    """Which labelled images (or ROI crops) to learn from, with counts and warnings."""

    def __init__(self, wiz: WizardHost) -> None:
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
        self._load_generation = 0
        self._started = False
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
        self.checks = DataChecks(self)
        self.warnings_widget, self.warnings_layout = self.checks.warnings_widget, self.checks.warnings_layout
        self.dup_status = self.checks.dup_status
        left = QVBoxLayout()
        left.addWidget(sel)
        left.addWidget(self.checks, 1)

        self.patients = PatientTable(self)
        self.patients.changed.connect(self.schedule_recount)
        p = self.patients  # the names tests and the wizard use
        self.table, self.search, self.patient_count = p.table, p.search, p.patient_count
        self.include_shown, self.exclude_shown = p.include_shown, p.exclude_shown

        middle = QHBoxLayout()
        middle.addLayout(left, 5)
        middle.addWidget(self.patients, 4)

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
            self.summary = self.patients.summary = None
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
        self.patients.fill(self.summary)
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
        self.checks.show_warnings(warnings, self.near is not None)

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

    @property
    def excluded(self) -> set[str]:
        """Patients the reader left out (unticked in the table)."""
        return self.patients.excluded

    def set_patient_used(self, patient: str, used: bool) -> None:
        self.patients.set_patient_used(patient, used)


__all__ = ["DataPage"]
