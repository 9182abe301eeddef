"""Thumbnails of the open patient's images (decoded in a worker, shown as they arrive),
grouped by study and series, and the patient header (name, study date, laterality, view)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QWidget

from busviewer.core.dicom_views import LATERALITY_TEXT, ViewInfo, display_date, display_name, read_views
from busviewer.core.store import ImageRecord, StudyRecord
from busviewer.gui import workers

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
    headerChanged = Signal(str)  # the patient header line, again once the views are read

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
        self._labels_hidden = False
        self._pixmaps: dict[int, QPixmap] = {}
        self._views: dict[int, ViewInfo] = {}
        self._studies: dict[str, StudyRecord] = {}
        self._patient: tuple[str, str | None] = ("", None)
        self._views_task: workers.Task | None = None
        self.currentItemChanged.connect(self._changed)

    def set_images(
        self,
        records: Sequence[ImageRecord],
        studies: Sequence[StudyRecord] = (),
        patient_key: str = "",
        patient_name: str | None = None,
    ) -> None:
        """Show a patient's images, grouped by study/series (a header tile per group when the
        patient has several series or DICOM study facts); laterality/view are read in a worker."""
        self.blockSignals(True)
        self.clear()
        self._records = {r.id: r for r in records}
        self._ai.clear()
        self._pixmaps.clear()
        self._views = {}
        self._studies = {st.study_uid: st for st in studies}
        self._patient = (patient_key, patient_name)
        groups = {(r.study_uid, r.series_uid) for r in records}
        headed = len(groups) > 1 or any(st.study_date or st.description for st in studies)
        last: tuple[str, str] | None = None
        for i, rec in enumerate(records, start=1):
            if headed and (rec.study_uid, rec.series_uid) != last:
                last = (rec.study_uid, rec.series_uid)
                self.addItem(self._group_item(rec))
            item = QListWidgetItem(_placeholder(), self._caption(i, rec))
            item.setData(ID_ROLE, rec.id)
            item.setToolTip(_tooltip(rec))
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            self.addItem(item)
        self.blockSignals(False)
        self.headerChanged.emit(self.header_text())
        if self._views_task is not None:
            self._views_task.cancel()
        ids = tuple(self._records)
        self._views_task = (
            workers.submit(
                read_views,
                [(r.id, str(r.source_path)) for r in records],
                name="dicom views",
                on_result=lambda v, ids=ids: self._views_read(ids, v),
            )
            if records
            else None
        )

    def _group_item(self, rec: ImageRecord) -> QListWidgetItem:
        study = self._studies.get(rec.study_uid)
        series = next((s for s in (study.series if study else ()) if s[0] == rec.series_uid), None)
        lines = ["Study " + (display_date(study.study_date) if study and study.study_date else "(no date)")]
        if study and study.description:
            lines.append(study.description)
        if series is not None:
            lines.append(
                "Series " + " ".join(p for p in (series[1], series[2]) if p) if (series[1] or series[2]) else "Series"
            )
        item = QListWidgetItem("\n".join(lines))
        item.setFlags(Qt.ItemFlag.NoItemFlags)  # a header: never current, never selected
        item.setToolTip(f"Study {rec.study_uid}\nSeries {rec.series_uid}")
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        item.setForeground(QColor("#9ecbff"))
        return item

    def _views_read(self, ids: tuple[int, ...], views: dict[int, ViewInfo]) -> None:
        if ids != tuple(self._records):  # another patient since
            return
        self._views_task = None
        self._views = dict(views)
        for image_id in self._records:
            self._refresh(image_id)
        self.headerChanged.emit(self.header_text())

    def view_text(self, image_id: int) -> str:
        """ "L · radial" for an image whose header says so, else ""."""
        info = self._views.get(image_id)
        return info.short() if info else ""

    def header_text(self) -> str:
        """ "Patient KEY · Name · study 2011-05-25 · left breast · 3 images"."""
        key, name = self._patient
        if not key:
            return "No patient open"
        dates = sorted({display_date(st.study_date) for st in self._studies.values() if st.study_date})
        sides = sorted({v.laterality for v in self._views.values() if v.laterality})
        n = len(self._records)
        parts = [
            f"Patient {key}",
            display_name(name),
            ("study " + ", ".join(dates)) if dates else "",
            " + ".join(LATERALITY_TEXT[s] for s in sides) + (" breast" if sides else ""),
            f"{n} image{'s' if n != 1 else ''}",
        ]
        return " · ".join(p for p in parts if p)

    def set_labels_hidden(self, hidden: bool) -> None:
        """Hide the images' labels (captions, tooltips, frames): blinded first read, before the call."""
        if hidden != self._labels_hidden:
            self._labels_hidden = hidden
            for image_id in self._records:
                self._refresh(image_id)

    def _caption(self, number: int, rec: ImageRecord) -> str:
        label = "label hidden" if self._labels_hidden else rec.label.label if rec.label else "unlabelled"
        cine = f" ▶{rec.frame_count}" if rec.frame_count > 1 else ""
        view = self.view_text(rec.id)
        ai = self._ai.get(rec.id)
        return f"{number}{cine} · {label}" + (f"\n{view}" if view else "") + (f"\nAI {ai}" if ai else "")

    def set_thumbnail(self, thumb: Thumbnail) -> None:
        item = self._item(thumb.image_id)
        if item is None:
            return
        if thumb.pixels is not None:
            pix = QPixmap.fromImage(array_to_qimage(thumb.pixels))
            self._pixmaps[thumb.image_id] = pix
            item.setIcon(QIcon(_framed(pix, None if self._labels_hidden else self._records.get(thumb.image_id))))
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
        item.setText(self._caption(list(self._records).index(image_id) + 1, rec))
        item.setToolTip(_tooltip(rec, self._labels_hidden))
        if image_id in self._pixmaps:
            item.setIcon(QIcon(_framed(self._pixmaps[image_id], None if self._labels_hidden else rec)))

    def select_image(self, image_id: int) -> None:
        item = self._item(image_id)
        if item is not None and self.currentItem() is not item:
            self.setCurrentItem(item)
            self.scrollToItem(item)

    def image_ids(self) -> list[int]:
        return [i for i in (self.item(r).data(ID_ROLE) for r in range(self.count())) if i is not None]

    def _item(self, image_id: int) -> QListWidgetItem | None:
        for i in range(self.count()):
            it = self.item(i)
            if it.data(ID_ROLE) == image_id:
                return it
        return None

    def _changed(self, current: QListWidgetItem | None, _prev: QListWidgetItem | None) -> None:
        if current is not None and current.data(ID_ROLE) is not None:
            self.imageSelected.emit(int(current.data(ID_ROLE)))


def _tooltip(rec: ImageRecord, label_hidden: bool = False) -> str:
    label = rec.label
    parts = [
        rec.name,
        f"{rec.columns}×{rec.rows}" + (f", {rec.frame_count} frames" if rec.frame_count > 1 else ""),
        "label: hidden until your first read"
        if label_hidden
        else f"label: {label.label} ({label.source})"
        if label
        else "label: none",
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
