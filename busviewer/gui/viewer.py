"""The image viewer: zoom/pan, window/level, fit and 1:1, cine, cursor read-out, calipers.

Built on a pyqtgraph :class:`ViewBox` with one :class:`ImageItem` for the frame and one
for the Grad-CAM overlay. The view box has three mouse modes: navigate (pan/zoom),
``roi`` (drag draws a rectangle, handed to the ROI controller) and ``caliper`` (drag
draws a new measuring line). In every mode a right or middle drag sets window/level
(horizontal: window, vertical: level), which is kept per image until the patient changes.
The pieces: ``viewer_drawing`` (mouse modes, ROI/caliper drags), ``viewer_cine`` (cine bar),
``viewer_zoom`` (Fit, 1:1, zoom read-out), ``viewer_readout`` (info line and cursor texts),
``window_level`` and ``calipers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from busviewer.gui.calipers import Caliper, CaliperTool, measure, region_at
from busviewer.gui.cam_overlay import cam_lut
from busviewer.gui.viewer_cine import CineControls
from busviewer.gui.viewer_drawing import MODE_CALIPER, MODE_NAVIGATE, MODE_ROI, DrawingTools, DrawViewBox
from busviewer.gui.viewer_readout import info_text, pixel_text
from busviewer.gui.viewer_zoom import ZoomControls
from busviewer.gui.window_level import DEFAULT_WL, WL_PRESETS, ElidedLabel, WindowLevel

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

DEFAULT_FRAME_MS = 40.0
__all__ = [
    "DEFAULT_WL",
    "MODE_CALIPER",
    "MODE_NAVIGATE",
    "MODE_ROI",
    "WL_PRESETS",
    "ElidedLabel",
    "ImageViewer",
    "measure",
    "region_at",
]


# --------------------------------------------------------------------- viewer
class ImageViewer(QWidget):
    """Shows one decoded image (all frames) with tools; knows nothing of the store."""

    cursorText = Signal(str)
    roiDrawn = Signal(object)  # (x0, y0, x1, y1) image coordinates
    frameChanged = Signal(int)
    measured = Signal(str)
    modeChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageViewer")
        self._image: Any = None  # DecodedImage
        self._regions: Sequence[Any] = ()
        self._spacing: tuple[float, float] | None = None
        self._frame = 0
        self._title = ""
        self._cam: np.ndarray | None = None

        # graphics
        self.graphics = pg.GraphicsView(self)
        self.graphics.setBackground("#000000")
        self.view = DrawViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setDefaultPadding(0.01)
        self.graphics.setCentralItem(self.view)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.image_item.setZValue(0)
        self.view.addItem(self.image_item)
        self.cam_item = pg.ImageItem(axisOrder="row-major")
        self.cam_item.setZValue(5)
        self.cam_item.setLookupTable(cam_lut())
        self.cam_item.setVisible(False)
        self.view.addItem(self.cam_item)
        self.view.sigWindowLevel.connect(lambda dx, dy, start, _end: self.wl.drag(dx, dy, start))
        self.view.sigRangeChanged.connect(self._update_zoom)
        self.view.sigResized.connect(self._update_zoom)
        self.calipers = CaliperTool(self.view, self.graphics)  # floats in a corner: no layout jump
        self.calipers.measured.connect(self.measured)
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.message = QLabel(self.graphics)
        self.message.setObjectName("viewerMessage")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setText("Open a patient from the worklist")

        # tool bar
        z = self.zoom = ZoomControls(self)  # Fit, 1:1 and the zoom read-out
        self.fit_button, self.one_button, self.zoom_label = z.fit_button, z.one_button, z.zoom_label
        self.wl = WindowLevel(self)
        self.wl.changed.connect(self._apply_levels)
        self.window_slider, self.level_slider = self.wl.window_slider, self.wl.level_slider
        self.wl_label = self.wl.label
        self.preset, self.reset_button = self.wl.preset, self.wl.reset_button
        self.drawing = DrawingTools(self)  # the Caliper and Draw ROI buttons, the drags they turn on
        self.view.sigDraw.connect(self.drawing.on_draw)
        self.caliper_button, self.roi_button = self.drawing.caliper_button, self.drawing.roi_button

        tools = QHBoxLayout()
        tools.setContentsMargins(0, 0, 0, 0)
        for w in (self.fit_button, self.one_button, self.zoom_label):
            tools.addWidget(w)
        tools.addSpacing(6)
        for w, stretch in zip(self.wl.sliders, (0, 1, 0, 1), strict=True):
            tools.addWidget(w, stretch)
        tools.addWidget(self.wl_label)
        tools.addWidget(self.preset)
        tools.addWidget(self.reset_button)
        tools.addSpacing(6)
        tools.addWidget(self.caliper_button)
        tools.addWidget(self.roi_button)

        # cine bar
        c = self.cine = CineControls(self)  # play/pause, frame slider, timer
        self.play_button, self.frame_slider, self.frame_label = c.play_button, c.frame_slider, c.frame_label
        self.cine_bar, self.timer = c.bar, c.timer

        # info line
        self.info = ElidedLabel(self)
        self.info.setObjectName("viewerInfo")
        self.cursor_label = ElidedLabel(self)
        self.cursor_label.setObjectName("viewerInfo")
        self.cursor_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        info = QHBoxLayout()
        info.setContentsMargins(2, 0, 2, 0)
        info.addWidget(self.info, 3)
        info.addWidget(self.cursor_label, 2)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        lay.addLayout(tools)
        lay.addWidget(self.graphics, 1)
        lay.addWidget(self.cine_bar)
        lay.addLayout(info)
        self._apply_levels(*self.wl.levels())

    def set_compact(self, on: bool) -> None:
        """Narrow tool bar for the 1x2 layout: W/L by drag and presets (values in their tooltip)."""
        for w in (*self.wl.sliders, self.reset_button, self.wl_label, self.roi_button):  # ROI panel: Draw ROI
            w.setVisible(not on)

    # --------------------------------------------------------------- images
    @property
    def image(self) -> Any:
        return self._image

    @property
    def frame(self) -> int:
        return self._frame

    def clear(self, message: str = "") -> None:
        self.stop()
        self._image = None
        self._cam = None
        self.image_item.clear()
        self.cam_item.clear()
        self.cam_item.setVisible(False)
        self.clear_caliper()
        self.cine_bar.setVisible(False)
        self.info.set_full_text("")
        self.cursor_label.set_full_text("")
        self._update_zoom()
        self.show_message(message)

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setProperty("error", error)
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)
        self.message.setText(text)
        self.message.setVisible(bool(text))
        self._place_message()

    def set_image(
        self,
        image: Any,
        title: str = "",
        regions: Sequence[Any] | None = None,
        pixel_spacing_mm: tuple[float, float] | None = None,
        keep_view: bool = False,
        key: Any = None,
    ) -> None:
        """Show a decoded image (``.frames`` (F, H, W, 3) uint8) from frame 0. ``key`` (the
        image id) keeps window/level per image: shown again, it comes back as it was left."""
        self.stop()
        self.clear_caliper()
        self.cursor_label.set_full_text("")
        self.wl.use_key(key)
        self._image = image
        self._title = title
        self._regions = tuple(regions if regions is not None else (getattr(image, "regions", None) or ()))
        self._spacing = pixel_spacing_mm if pixel_spacing_mm is not None else getattr(image, "pixel_spacing_mm", None)
        self.calipers.set_calibration(self._regions, self._spacing)
        self._cam = None
        self.cam_item.setVisible(False)
        self.cine.start_image(int(image.frames.shape[0]))
        self._frame = 0
        self.show_message("")
        self._show_frame()
        if not keep_view:
            self.fit()

    def frame_count(self) -> int:
        return 0 if self._image is None else int(self._image.frames.shape[0])

    def frame_interval_ms(self) -> int:
        ft = getattr(self._image, "frame_time_ms", None) if self._image is not None else None
        return max(5, round(ft if ft and ft > 0 else DEFAULT_FRAME_MS))

    def set_frame(self, index: int) -> None:
        if self._image is None:
            return
        index = int(index) % max(1, self.frame_count())
        if index == self._frame and self.image_item.image is not None:
            return
        self._frame = index
        self.cine.show_position(index)
        self._show_frame()
        self.frameChanged.emit(index)

    def _show_frame(self) -> None:
        frames = self._image.frames
        self.image_item.setImage(frames[self._frame], autoLevels=False, levels=self.wl.levels())
        self.cine.show_frame_text(self._frame, frames.shape[0])
        self.info.set_full_text(info_text(self._title, frames, self._regions, self._spacing))

    # ----------------------------------------------------------------- cine
    def play(self) -> None:
        self.cine.play()

    def stop(self) -> None:
        self.cine.stop()

    def toggle_play(self) -> None:
        self.cine.toggle_play()

    def is_playing(self) -> bool:
        return self.cine.is_playing()

    # ---------------------------------------------------------- window/level
    def _apply_levels(self, lo: float, hi: float) -> None:
        if self.image_item.image is not None:
            self.image_item.setLevels((lo, hi))

    def window_level(self) -> tuple[int, int]:
        return self.wl.value()

    def set_window_level(self, window: int, level: int) -> None:
        self.wl.set_value(window, level)

    def reset_levels(self) -> None:
        self.wl.reset()

    def forget_levels(self) -> None:
        """Another patient: every image starts again from the stored grey levels."""
        self.wl.forget()

    # ------------------------------------------------------------ zoom/pan
    def image_rect(self) -> QRectF:
        if self._image is None:
            return QRectF()
        h, w = self._image.frames.shape[1:3]
        return QRectF(0, 0, w, h)

    def fit(self) -> None:
        self.zoom.fit()

    def one_to_one(self) -> None:
        self.zoom.one_to_one()

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel."""
        return self.zoom.zoom_factor()

    def _update_zoom(self, *_: Any) -> None:
        self.zoom.update_label()

    # ------------------------------------------------------------- overlays
    def set_cam(self, cam: np.ndarray | None, opacity: float = 0.5) -> None:
        """Show a (H, W) [0, 1] map over the image (resized to the image by the item rect)."""
        self._cam = cam
        if cam is None or self._image is None:
            self.cam_item.setVisible(False)
            return
        self.cam_item.setImage(np.asarray(cam, dtype=np.float32), autoLevels=False, levels=(0.0, 1.0))
        self.cam_item.setRect(self.image_rect())
        self.cam_item.setOpacity(float(opacity))
        self.cam_item.setVisible(True)

    def set_cam_opacity(self, opacity: float) -> None:
        self.cam_item.setOpacity(float(opacity))

    def has_cam(self) -> bool:
        return self.cam_item.isVisible()

    # ---------------------------------------------------------- mouse modes
    def set_mode(self, mode: str) -> None:
        """``MODE_NAVIGATE``, ``MODE_ROI`` or ``MODE_CALIPER`` (see :class:`DrawingTools`)."""
        self.drawing.set_mode(mode)

    def set_caliper(self, p0: tuple[float, float], p1: tuple[float, float]) -> str:
        """Add a caliper; returns its measurement text."""
        return self.calipers.add(p0, p1).text

    @property
    def _caliper(self) -> Caliper | None:
        """The newest caliper (None without one)."""
        return self.calipers.items[-1] if self.calipers.items else None

    @property
    def caliper_text(self) -> str:
        c = self._caliper
        return c.text if c is not None else ""

    def clear_caliper(self) -> None:
        had = bool(self.calipers.items)
        self.calipers.clear()
        self.drawing.forget_drag()
        if had:
            self.measured.emit("")  # a measurement of the previous image is no longer shown

    # ---------------------------------------------------------------- cursor
    def _mouse_moved(self, scene_pos: QPointF) -> None:
        if self._image is None or not self.view.sceneBoundingRect().contains(scene_pos):
            return
        p = self.view.mapSceneToView(scene_pos)
        text = self.describe_point(p.x(), p.y())
        self.cursorText.emit(text)
        self.cursor_label.set_full_text(text)

    def describe_point(self, x: float, y: float) -> str:
        """Cursor read-out: pixel coordinates, grey value, and the physical position when known."""
        if self._image is None:
            return ""
        return pixel_text(self._image.frames, self._frame, self._regions, self._spacing, x, y)

    # ----------------------------------------------------------------- misc
    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._place_message()

    def _place_message(self) -> None:
        r = self.graphics.rect()
        self.message.setGeometry(r.adjusted(40, 40, -40, -40))
        h = self.calipers.sizeHint().height()
        self.calipers.setGeometry(6, max(0, r.height() - h - 6), min(330, max(120, r.width() - 12)), h)

    def hideEvent(self, event: Any) -> None:
        self.stop()
        super().hideEvent(event)
