"""Lesion crops: rectangle ROIs on the viewer, saved to the store as they change.

ROIs are stored non-destructively (a box in image coordinates; the image file is never
touched). Several ROIs per image; each can be classified (in a worker, by the main
window) and deleted (a soft delete in the store, audited).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from busviewer.core.store import RoiRecord, Store, StoreError
from busviewer.gui.roi_suggestion import SuggestionBar
from busviewer.gui.viewer import ImageViewer

ROI_COLOUR = QColor("#4fc3f7")
SELECTED_COLOUR = QColor("#00e5ff")
ID_ROLE = Qt.ItemDataRole.UserRole + 1
ARCH_SHORT = {"ensemble": "Ens", "vgg16": "VGG"}


class LesionROI(pg.ROI):
    """A rectangle with a scale handle on every corner and side, snapped to whole pixels."""

    def __init__(self, record: RoiRecord, bounds: QRectF) -> None:
        super().__init__(
            (record.x0, record.y0),
            (record.x1 - record.x0, record.y1 - record.y0),
            pen=pg.mkPen(ROI_COLOUR, width=2),
            hoverPen=pg.mkPen(SELECTED_COLOUR, width=3),
            handlePen=pg.mkPen(ROI_COLOUR),
            maxBounds=bounds,
            snapSize=1.0,
            translateSnap=True,
            scaleSnap=True,
            rotatable=False,
            removable=False,
        )
        self.roi_id = record.id
        for corner, opposite in (((0, 0), (1, 1)), ((1, 1), (0, 0)), ((1, 0), (0, 1)), ((0, 1), (1, 0))):
            self.addScaleHandle(corner, opposite)
        for side, opposite in (((0.5, 0), (0.5, 1)), ((0.5, 1), (0.5, 0)), ((0, 0.5), (1, 0.5)), ((1, 0.5), (0, 0.5))):
            self.addScaleHandle(side, opposite)
        self.caption = pg.TextItem("", color="#000000", fill=pg.mkBrush(79, 195, 247, 220), anchor=(0, 1))
        self.caption.setParentItem(self)
        self.caption.setPos(0, 0)
        self.setZValue(15)

    def box(self) -> tuple[int, int, int, int]:
        pos, size = self.pos(), self.size()
        x0, y0 = round(pos.x()), round(pos.y())
        return (x0, y0, x0 + round(size.x()), y0 + round(size.y()))

    def set_selected(self, on: bool) -> None:
        self.setPen(pg.mkPen(SELECTED_COLOUR if on else ROI_COLOUR, width=3 if on else 2))


class RoiPanel(QWidget):
    """The list of the current image's ROIs with Draw / Classify / Delete, and the items on the viewer."""

    classifyRequested = Signal(int)  # roi id
    roisChanged = Signal(int)  # image id
    errorOccurred = Signal(str, str)  # title, message

    def __init__(self, store: Store, viewer: ImageViewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.viewer = viewer
        self.image_id: int | None = None
        self.frame = 0
        self.items: dict[int, LesionROI] = {}
        self.results: dict[int, dict[str, Any]] = {}
        self.pending: set[int] = set()
        self.classify_available: Callable[[], bool] = lambda: True

        self.list = QListWidget(self)
        self.list.setObjectName("roiList")
        self.list.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.list.setWordWrap(True)  # long result lines wrap inside the panel instead of being cut
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.currentItemChanged.connect(self._list_changed)
        self.draw_button = QPushButton("Draw ROI", self)
        self.draw_button.setCheckable(True)
        self.draw_button.setToolTip("Then drag a rectangle around the lesion on the image")
        self.draw_button.toggled.connect(self._draw_toggled)
        self.classify_button = QPushButton("Classify crop", self)
        self.classify_button.setToolTip("Classify the selected crop with the active models")
        self.classify_button.clicked.connect(self._classify)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.setToolTip("Delete the selected ROI (kept in the audit log)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.hint = QLabel("Draw a rectangle around the lesion; it is saved at once and can be moved or resized.", self)
        self.hint.setObjectName("dimLabel")
        self.hint.setWordWrap(True)
        self.suggestion = SuggestionBar(store, viewer, self)  # the Grad-CAM suggestion: Accept / Reject
        self.suggestion.accepted.connect(self._suggestion_accepted)
        self.suggestion.errorOccurred.connect(self.errorOccurred)
        buttons = QHBoxLayout()
        buttons.addWidget(self.draw_button)
        buttons.addWidget(self.classify_button)
        buttons.addWidget(self.delete_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(buttons)
        lay.addWidget(self.suggestion)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.hint)
        viewer.roiDrawn.connect(self.add_roi)
        viewer.modeChanged.connect(self._mode_changed)
        self._sync_buttons()

    # ------------------------------------------------------------- images
    def set_image(self, image_id: int | None, frame: int = 0) -> None:
        self._clear_items()
        self.suggestion.set_image(image_id, frame)
        self.image_id = image_id
        self.frame = frame
        if image_id is None:
            self._sync_buttons()
            return
        try:
            records = self.store.rois(image_id)
        except StoreError as exc:
            self.errorOccurred.emit("Cannot read ROIs", str(exc))
            records = []
        for rec in records:
            self._add_item(rec)
        self._sync_buttons()

    def _clear_items(self) -> None:
        for item in self.items.values():
            self.viewer.view.removeItem(item)
        self.items.clear()
        self.list.clear()

    def _add_item(self, rec: RoiRecord) -> LesionROI:
        bounds = self.viewer.image_rect()
        if bounds.isEmpty():
            bounds = QRectF(0, 0, 10**6, 10**6)
        item = LesionROI(rec, bounds)
        item.sigRegionChangeFinished.connect(self._item_moved)
        item.sigClicked.connect(self._item_clicked)
        item.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        self.viewer.view.addItem(item)
        self.items[rec.id] = item
        row = QListWidgetItem(self._row_text(rec.id, rec.box))
        row.setToolTip(row.text())
        row.setData(ID_ROLE, rec.id)
        self.list.addItem(row)
        self._caption(rec.id)
        return item

    # ---------------------------------------------------------------- edits
    def add_roi(self, box: Sequence[float]) -> RoiRecord | None:
        if self.image_id is None:
            return None
        try:
            rec = self.store.add_roi(self.image_id, tuple(int(round(v)) for v in box), frame=self.viewer.frame)  # type: ignore[arg-type]
        except (StoreError, ValueError, KeyError) as exc:
            self.errorOccurred.emit("ROI not saved", str(exc))
            return None
        self._add_item(rec)
        self.select(rec.id)
        self.draw_button.setChecked(False)
        self.roisChanged.emit(self.image_id)
        return rec

    def _suggestion_accepted(self, rec: RoiRecord) -> None:
        """An accepted suggestion is the reader's ROI now: list it and classify the crop."""
        self._add_item(rec)
        self.select(rec.id)
        self.roisChanged.emit(rec.image_id)
        if self.classify_available():
            self._classify()

    def _item_moved(self, item: LesionROI) -> None:
        try:
            rec = self.store.update_roi(item.roi_id, item.box())
        except (StoreError, KeyError, ValueError) as exc:
            self.errorOccurred.emit("ROI change not saved", str(exc))
            return
        self.results.pop(rec.id, None)  # the old result was for the old crop
        self._update_row(rec.id, rec.box)
        self.select(rec.id)
        if self.image_id is not None:
            self.roisChanged.emit(self.image_id)

    def delete_selected(self) -> None:
        roi_id = self.selected_id()
        if roi_id is None:
            return
        try:
            self.store.delete_roi(roi_id)
        except (StoreError, KeyError) as exc:
            self.errorOccurred.emit("ROI not deleted", str(exc))
            return
        item = self.items.pop(roi_id)
        self.viewer.view.removeItem(item)
        for i in range(self.list.count()):
            if self.list.item(i).data(ID_ROLE) == roi_id:
                self.list.takeItem(i)
                break
        self.results.pop(roi_id, None)
        self._sync_buttons()
        if self.image_id is not None:
            self.roisChanged.emit(self.image_id)

    # ------------------------------------------------------------ selection
    def selected_id(self) -> int | None:
        row = self.list.currentItem()
        return int(row.data(ID_ROLE)) if row is not None else None

    def select(self, roi_id: int) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(ID_ROLE) == roi_id:
                self.list.setCurrentRow(i)
                break

    def _list_changed(self, current: QListWidgetItem | None, _prev: Any) -> None:
        sel = int(current.data(ID_ROLE)) if current is not None else None
        for roi_id, item in self.items.items():
            item.set_selected(roi_id == sel)
        self._sync_buttons()

    def _item_clicked(self, item: LesionROI, _ev: Any = None) -> None:
        self.select(item.roi_id)

    # -------------------------------------------------------------- results
    def _classify(self) -> None:
        roi_id = self.selected_id()
        if roi_id is not None:
            self.pending.add(roi_id)
            self._update_row(roi_id)
            self.classifyRequested.emit(roi_id)

    def set_result(self, roi_id: int, predictions: dict[str, Any] | None, error: str | None = None) -> None:
        self.pending.discard(roi_id)
        if predictions is not None:
            self.results[roi_id] = predictions
        elif error:
            self.results[roi_id] = {"error": error}
        self._update_row(roi_id)

    def _row_text(self, roi_id: int, box: tuple[int, int, int, int] | None = None) -> str:
        if box is None:
            item = self.items.get(roi_id)
            box = item.box() if item else (0, 0, 0, 0)
        x0, y0, x1, y1 = box
        text = f"ROI {roi_id}  ·  {x1 - x0}×{y1 - y0} px at ({x0}, {y0})"
        if roi_id in self.pending:
            return text + "\n   classifying…"
        res = self.results.get(roi_id)
        if res:
            if "error" in res:
                return text + f"\n   {res['error']}"
            parts = [
                f"{ARCH_SHORT.get(arch, arch)} {p.label} {p.malignant_probability:.2f}"
                for arch, p in sorted(res.items())
            ]
            text += "\n   " + "  ·  ".join(parts) + "  (p malignant)"
        return text

    def _update_row(self, roi_id: int, box: tuple[int, int, int, int] | None = None) -> None:
        for i in range(self.list.count()):
            row = self.list.item(i)
            if row.data(ID_ROLE) == roi_id:
                row.setText(self._row_text(roi_id, box))
                row.setToolTip(row.text())
        self._caption(roi_id)
        self._sync_buttons()

    def _caption(self, roi_id: int) -> None:
        item = self.items.get(roi_id)
        if item is None:
            return
        res = self.results.get(roi_id)
        text = f"ROI {roi_id}"
        if res and "error" not in res:
            text += "  " + "  ".join(
                f"{ARCH_SHORT.get(a, a)} {'M' if p.label == 'malignant' else 'B'} {p.malignant_probability:.2f}"
                for a, p in sorted(res.items())
            )
        elif roi_id in self.pending:
            text += "  …"
        item.caption.setText(text)

    # ------------------------------------------------------------------ misc
    def _draw_toggled(self, on: bool) -> None:
        from busviewer.gui.viewer import MODE_NAVIGATE, MODE_ROI

        self.viewer.set_mode(MODE_ROI if on else MODE_NAVIGATE)

    def _mode_changed(self, mode: str) -> None:
        self.draw_button.blockSignals(True)
        self.draw_button.setChecked(mode == "roi")
        self.draw_button.blockSignals(False)

    def _sync_buttons(self) -> None:
        has = self.selected_id() is not None
        self.draw_button.setEnabled(self.image_id is not None)
        self.classify_button.setEnabled(has and self.classify_available() and self.selected_id() not in self.pending)
        self.delete_button.setEnabled(has)

    def sync(self) -> None:
        self._sync_buttons()
