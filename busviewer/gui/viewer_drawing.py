"""The image viewer's mouse modes: navigate (pan/zoom), ``roi`` (a left drag draws a rectangle
for the ROI controller) and ``caliper`` (a left drag draws a new measuring line), with the view
box that turns left drags into drawing and right/middle drags into window/level, and the
Caliper and Draw ROI buttons that switch the modes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QToolButton

from busviewer.gui.calipers import Caliper

if TYPE_CHECKING:
    from busviewer.gui.viewer import ImageViewer

MODE_NAVIGATE, MODE_ROI, MODE_CALIPER = "navigate", "roi", "caliper"


class DrawViewBox(pg.ViewBox):
    """A view box whose left drag draws (ROI / caliper) instead of panning in those modes."""

    sigDraw = Signal(object, object, bool)  # start QPointF, current QPointF, finished
    sigWindowLevel = Signal(float, float, bool, bool)  # screen dx, dy from the press, start, finished

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode = MODE_NAVIGATE

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:
        if ev.button() in (Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton):
            ev.accept()
            d = ev.screenPos() - ev.buttonDownScreenPos()
            self.sigWindowLevel.emit(d.x(), d.y(), bool(ev.isStart()), bool(ev.isFinish()))
            return
        if self.mode != MODE_NAVIGATE and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            start = self.mapSceneToView(ev.buttonDownScenePos())
            pos = self.mapSceneToView(ev.scenePos())
            self.sigDraw.emit(start, pos, bool(ev.isFinish()))
            return
        super().mouseDragEvent(ev, axis)


class DrawingTools:
    """The viewer's Caliper and Draw ROI buttons, its mouse mode, and the drags of the drawing
    modes: a dashed rectangle that becomes ``roiDrawn``, or a caliper that follows the drag."""

    def __init__(self, viewer: ImageViewer) -> None:
        self.viewer = viewer
        self._drag_rect: QGraphicsRectItem | None = None
        self._drawing: tuple[Any, Caliper] | None = None  # (drag start, the caliper it draws)
        self.caliper_button = QToolButton(viewer)
        self.caliper_button.setText("Caliper")
        self.caliper_button.setCheckable(True)
        self.caliper_button.setToolTip(
            "Drag on the image to add a measurement (mm where the file is calibrated); "
            "while on, the end points can be moved"
        )
        self.caliper_button.toggled.connect(lambda on: viewer.set_mode(MODE_CALIPER if on else MODE_NAVIGATE))
        self.roi_button = QToolButton(viewer)
        self.roi_button.setText("Draw ROI")
        self.roi_button.setCheckable(True)
        self.roi_button.setToolTip("Drag on the image to draw a lesion rectangle (saved at once)")
        self.roi_button.toggled.connect(lambda on: viewer.set_mode(MODE_ROI if on else MODE_NAVIGATE))

    def set_mode(self, mode: str) -> None:
        """Switch the mouse mode: buttons, caliper handles (movable in caliper mode), cursor."""
        v = self.viewer
        v.view.mode = mode
        for button, m in ((self.caliper_button, MODE_CALIPER), (self.roi_button, MODE_ROI)):
            button.blockSignals(True)
            button.setChecked(mode == m)
            button.blockSignals(False)
        v.calipers.set_locked(mode != MODE_CALIPER)
        cursor = Qt.CursorShape.ArrowCursor if mode == MODE_NAVIGATE else Qt.CursorShape.CrossCursor
        v.graphics.viewport().setCursor(cursor)
        v.modeChanged.emit(mode)

    def forget_drag(self) -> None:
        """The calipers were cleared: a drag in progress starts a new one."""
        self._drawing = None

    def on_draw(self, start: QPointF, pos: QPointF, finished: bool) -> None:
        """A left drag in a drawing mode (``DrawViewBox.sigDraw``), clamped to the image."""
        v = self.viewer
        if v.image is None:
            return
        rect = v.image_rect()
        sx, sy = _clamp(start.x(), 0, rect.width()), _clamp(start.y(), 0, rect.height())
        px, py = _clamp(pos.x(), 0, rect.width()), _clamp(pos.y(), 0, rect.height())
        if v.view.mode == MODE_ROI:
            if self._drag_rect is None:
                self._drag_rect = QGraphicsRectItem()
                pen = QPen(QColor("#4fc3f7"))
                pen.setCosmetic(True)
                pen.setStyle(Qt.PenStyle.DashLine)
                pen.setWidth(2)
                self._drag_rect.setPen(pen)
                self._drag_rect.setZValue(20)
                v.view.addItem(self._drag_rect)
            self._drag_rect.setRect(QRectF(QPointF(sx, sy), QPointF(px, py)).normalized())
            if finished:
                v.view.removeItem(self._drag_rect)
                self._drag_rect = None
                box = (min(sx, px), min(sy, py), max(sx, px), max(sy, py))
                if box[2] - box[0] >= 4 and box[3] - box[1] >= 4:
                    v.roiDrawn.emit(box)
                v.set_mode(MODE_NAVIGATE)
        elif v.view.mode == MODE_CALIPER:
            key = (start.x(), start.y())
            if self._drawing is not None and self._drawing[0] == key and self._drawing[1] in v.calipers.items:
                v.calipers.move(self._drawing[1], (sx, sy), (px, py))
            else:
                self._drawing = (key, v.calipers.add((sx, sy), (px, py)))
            if finished:
                self._drawing = None


def _clamp(v: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, v))
