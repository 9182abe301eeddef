"""Step 3 of the training wizard: validation (hold-out or k-fold) and the locked test set
(:mod:`busviewer.training.locked_test`) whose patients are the test part of every run."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from busviewer.gui.wizard_common import WizardHost, dim
from busviewer.services import training_runs as runs


class ValidationPage(QWizardPage):
    """Validation for early stopping, and the locked test set."""

    def __init__(self, wiz: WizardHost) -> None:
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


__all__ = ["ValidationPage"]
