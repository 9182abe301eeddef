"""Small dialogs: about, keyboard shortcuts, progress with cancel, error messages."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from busviewer import __version__
from busviewer.core.notice import RESEARCH_NOTICE

#: (keys, what they do), shown in Help > Keyboard shortcuts.
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("B", "Label the current image benign"),
    ("M", "Label the current image malignant"),
    ("Ctrl+0 … Ctrl+6", "BI-RADS of the current image (Ctrl+4 again: 4A, 4B, 4C)"),
    ("Alt+0 … Alt+6", "BI-RADS of the patient"),
    ("Left / PgUp", "Previous image"),
    ("Right / PgDown", "Next image"),
    ("Up / Ctrl+PgUp", "Previous patient"),
    ("Down / Ctrl+PgDown", "Next patient"),
    ("R", "Mark the patient reviewed (again: not reviewed)"),
    ("A", "Analyse the patient with the active models"),
    ("G", "Grad-CAM overlay on/off"),
    ("F", "Fit the image to the view"),
    ("1", "Show the image 1:1 (one image pixel per screen pixel)"),
    ("C", "Compare two images side by side (1x2); the right one is chosen above it"),
    ("Right / middle drag", "Window/level on the image (left-right: window, up-down: level)"),
    ("Space", "Play / pause a cine loop"),
    ("Ctrl+F", "Search the worklist"),
    ("Ctrl+O", "Import files"),
    ("Ctrl+E", "Export the patient report (PDF)"),
    ("F1", "This list"),
)


def about_text() -> str:
    """Version, provenance (commit, torch/torchvision, shipped models' sha256) and the notice."""
    from html import escape

    from busviewer.core.provenance import provenance

    facts = "<br>".join(escape(line) for line in provenance().lines()[1:])
    return (
        f"<h3>busviewer {__version__}</h3>"
        "<p>Second-reader workstation for breast ultrasound: per-image classification by an "
        "AlexNet + ResNet-18 ensemble and by VGG-16, patient majority vote, Grad-CAM, lesion "
        "crops and reader labels.</p>"
        f"<p><small>{facts}</small></p>"
        f"<p><b>{RESEARCH_NOTICE}</b></p>"
    )


def show_about(parent: QWidget | None) -> None:
    QMessageBox.about(parent, "About busviewer", about_text())


class ShortcutsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, shortcuts: Sequence[tuple[str, str]] = SHORTCUTS) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        table = QTableWidget(len(shortcuts), 2, self)
        table.setHorizontalHeaderLabels(["Keys", "Action"])
        table.verticalHeader().hide()
        table.verticalHeader().setDefaultSectionSize(24)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        for row, (keys, what) in enumerate(shortcuts):
            table.setItem(row, 0, QTableWidgetItem(keys))
            table.setItem(row, 1, QTableWidgetItem(what))
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(table)
        lay.addWidget(buttons)
        self.resize(640, 30 + 24 * (len(shortcuts) + 1) + 60)


class ProgressDialog(QDialog):
    """A non-blocking progress window with a Cancel button (import, export)."""

    cancelRequested = Signal()

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setModal(False)
        self.label = QLabel("Starting…", self)
        self.label.setWordWrap(True)
        self.label.setMinimumWidth(420)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 0)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self._cancel)
        lay = QVBoxLayout(self)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel_button, alignment=Qt.AlignmentFlag.AlignRight)

    def set_progress(self, done: int, total: int, text: str = "") -> None:
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(done)
        if text:
            self.label.setText(text)

    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.label.setText("Cancelling…")
        self.cancelRequested.emit()

    def reject(self) -> None:  # Esc / window close = cancel
        self._cancel()


def message_box(
    parent: QWidget | None, title: str, text: str, detail: str = "", icon: QMessageBox.Icon = QMessageBox.Icon.Warning
) -> QMessageBox:
    """Show a non-blocking message (the app keeps running behind it)."""
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setWindowModality(Qt.WindowModality.NonModal)
    if detail:
        box.setDetailedText(detail)
    box.show()
    return box
