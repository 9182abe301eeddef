"""Grad-CAM overlay: the colour table, a colour bar legend and the overlay controls.

pyqtgraph (which holds the colour map) is imported only when a colour table is asked for:
the controls are part of the window that shows before the image viewer is built.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QLinearGradient, QPainter
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QWidget,
)

COLORMAP = "turbo"

#: (architecture, menu text)
CAM_MODELS: tuple[tuple[str, str], ...] = (
    ("ensemble", "Ensemble (AlexNet + ResNet-18)"),
    ("vgg16", "VGG-16"),
)


def cam_lut(n: int = 256, name: str = COLORMAP) -> np.ndarray:
    """An RGBA table: the colour map with alpha rising from 0 so weak attention stays see-through."""
    import pyqtgraph as pg

    cmap = pg.colormap.get(name)
    rgba = cmap.getLookupTable(0.0, 1.0, n, alpha=True).astype(np.float32)
    ramp = np.clip(np.linspace(0.0, 1.0, n) / 0.35, 0.0, 1.0)
    rgba[:, 3] = 255.0 * ramp
    return rgba.astype(np.uint8)


def gradient_stops(name: str = COLORMAP, n: int = 16) -> list[tuple[float, QColor]]:
    import pyqtgraph as pg

    cmap = pg.colormap.get(name)
    lut = cmap.getLookupTable(0.0, 1.0, n, alpha=False)
    return [(i / (n - 1), QColor(int(r), int(g), int(b))) for i, (r, g, b) in enumerate(lut)]


class ColorBar(QWidget):
    """A horizontal gradient legend: low ... high attention (an empty frame until :meth:`load_colours`)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._stops: list[tuple[float, QColor]] = []
        fm = QFontMetrics(self.font())
        self.setMinimumHeight(14 + fm.height() + 2)
        self.setMinimumWidth(140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Grad-CAM: regions that most raised the model's score are red; blue/clear had little effect")

    def load_colours(self) -> None:
        """Read the colour map (imports pyqtgraph; the main window calls it with the viewer)."""
        if not self._stops:
            self._stops = gradient_stops()
            self.update()

    def paintEvent(self, _event) -> None:  # type: ignore[no-untyped-def]
        p = QPainter(self)
        fm = QFontMetrics(self.font())
        bar = QRectF(1, 1, self.width() - 2, 12)
        if self._stops:
            grad = QLinearGradient(bar.topLeft(), bar.topRight())
            for pos, colour in self._stops:
                grad.setColorAt(pos, colour)
            p.fillRect(bar, grad)
        p.setPen(QColor("#9aa0a6"))
        p.drawRect(bar)
        p.setPen(self.palette().windowText().color())
        y = int(bar.bottom()) + 2
        rect = QRectF(0, y, self.width(), fm.height())
        p.drawText(rect, Qt.AlignmentFlag.AlignLeft, "low")
        p.drawText(rect, Qt.AlignmentFlag.AlignHCenter, "attention")
        p.drawText(rect, Qt.AlignmentFlag.AlignRight, "high")
        p.end()


class CamControls(QWidget):
    """Grad-CAM on/off, which model, opacity, and the colour bar."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.enabled = QCheckBox("Show Grad-CAM (G)", self)
        self.enabled.setToolTip("Overlay where the model looked (computed in the background)")
        self.model = QComboBox(self)
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model.setMinimumContentsLength(12)
        for arch, text in CAM_MODELS:
            self.model.addItem(text, arch)
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(55)
        self.opacity.setToolTip("Overlay opacity")
        self.opacity_label = QLabel("55 %", self)
        self.opacity_label.setMinimumWidth(QFontMetrics(self.font()).horizontalAdvance("100 %") + 4)
        self.status = QLabel("", self)
        self.status.setObjectName("dimLabel")
        self.status.setWordWrap(True)
        self.colorbar = ColorBar(self)
        lay = QGridLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.enabled, 0, 0, 1, 3)
        lay.addWidget(QLabel("Model", self), 1, 0)
        lay.addWidget(self.model, 1, 1, 1, 2)
        lay.addWidget(QLabel("Opacity", self), 2, 0)
        lay.addWidget(self.opacity, 2, 1)
        lay.addWidget(self.opacity_label, 2, 2)
        lay.addWidget(self.colorbar, 3, 0, 1, 3)
        lay.addWidget(self.status, 4, 0, 1, 3)
        lay.setColumnStretch(1, 1)
        self.enabled.toggled.connect(self._emit)
        self.model.currentIndexChanged.connect(self._emit)
        self.opacity.valueChanged.connect(self._opacity_changed)
        self._sync()

    def _opacity_changed(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        self.changed.emit()

    def _emit(self, *_args) -> None:  # type: ignore[no-untyped-def]
        self._sync()
        self.changed.emit()

    def _sync(self) -> None:
        on = self.enabled.isChecked()
        for w in (self.model, self.opacity, self.colorbar):
            w.setEnabled(on)

    def architecture(self) -> str:
        return str(self.model.currentData())

    def is_on(self) -> bool:
        return self.enabled.isChecked()

    def alpha(self) -> float:
        return self.opacity.value() / 100.0

    def set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))
