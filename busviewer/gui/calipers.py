"""Calipers on the viewer: measuring lines (several per image) and their list.

A caliper can only be changed while the caliper tool is on. In the navigate mode its
handles and line let drags through to the view, so a pan that starts on a handle pans
and never moves the measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyqtgraph as pg
from pyqtgraph.graphicsItems.ROI import Handle
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

CALIPER_COLOUR = QColor("#ffd54f")
SELECTED_COLOUR = QColor("#ff9100")


# ------------------------------------------------------------------ measuring
def _get(region: Any, name: str) -> Any:
    if isinstance(region, dict):
        return region.get(name)
    return getattr(region, name, None)


def region_at(regions: Sequence[Any], x: float, y: float) -> Any | None:
    """The first ultrasound region holding (x, y) that has physical deltas."""
    for r in regions:
        try:
            x0, y0, x1, y1 = (float(_get(r, k)) for k in ("x0", "y0", "x1", "y1"))
        except (TypeError, ValueError):
            continue
        if x0 <= x <= x1 and y0 <= y <= y1 and _get(r, "physical_delta_x") and _get(r, "physical_delta_y"):
            return r
    return None


def measure(
    p0: tuple[float, float],
    p1: tuple[float, float],
    regions: Sequence[Any],
    pixel_spacing_mm: tuple[float, float] | None = None,
) -> tuple[float, float | None, str]:
    """Distance between two image points: (pixels, millimetres or None, where the scale came from)."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    px = math.hypot(dx, dy)
    r0, r1 = region_at(regions, *p0), region_at(regions, *p1)
    if r0 is not None and r0 is r1:
        sx, sy = float(_get(r0, "physical_delta_x")), float(_get(r0, "physical_delta_y"))
        return px, math.hypot(dx * sx, dy * sy), "ultrasound region"
    if r0 is not None or r1 is not None:
        return px, None, "points lie in different ultrasound regions"
    if pixel_spacing_mm:
        row, col = pixel_spacing_mm
        return px, math.hypot(dx * col, dy * row), "pixel spacing"
    return px, None, "no calibration in the file"


def region_centre(region: Any) -> tuple[float, float]:
    try:
        return (
            (float(_get(region, "x0")) + float(_get(region, "x1"))) / 2,
            (float(_get(region, "y0")) + float(_get(region, "y1"))) / 2,
        )
    except (TypeError, ValueError):
        return (-1.0, -1.0)


# -------------------------------------------------------------------- items
class CaliperHandle(Handle):
    """An end point that takes drags only while its caliper is unlocked."""

    def __init__(self) -> None:
        super().__init__(5, typ="f", pen=pg.mkPen(CALIPER_COLOUR), hoverPen=pg.mkPen("#ffffff"))
        self.locked = True

    def hoverEvent(self, ev: Any) -> None:
        if self.locked:  # claim nothing: the view box gets the drag (pan)
            return
        super().hoverEvent(ev)

    def mouseDragEvent(self, ev: Any) -> None:
        if self.locked:
            ev.ignore()
            return
        super().mouseDragEvent(ev)


class Caliper(pg.LineSegmentROI):
    """A measuring line with a numbered label; locked (not editable) unless the caliper tool is on."""

    def __init__(self, number: int, p0: Sequence[float], p1: Sequence[float]) -> None:
        super().__init__(
            [p0, p1],
            handles=(CaliperHandle(), CaliperHandle()),
            pen=pg.mkPen(CALIPER_COLOUR, width=2),
            hoverPen=pg.mkPen("#ffffff", width=2),
            movable=False,
        )
        self.number = number
        self.text = ""
        self.label = pg.TextItem("", color="#111111", fill=pg.mkBrush(255, 213, 79, 230), anchor=(0, 1))
        self.label.setZValue(30)
        self.locked = True
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_locked(self, locked: bool) -> None:
        self.locked = locked
        for h in self.endpoints:
            h.locked = locked
        self.translatable = not locked

    def checkPointMove(self, handle: Any, pos: Any, modifiers: Any) -> bool:
        return not self.locked

    def hoverEvent(self, ev: Any) -> None:
        if not self.locked:
            super().hoverEvent(ev)

    def set_selected(self, on: bool) -> None:
        self.setPen(pg.mkPen(SELECTED_COLOUR if on else CALIPER_COLOUR, width=3 if on else 2))

    def points(self) -> tuple[tuple[float, float], tuple[float, float]]:
        a, b = (self.mapToParent(h.pos()) for h in self.endpoints)
        return (a.x(), a.y()), (b.x(), b.y())


# --------------------------------------------------------------------- list
class CaliperTool(QWidget):
    """The calipers of the shown image on a view box, and their list (hidden while empty)."""

    measured = Signal(str)

    def __init__(self, view: pg.ViewBox, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.items: list[Caliper] = []
        self.regions: Sequence[Any] = ()
        self.spacing: tuple[float, float] | None = None
        self.locked = True
        self._next = 1
        self.setObjectName("caliperTool")
        self.setAutoFillBackground(True)
        self.list = QListWidget(self)
        self.list.setObjectName("caliperList")
        self.list.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setWordWrap(True)
        self.list.setFixedHeight(self.list.fontMetrics().lineSpacing() * 4 + 12)
        self.list.currentRowChanged.connect(self._row_changed)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.setToolTip("Delete the selected measurement (Del)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.clear_button = QPushButton("Clear all", self)
        self.clear_button.setToolTip("Delete every measurement on this image")
        self.clear_button.clicked.connect(self.clear)
        buttons = QVBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.list, 1)
        lay.addLayout(buttons)
        QShortcut(
            QKeySequence.StandardKey.Delete, self.list, self.delete_selected, context=Qt.ShortcutContext.WidgetShortcut
        )
        self.setVisible(False)

    def set_calibration(self, regions: Sequence[Any], spacing: tuple[float, float] | None) -> None:
        self.regions, self.spacing = tuple(regions), spacing

    def add(self, p0: tuple[float, float], p1: tuple[float, float]) -> Caliper:
        c = Caliper(self._next, p0, p1)
        self._next += 1
        c.setZValue(25)
        c.set_locked(self.locked)
        self.view.addItem(c)
        self.view.addItem(c.label)
        c.sigRegionChanged.connect(self.update)
        self.items.append(c)
        self.list.addItem(QListWidgetItem(""))
        self.update(c)
        self.list.setCurrentRow(len(self.items) - 1)
        self.setVisible(True)
        return c

    def move(self, c: Caliper, p0: tuple[float, float], p1: tuple[float, float]) -> str:
        a, b = c.endpoints
        a.setPos(c.mapFromParent(QPointF(*p0)))
        b.setPos(c.mapFromParent(QPointF(*p1)))
        return self.update(c)

    def update(self, c: Caliper) -> str:
        p0, p1 = c.points()
        px, mm, source = measure(p0, p1, self.regions, self.spacing)
        short = f"{mm:.1f} mm" if mm is not None else f"{px:.0f} px"
        c.text = f"{px:.1f} px" + (f" = {mm:.2f} mm ({source})" if mm is not None else f" ({source})")
        c.label.setText(f"{c.number}: {short}")
        c.label.setPos(max(p0[0], p1[0]) + 4, min(p0[1], p1[1]))
        row = self.items.index(c) if c in self.items else -1
        if row >= 0:
            item = self.list.item(row)
            item.setText(f"{c.number}: {short}  ({source})")
            item.setToolTip(c.text)
        self.measured.emit(c.text)
        return c.text

    def set_locked(self, locked: bool) -> None:
        self.locked = locked
        for c in self.items:
            c.set_locked(locked)

    def delete_selected(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.items):
            self._remove(self.items.pop(row))
            self.list.takeItem(row)
        self.setVisible(bool(self.items))

    def clear(self) -> None:
        for c in self.items:
            self._remove(c)
        self.items.clear()
        self.list.clear()
        self._next = 1
        self.setVisible(False)

    def _remove(self, c: Caliper) -> None:
        self.view.removeItem(c.label)
        self.view.removeItem(c)

    def _row_changed(self, row: int) -> None:
        for i, c in enumerate(self.items):
            c.set_selected(i == row)

    def texts(self) -> list[str]:
        return [c.text for c in self.items]
