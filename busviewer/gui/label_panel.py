"""Reader labels per image and per patient; every change is written (and audited) at once."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from busviewer.core.store import LabelRecord, Store, StoreError
from busviewer.core.validate import BIRADS_CATEGORIES

BIRADS = ("", *BIRADS_CATEGORIES)  # the same categories the CLI accepts
CHOICES = (("benign", "Benign"), ("malignant", "Malignant"), ("normal", "Normal"))
#: Pressing the 4 key again steps through the subcategories.
BIRADS_4_CYCLE = ("4", "4A", "4B", "4C")


def reader_label(labels: dict[str, LabelRecord]) -> LabelRecord | None:
    """The label this reader set (biopsy-confirmed wins over a plain reader label)."""
    return labels.get("biopsy") or labels.get("reader")


class LabelEditor(QGroupBox):
    """Label, BI-RADS, biopsy-confirmed and note for one target (an image or a patient)."""

    changed = Signal()
    errorOccurred = Signal(str, str)

    def __init__(self, title: str, store: Store, parent: QWidget | None = None, shortcut_hint: str = "") -> None:
        super().__init__(title, parent)
        self.store = store
        self.image_id: int | None = None
        self.patient_key: str | None = None
        self.labels: dict[str, LabelRecord] = {}
        self._loading = False

        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.buttons: dict[str, QRadioButton] = {}
        row = QHBoxLayout()
        for value, text in CHOICES:
            b = QRadioButton(text, self)
            b.setObjectName(f"label_{value}")
            self.group.addButton(b)
            self.buttons[value] = b
            row.addWidget(b)
        row.addStretch(1)
        self.group.buttonToggled.connect(self._button_toggled)
        self.birads = QComboBox(self)
        for v in BIRADS:
            self.birads.addItem(v or "—", v or None)
        self.birads.setToolTip("BI-RADS assessment category (optional)")
        self.birads.currentIndexChanged.connect(self._edited)
        self.biopsy = QCheckBox("Biopsy-confirmed", self)
        self.biopsy.setToolTip("The label comes from histology (stored with source 'biopsy')")
        self.biopsy.toggled.connect(self._edited)
        self.note = QLineEdit(self)
        self.note.setPlaceholderText("Note (saved when you leave the field)")
        self.note.editingFinished.connect(self._note_done)
        self.info = QLabel("", self)
        self.info.setObjectName("dimLabel")
        self.info.setWordWrap(True)
        grid = QGridLayout()
        grid.addWidget(QLabel("BI-RADS", self), 0, 0)
        grid.addWidget(self.birads, 0, 1)
        grid.addWidget(self.biopsy, 0, 2)
        grid.addWidget(QLabel("Note", self), 1, 0)
        grid.addWidget(self.note, 1, 1, 1, 2)
        grid.setColumnStretch(2, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addLayout(grid)
        lay.addWidget(self.info)
        if shortcut_hint:
            self.setToolTip(shortcut_hint)
        self.setEnabled(False)

    # ---------------------------------------------------------------- loading
    def set_image(self, image_id: int | None, labels: dict[str, LabelRecord] | None = None) -> None:
        self.commit_pending()
        self.image_id, self.patient_key = image_id, None
        self._load(labels or {}, image_id is not None)

    def set_patient(self, patient_key: str | None, labels: dict[str, LabelRecord] | None = None) -> None:
        self.commit_pending()
        self.image_id, self.patient_key = None, patient_key
        self._load(labels or {}, patient_key is not None)

    def commit_pending(self) -> None:
        """Save a note still being typed before the editor moves to another image or patient."""
        if self.note.isModified() and (self.image_id is not None or self.patient_key is not None):
            self.note.setModified(False)
            self._note_done()

    def _load(self, labels: dict[str, LabelRecord], enabled: bool) -> None:
        self._loading = True
        try:
            self.labels = dict(labels)
            current = reader_label(labels)
            self.group.setExclusive(False)
            for value, b in self.buttons.items():
                b.setChecked(current is not None and current.label == value)
            self.group.setExclusive(True)
            self.birads.setCurrentIndex(max(0, self.birads.findData(current.birads if current else None)))
            self.biopsy.setChecked(bool(current and (current.biopsy_confirmed or current.source == "biopsy")))
            self.note.setText(current.note or "" if current else "")
            self.setEnabled(enabled)
            self._show_info()
        finally:
            self._loading = False

    def _show_info(self) -> None:
        current = reader_label(self.labels)
        parts = []
        if current is not None:
            when = current.updated.astimezone().strftime("%Y-%m-%d %H:%M") if current.updated else ""
            parts.append(f"Saved {when} by {current.user} ({current.source})")
        imported = self.labels.get("import")
        if imported is not None:
            parts.append(f"Dataset label: {imported.label}")
        if current is None and imported is None:
            parts.append(self._image_labels_text() if self.patient_key is not None else "Not labelled yet")
        self.info.setText(" · ".join(parts))

    def _image_labels_text(self) -> str:
        """A patient without its own label: say what its images are labelled (the worklist shows those)."""
        try:
            found = self.store.patients(patient_key=self.patient_key)
        except StoreError:
            found = []
        counts = found[0].label_counts if found else {}
        if not counts:
            return "Not labelled yet (no patient or image label)"
        images = ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))
        return f"No patient label yet · image labels: {images}"

    def refresh_info(self) -> None:
        """Re-read what the info line says (an image label of this patient changed)."""
        if self.patient_key is not None:
            self._show_info()

    # ----------------------------------------------------------------- saving
    def current_choice(self) -> str | None:
        for value, b in self.buttons.items():
            if b.isChecked():
                return value
        return None

    def apply_label(self, label: str) -> bool:
        """Set the label (the B / M keys), keeping BI-RADS, biopsy and note."""
        if not self.isEnabled() or self.isHidden():  # hidden: blinded first read
            return False
        self._loading = True
        self.buttons[label].setChecked(True)
        self._loading = False
        return self.save()

    def apply_birads(self, category: str) -> bool:
        """Set BI-RADS (Ctrl+0..6); ``4`` again steps 4 → 4A → 4B → 4C. Needs benign/malignant first."""
        if not self.isEnabled() or self.isHidden():
            return False
        if self.current_choice() is None:
            self.info.setText("Choose benign or malignant first (B / M); then BI-RADS is saved with it.")
            return False
        now = self.birads.currentData()
        if category == "4" and now in BIRADS_4_CYCLE:
            category = BIRADS_4_CYCLE[(BIRADS_4_CYCLE.index(now) + 1) % len(BIRADS_4_CYCLE)]
        self._loading = True
        self.birads.setCurrentIndex(max(0, self.birads.findData(category)))
        self._loading = False
        return self.save()

    def _button_toggled(self, _button: Any, checked: bool) -> None:
        if checked and not self._loading:
            self.save()

    def _edited(self, *_: Any) -> None:
        if not self._loading:
            if self.current_choice() is None:
                self.info.setText("Choose benign or malignant first; then BI-RADS, biopsy and note are saved with it.")
                return
            self.save()

    def _note_done(self) -> None:
        current = reader_label(self.labels)
        if (current.note or "" if current else "") != self.note.text().strip():
            self._edited()

    def save(self) -> bool:
        label = self.current_choice()
        if label is None or (self.image_id is None and self.patient_key is None):
            return False
        source = "biopsy" if self.biopsy.isChecked() else "reader"
        target: dict[str, Any] = (
            {"image_id": self.image_id} if self.image_id is not None else {"patient_key": self.patient_key}
        )
        try:
            if source == "reader" and "biopsy" in self.labels:
                self.store.clear_label(source="biopsy", **target)
            self.store.set_label(
                label,
                source=source,
                birads=self.birads.currentData(),
                biopsy_confirmed=self.biopsy.isChecked(),
                note=self.note.text().strip() or None,
                **target,
            )
            labels = (
                self.store.image(self.image_id).labels
                if self.image_id is not None
                else self.store.patient_label(self.patient_key)  # type: ignore[arg-type]
            )
        except (StoreError, KeyError, ValueError) as exc:
            what = f"image {self.image_id}" if self.image_id is not None else f"patient {self.patient_key}"
            self.errorOccurred.emit("Label not saved", f"The label of {what} was not saved: {exc}")
            self._load(self.labels, True)
            return False
        self._load(labels, True)
        self.changed.emit()
        return True


class LabelPanel(QWidget):
    """The image label editor above the patient label editor."""

    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image = LabelEditor("Current image", store, self, "B: benign, M: malignant, Ctrl+0..6: BI-RADS")
        self.patient = LabelEditor("Patient", store, self, "Alt+0..6: BI-RADS of the patient")
        self.image.changed.connect(self.patient.refresh_info)
        for digit in "0123456":
            for mod, editor in (("Ctrl", self.image), ("Alt", self.patient)):
                sc = QShortcut(QKeySequence(f"{mod}+{digit}"), self)
                sc.setContext(Qt.ShortcutContext.WindowShortcut)
                sc.activated.connect(lambda d=digit, e=editor: e.apply_birads(d))
        self.hint = hint = QLabel(
            "B / M label the current image, Ctrl+0..6 its BI-RADS (Ctrl+4 again: 4A, 4B, 4C), Alt+0..6 "
            "the patient's · R marks the patient reviewed · every change is saved at once",
            self,
        )
        hint.setObjectName("dimLabel")
        hint.setWordWrap(True)
        self.hidden_note = QLabel(
            "Blinded first read: this patient's labels are hidden until you record your call "
            '(in the AI panel\'s "Your first read" box).',
            self,
        )
        self.hidden_note.setWordWrap(True)
        self.hidden_note.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.hidden_note)
        lay.addWidget(self.image)
        lay.addWidget(self.patient)
        lay.addWidget(hint)
        lay.addStretch(1)
        lay.setAlignment(Qt.AlignmentFlag.AlignTop)

    def set_hidden(self, hidden: bool) -> None:
        """Blinded first read: hide both editors (their labels would give the answer away) and
        refuse the label keys until the reader's call is recorded."""
        for widget in (self.image, self.patient, self.hint):
            widget.setHidden(hidden)
        self.hidden_note.setVisible(hidden)
