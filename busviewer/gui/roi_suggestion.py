"""The suggested lesion ROI on the viewer: a dashed rectangle with Accept / Reject.

The main window computes a :class:`~busviewer.ai.roi_suggest.RoiSuggestion` in an AI
worker (the active model's Grad-CAM and the box around its hottest region) and hands it
to :class:`SuggestionBar`. The reader may move or resize the dashed rectangle; Accept
stores it as the reader's ROI through the store (audited ``add_roi`` plus
``accept_suggested_roi``) and the ROI panel classifies the crop; Reject logs the
rejection and no suggestion is made again for that image in this session.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSettings, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from busviewer.core.store import Store, StoreError
from busviewer.gui.viewer import ImageViewer

SUGGEST_COLOUR = QColor("#ffd54f")
SETTINGS_SUGGEST = "roi/suggest"
ARCH_SHORT = {"ensemble": "Ens", "vgg16": "VGG"}


class SuggestedROI(pg.ROI):
    """A dashed, movable and resizable rectangle (whole pixels) for the suggestion."""

    def __init__(self, box: tuple[int, int, int, int], bounds: QRectF, caption: str) -> None:
        x0, y0, x1, y1 = box
        pen = pg.mkPen(SUGGEST_COLOUR, width=2, style=Qt.PenStyle.DashLine)
        super().__init__(
            (x0, y0),
            (x1 - x0, y1 - y0),
            pen=pen,
            hoverPen=pg.mkPen("#ffffff", width=2, style=Qt.PenStyle.DashLine),
            handlePen=pg.mkPen(SUGGEST_COLOUR),
            maxBounds=bounds,
            snapSize=1.0,
            translateSnap=True,
            scaleSnap=True,
            rotatable=False,
            removable=False,
        )
        for corner, opposite in (((0, 0), (1, 1)), ((1, 1), (0, 0)), ((1, 0), (0, 1)), ((0, 1), (1, 0))):
            self.addScaleHandle(corner, opposite)
        self.caption = pg.TextItem(caption, color="#000000", fill=pg.mkBrush(255, 213, 79, 220), anchor=(0, 1))
        self.caption.setParentItem(self)
        self.caption.setPos(0, 0)
        self.setZValue(14)

    def box(self) -> tuple[int, int, int, int]:
        pos, size = self.pos(), self.size()
        x0, y0 = round(pos.x()), round(pos.y())
        return (x0, y0, x0 + round(size.x()), y0 + round(size.y()))


class SuggestionBar(QWidget):
    """Accept / Reject for the current image's suggested ROI, and the on/off setting."""

    accepted = Signal(object)  # RoiRecord of the stored ROI
    wanted = Signal()  # suggestions were switched on: ask for one
    errorOccurred = Signal(str, str)

    def __init__(self, store: Store, viewer: ImageViewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.viewer = viewer
        self.image_id: int | None = None
        self.frame = 0
        self.suggestion: Any = None
        self.item: SuggestedROI | None = None
        self.pending: set[tuple[int, int]] = set()
        self.done: set[tuple[int, int]] = set()  # asked (shown, rejected, accepted or none found)

        self.enabled = QCheckBox("Suggest an ROI from Grad-CAM", self)
        self.enabled.setToolTip(
            "Propose a lesion rectangle from the active model's Grad-CAM when an image without ROIs is shown"
        )
        self.enabled.setChecked(bool(QSettings().value(SETTINGS_SUGGEST, True, type=bool)))
        self.enabled.toggled.connect(self._enabled_toggled)
        self.label = QLabel("", self)  # one line; the details are in its tooltip
        self.label.setObjectName("dimLabel")
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.accept_button = QPushButton("Accept", self)
        self.accept_button.setToolTip("Save the dashed rectangle (as moved) as your ROI and classify the crop")
        self.accept_button.clicked.connect(self.accept)
        self.reject_button = QPushButton("Reject", self)
        self.reject_button.setToolTip("Discard the suggestion (noted in the audit log)")
        self.reject_button.clicked.connect(self.reject)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.accept_button)
        row.addWidget(self.reject_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.enabled)
        lay.addLayout(row)
        self._sync()

    # -------------------------------------------------------------- requests
    def set_image(self, image_id: int | None, frame: int = 0) -> None:
        self.clear()
        self.image_id, self.frame = image_id, frame

    def begin(self, image_id: int, frame: int, has_rois: bool) -> bool:
        """Should a suggestion be computed for this image now? (marks it pending if so)"""
        key = (image_id, frame)
        if (
            not self.enabled.isChecked()
            or has_rois
            or key in self.pending
            or key in self.done
            or image_id != self.image_id
        ):
            return False
        self.pending.add(key)
        self.label.setText("Suggesting an ROI…")
        return True

    def finish(self, image_id: int, frame: int, suggestion: Any, error: BaseException | None = None) -> None:
        """A worker's answer (on the GUI thread)."""
        key = (image_id, frame)
        self.pending.discard(key)
        self.done.add(key)
        if key != (self.image_id, self.frame):
            return
        if error is not None:
            self.label.setText(f"No suggestion: {error}")
        elif suggestion is None:
            self.label.setText("No suggestion: the Grad-CAM map is flat")
        else:
            self.show_suggestion(suggestion)
        self._sync()

    def forget(self) -> None:
        """Forget what was asked (e.g. the active models changed)."""
        self.done.clear()
        self.clear()

    # ----------------------------------------------------------------- display
    def show_suggestion(self, suggestion: Any) -> None:
        self.clear()
        self.suggestion = suggestion
        bounds = self.viewer.image_rect()
        if bounds.isEmpty():
            bounds = QRectF(0, 0, 10**6, 10**6)
        short = ARCH_SHORT.get(suggestion.architecture, suggestion.architecture)
        self.item = SuggestedROI(suggestion.box, bounds, f"Suggested ({short} CAM)")
        self.viewer.view.addItem(self.item)
        x0, y0, x1, y1 = suggestion.box
        self.label.setText(f"Suggested ROI {x1 - x0}×{y1 - y0} px")
        self.label.setToolTip(
            f"At ({x0}, {y0}), from the Grad-CAM of {suggestion.model} (threshold {suggestion.fraction:g} of the "
            f"maximum, margin {suggestion.margin:g}, {suggestion.params_source}). Move or resize "
            "the dashed rectangle if needed, then Accept or Reject."
        )
        self._sync()

    def clear(self) -> None:
        if self.item is not None:
            self.viewer.view.removeItem(self.item)
            self.item = None
        self.suggestion = None
        self.label.setText("")
        self.label.setToolTip("")
        self._sync()

    # ------------------------------------------------------------------ actions
    def accept(self) -> Any:
        """Store the (possibly moved) rectangle as the reader's ROI; emits ``accepted``."""
        from busviewer.ai.roi_suggest import accept_suggestion

        if self.suggestion is None or self.item is None:
            return None
        try:
            rec = accept_suggestion(self.store, self.suggestion, self.item.box())
        except (StoreError, ValueError, KeyError) as exc:
            self.errorOccurred.emit("Suggested ROI not saved", str(exc))
            return None
        self.clear()
        self.accepted.emit(rec)
        return rec

    def reject(self) -> None:
        from busviewer.ai.roi_suggest import reject_suggestion

        if self.suggestion is None:
            return
        try:
            reject_suggestion(self.store, self.suggestion)
        except StoreError as exc:
            self.errorOccurred.emit("Rejection not recorded", str(exc))
        self.clear()

    def _enabled_toggled(self, on: bool) -> None:
        s = QSettings()
        s.setValue(SETTINGS_SUGGEST, bool(on))
        s.sync()
        if on:
            self.wanted.emit()
        else:
            self.clear()

    def _sync(self) -> None:
        has = self.suggestion is not None
        self.accept_button.setVisible(has)
        self.reject_button.setVisible(has)
        self.label.setVisible(bool(self.label.text()))
