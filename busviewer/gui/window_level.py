"""Display window/level of the viewer: sliders, presets, right/middle-drag, and the value
kept per image until the patient changes. Display only: the stored pixels never change.
Also the one-line label that elides instead of cutting (the viewer's info line)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QComboBox, QLabel, QSizePolicy, QSlider, QToolButton, QWidget

DEFAULT_WL = (255, 128)
#: Presets (window, level) for 8-bit ultrasound.
WL_PRESETS = (
    ("Full range", 255, 128),
    ("More contrast", 180, 128),
    ("High contrast", 120, 128),
    ("Brighter", 255, 100),
    ("Darker", 255, 156),
)
_TIP = " for display only; or drag with the right or middle mouse button on the image"


class WindowLevel(QObject):
    """The W/L widgets (``window_slider``, ``level_slider``, ``label``, ``preset``, ``reset_button``
    and the "W"/"L" captions in ``sliders``) and the per-image memory; ``changed`` gives (lo, hi)."""

    changed = Signal(float, float)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.key: Any = None
        self._by_key: dict[Any, tuple[int, int]] = {}
        self._drag_base = DEFAULT_WL
        self.window_slider = _slider(parent, 1, 255, 255, "Window (contrast)" + _TIP + " (left/right)")
        self.level_slider = _slider(parent, 0, 255, 128, "Level (brightness)" + _TIP + " (up/down)")
        self.sliders = (QLabel("W", parent), self.window_slider, QLabel("L", parent), self.level_slider)
        self.label = QLabel(parent)
        self.label.setObjectName("dimLabel")
        self.label.setMinimumWidth(self.label.fontMetrics().horizontalAdvance("W 255 L 255") + 6)
        self.preset = QComboBox(parent)
        self.preset.addItem("Preset…", None)
        for name, w, lv in WL_PRESETS:
            self.preset.addItem(f"{name} (W {w} L {lv})", (w, lv))
        self.preset.activated.connect(self._preset_chosen)
        self.preset.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.preset.setMinimumContentsLength(5)  # the list opens wide enough for the names
        self.reset_button = QToolButton(parent)
        self.reset_button.setText("Reset W/L")
        self.reset_button.setToolTip("Back to the stored grey levels")
        self.reset_button.clicked.connect(self.reset)
        self.window_slider.valueChanged.connect(self._changed)
        self.level_slider.valueChanged.connect(self._changed)
        self._changed()

    def value(self) -> tuple[int, int]:
        return self.window_slider.value(), self.level_slider.value()

    def levels(self) -> tuple[float, float]:
        """(lo, hi) grey levels for the image item."""
        w, lv = self.value()
        lo = lv - w / 2.0
        return (lo, max(lv + w / 2.0, lo + 1.0))

    def set_value(self, window: int, level: int) -> None:
        self.window_slider.setValue(int(window))
        self.level_slider.setValue(int(level))

    def reset(self) -> None:
        self.set_value(*DEFAULT_WL)

    def forget(self) -> None:
        """Another patient: every image starts again from the stored grey levels."""
        self._by_key.clear()
        self.reset()

    def use_key(self, key: Any) -> None:
        """Another image: its own W/L as the reader left it, else the default."""
        self.key = key
        self.set_value(*self._by_key.get(key, DEFAULT_WL))

    def drag(self, dx: float, dy: float, start: bool) -> None:
        """One grey level per screen pixel from the press (right: wider window, down: higher level)."""
        if start:
            self._drag_base = self.value()
        w0, l0 = self._drag_base
        self.set_value(round(min(255, max(1, w0 + dx))), round(min(255, max(0, l0 + dy))))

    def _changed(self, *_: Any) -> None:
        w, lv = self.value()
        self.label.setText(f"W {w} L {lv}")
        self.preset.setToolTip(f"Window/level presets (display only); now W {w} L {lv}")
        if self.key is not None:
            self._by_key[self.key] = (w, lv)
        self.changed.emit(*self.levels())

    def _preset_chosen(self, index: int) -> None:
        wl = self.preset.itemData(index)
        if wl is not None:
            self.set_value(*wl)
        self.preset.setCurrentIndex(0)


def _slider(parent: QWidget, lo: int, hi: int, value: int, tip: str) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal, parent)
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    s.setMinimumWidth(60)
    return s


class ElidedLabel(QLabel):
    """A one-line label that shows "…" where its text does not fit; the full text is its tooltip."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("", parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        return self._full

    def _elide(self) -> None:
        room = max(0, self.contentsRect().width() - 2)
        super().setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, room))

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._elide()
