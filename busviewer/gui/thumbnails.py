"""Thumbnails of the open patient's images (decoded in a worker, shown as they arrive)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QWidget

from busviewer.core.store import ImageRecord

THUMB = 112
ID_ROLE = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class Thumbnail:
    image_id: int
    pixels: np.ndarray | None  # (h, w, 3) uint8, already downscaled
    error: str | None = None


def make_thumbnail(frame: np.ndarray, size: int = THUMB) -> np.ndarray:
    """Downscale one (H, W, 3) uint8 frame to fit ``size`` (pure numpy/PIL, worker side)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(frame))
    img.thumbnail((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img.convert("RGB"))


def array_to_qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class ThumbnailStrip(QListWidget):
    """A horizontal strip of image thumbnails; emits the image id that was picked."""

    imageSelected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("thumbnailStrip")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setGridSize(QSize(THUMB + 18, THUMB + 40))
        self.setFixedHeight(THUMB + 64)
        self.setSpacing(2)
        self.setWordWrap(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # arrows belong to the shortcuts
        self._records: dict[int, ImageRecord] = {}
        self._ai: dict[int, str] = {}
        self._pixmaps: dict[int, QPixmap] = {}
        self.currentItemChanged.connect(self._changed)

    def set_images(self, records: Sequence[ImageRecord]) -> None:
        self.blockSignals(True)
        self.clear()
        self._records = {r.id: r for r in records}
        self._ai.clear()
        self._pixmaps.clear()
        for i, rec in enumerate(records, start=1):
            item = QListWidgetItem(_placeholder(), self._caption(i, rec))
            item.setData(ID_ROLE, rec.id)
            item.setToolTip(_tooltip(rec))
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            self.addItem(item)
        self.blockSignals(False)

    def _caption(self, number: int, rec: ImageRecord) -> str:
        label = rec.label.label if rec.label else "unlabelled"
        cine = f" ▶{rec.frame_count}" if rec.frame_count > 1 else ""
        ai = self._ai.get(rec.id)
        return f"{number}{cine} · {label}" + (f"\nAI {ai}" if ai else "")

    def set_thumbnail(self, thumb: Thumbnail) -> None:
        item = self._item(thumb.image_id)
        if item is None:
            return
        if thumb.pixels is not None:
            pix = QPixmap.fromImage(array_to_qimage(thumb.pixels))
            self._pixmaps[thumb.image_id] = pix
            item.setIcon(QIcon(_framed(pix, self._records.get(thumb.image_id))))
        else:
            item.setIcon(QIcon(_placeholder(broken=True)))
            item.setToolTip(f"{item.toolTip()}\n\nCannot read: {thumb.error}")

    def update_record(self, rec: ImageRecord) -> None:
        self._records[rec.id] = rec
        self._refresh(rec.id)

    def set_ai(self, image_labels: dict[int, str]) -> None:
        """Short AI text per image (e.g. "M 0.82"), shown under the thumbnail."""
        self._ai = dict(image_labels)
        for image_id in self._records:
            self._refresh(image_id)

    def _refresh(self, image_id: int) -> None:
        item = self._item(image_id)
        rec = self._records.get(image_id)
        if item is None or rec is None:
            return
        item.setText(self._caption(self.row(item) + 1, rec))
        item.setToolTip(_tooltip(rec))
        if image_id in self._pixmaps:
            item.setIcon(QIcon(_framed(self._pixmaps[image_id], rec)))

    def select_image(self, image_id: int) -> None:
        item = self._item(image_id)
        if item is not None and self.currentItem() is not item:
            self.setCurrentItem(item)
            self.scrollToItem(item)

    def image_ids(self) -> list[int]:
        return [self.item(i).data(ID_ROLE) for i in range(self.count())]

    def _item(self, image_id: int) -> QListWidgetItem | None:
        for i in range(self.count()):
            it = self.item(i)
            if it.data(ID_ROLE) == image_id:
                return it
        return None

    def _changed(self, current: QListWidgetItem | None, _prev: QListWidgetItem | None) -> None:
        if current is not None:
            self.imageSelected.emit(int(current.data(ID_ROLE)))


def _tooltip(rec: ImageRecord) -> str:
    label = rec.label
    parts = [
        rec.name,
        f"{rec.columns}×{rec.rows}" + (f", {rec.frame_count} frames" if rec.frame_count > 1 else ""),
        f"label: {label.label} ({label.source})" if label else "label: none",
    ]
    return "\n".join(parts)


def _placeholder(broken: bool = False) -> QPixmap:
    pix = QPixmap(THUMB, THUMB)
    pix.fill(QColor("#202326"))
    p = QPainter(pix)
    p.setPen(QColor("#ff8a80" if broken else "#6b7075"))
    p.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter, "cannot read" if broken else "loading…")
    p.end()
    return pix


LABEL_FRAME = {"benign": QColor("#4caf50"), "malignant": QColor("#e53935"), "normal": QColor("#9e9e9e")}


def _framed(pix: QPixmap, rec: ImageRecord | None) -> QPixmap:
    """The thumbnail centred on a square with a coloured frame for its label."""
    out = QPixmap(THUMB, THUMB)
    out.fill(QColor("#101214"))
    p = QPainter(out)
    p.drawPixmap((THUMB - pix.width()) // 2, (THUMB - pix.height()) // 2, pix)
    if rec is not None and rec.label is not None and rec.label.source != "import":
        p.setPen(QPen(LABEL_FRAME.get(rec.label.label, QColor("#9e9e9e")), 4))
        p.drawRect(2, 2, THUMB - 4, THUMB - 4)
    p.end()
    return out
