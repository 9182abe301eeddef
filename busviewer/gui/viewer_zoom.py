"""The image viewer's zoom controls: the Fit and 1:1 buttons and the zoom read-out (the mouse
wheel zooms and a left drag pans in the view box itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QLabel, QToolButton

if TYPE_CHECKING:
    from busviewer.gui.viewer import ImageViewer


class ZoomControls:
    """Fit, 1:1 and the zoom read-out of an :class:`~busviewer.gui.viewer.ImageViewer`."""

    def __init__(self, viewer: ImageViewer) -> None:
        self.viewer = viewer
        self.fit_button = QToolButton(viewer)
        self.fit_button.setText("Fit")
        self.fit_button.setToolTip("Fit the image to the view (F)")
        self.fit_button.clicked.connect(viewer.fit)
        self.one_button = QToolButton(viewer)
        self.one_button.setText("1:1")
        self.one_button.setToolTip("One image pixel per screen pixel (1)")
        self.one_button.clicked.connect(viewer.one_to_one)
        self.zoom_label = QLabel("", viewer)
        self.zoom_label.setObjectName("dimLabel")
        self.zoom_label.setToolTip("Zoom: screen pixels per image pixel (wheel zooms, left drag pans)")
        self.zoom_label.setMinimumWidth(self.zoom_label.fontMetrics().horizontalAdvance("Zoom 999%") + 4)

    def fit(self) -> None:
        """The whole image in the view."""
        v = self.viewer
        if v.image is not None:
            v.view.setRange(v.image_rect(), padding=0.01)

    def one_to_one(self) -> None:
        """One image pixel per screen pixel, around the centre of the view."""
        v = self.viewer
        if v.image is None:
            return
        rect = v.view.viewRect()
        centre = rect.center()
        size = v.view.screenGeometry().size() if v.view.screenGeometry() is not None else None
        w = size.width() if size is not None else v.view.width()
        h = size.height() if size is not None else v.view.height()
        v.view.setRange(
            xRange=(centre.x() - w / 2, centre.x() + w / 2), yRange=(centre.y() - h / 2, centre.y() + h / 2), padding=0
        )

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel."""
        px = self.viewer.view.viewPixelSize()[0]
        return 1.0 / px if px else 0.0

    def update_label(self, *_: Any) -> None:
        """Show the zoom (nothing without an image); the view's range or size changed."""
        z = self.zoom_factor() if self.viewer.image is not None else 0.0
        self.zoom_label.setText(f"Zoom {z * 100:.0f}%" if z > 0 else "")
