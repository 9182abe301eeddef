"""The 1x2 layout: a second viewer beside the main one, to read two views of the same
lesion together (radial / antiradial). It shows another image of the open patient, chosen
in its own list; window/level, zoom and calipers are its own.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from busviewer.gui import workers
from busviewer.gui.viewer import ImageViewer


class ComparePane(QWidget):
    """The right half of the 1x2 layout: an image chooser and a viewer."""

    imageShown = Signal(int)

    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_ = window
        self.image_id: int | None = None
        self._task: workers.Task | None = None
        self.chooser = QComboBox(self)
        self.chooser.setToolTip("The image shown on the right (the left follows the thumbnails)")
        self.chooser.activated.connect(lambda i: self.show_image(self.chooser.itemData(i)))
        self.viewer = ImageViewer(self)
        self.viewer.setObjectName("compareViewer")
        self.viewer.set_compact(True)  # no Draw ROI either: ROIs are drawn on the main (left) viewer
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Right:", self))
        top.addWidget(self.chooser, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        lay.addLayout(top)
        lay.addWidget(self.viewer, 1)

    def set_patient(self, records: list[Any], first: int | None = None) -> None:
        """A new patient: list its images, forget window/level, show ``first`` (an image id)."""
        self.viewer.forget_levels()
        self.chooser.clear()
        for n, rec in enumerate(records, start=1):
            view = self.window_.thumbnails.view_text(rec.id)
            self.chooser.addItem(f"#{n} {rec.name}" + (f" · {view}" if view else ""), rec.id)
        self.image_id = None
        if first is not None:
            self.show_image(first)
        else:
            self.viewer.clear("This patient has one image")

    def show_image(self, image_id: int | None) -> None:
        if image_id is None or image_id == self.image_id:
            return
        self.image_id = image_id
        self.chooser.setCurrentIndex(max(0, self.chooser.findData(image_id)))
        img = self.window_._cache.get(image_id)
        if img is not None:
            self._display(image_id, img)
            return
        rec = self.window_.record(image_id)
        if rec is None:
            return
        self.viewer.clear(f"Loading {rec.name}…")
        if self._task is not None:
            self._task.cancel()
        from busviewer.gui.tasks import task_decode

        self._task = workers.submit(
            task_decode,
            rec.source_path,
            name="decode (right)",
            on_result=lambda im, i=image_id: self._decoded(i, im),
            on_error=lambda e, i=image_id: self._failed(i, e),
        )

    def _decoded(self, image_id: int, img: Any) -> None:
        self._task = None
        if image_id == self.image_id:
            self._display(image_id, img)

    def _failed(self, image_id: int, exc: BaseException) -> None:
        self._task = None
        if image_id == self.image_id:
            self.viewer.clear()
            self.viewer.show_message(f"Cannot display this image\n\n{exc}", error=True)

    def _display(self, image_id: int, img: Any) -> None:
        rec = self.window_.record(image_id)
        if rec is None:
            return
        n = self.window_.image_number(image_id)
        view = self.window_.thumbnails.view_text(image_id)
        self.viewer.set_image(
            img,
            title=f"#{n} {rec.name}" + (f" · {view}" if view else ""),
            regions=img.regions or rec.regions,
            pixel_spacing_mm=img.pixel_spacing_mm,
            key=image_id,
        )
        self.imageShown.emit(image_id)


class CompareLayout:
    """Puts the main viewer and a :class:`ComparePane` in a splitter; View > 1x2 turns it on."""

    def __init__(self, window: Any) -> None:
        self.window = window
        viewer = window.viewer
        layout = viewer.parentWidget().layout()
        index = layout.indexOf(viewer)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, viewer.parentWidget())
        layout.insertWidget(index, self.splitter, 1)
        self.splitter.addWidget(viewer)
        self.pane = ComparePane(window, self.splitter)
        self.splitter.addWidget(self.pane)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.pane.setVisible(False)
        window.patientOpened.connect(self._patient_opened)

    def is_on(self) -> bool:
        return self.pane.isVisible()

    def set_on(self, on: bool) -> None:
        """Show or hide the right viewer; turned on, it shows the image after the current one."""
        if on == self.is_on():
            return
        self.pane.setVisible(on)
        self.window.viewer.set_compact(on)
        if on:
            QTimer.singleShot(0, self._halves)  # once the splitter has taken the shown pane in
            self._patient_opened(self.window.patient_key)
        else:
            self.pane.viewer.clear()
            self.pane.image_id = None

    def _halves(self) -> None:
        if self.is_on():
            half = max(200, self.splitter.width() // 2)
            self.splitter.setSizes([half, half])

    def toggle(self) -> None:
        self.set_on(not self.is_on())

    def _patient_opened(self, _key: Any) -> None:
        if not self.is_on():
            return
        ids = [r.id for r in self.window.records]
        cur = self.window.current_image_id
        nxt = ids[(ids.index(cur) + 1) % len(ids)] if cur in ids and len(ids) > 1 else None
        self.pane.set_patient(list(self.window.records), nxt)
