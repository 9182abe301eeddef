"""The image viewer's cine bar: play/pause, the frame slider and read-out, and the timer that
steps through the frames (shown only for images with more than one frame)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

if TYPE_CHECKING:
    from busviewer.gui.viewer import ImageViewer


class CineControls:
    """Cine widgets and playback of an :class:`~busviewer.gui.viewer.ImageViewer`; the viewer
    owns the image and shows the frames (the slider and the timer call its ``set_frame``)."""

    def __init__(self, viewer: ImageViewer) -> None:
        self.viewer = viewer
        self.play_button = QPushButton("▶ Play", viewer)
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play / pause the cine loop (Space)")
        self.play_button.toggled.connect(self._play_toggled)
        self.frame_slider = QSlider(Qt.Orientation.Horizontal, viewer)
        self.frame_slider.setRange(0, 0)
        self.frame_slider.valueChanged.connect(viewer.set_frame)
        self.frame_label = QLabel("", viewer)
        widest = self.frame_label.fontMetrics().horizontalAdvance("frame 999/999 · 99.9 fps")
        self.frame_label.setMinimumWidth(widest + 6)
        self.bar = QWidget(viewer)
        cine = QHBoxLayout(self.bar)
        cine.setContentsMargins(0, 0, 0, 0)
        cine.addWidget(self.play_button)
        cine.addWidget(self.frame_slider, 1)
        cine.addWidget(self.frame_label)
        self.bar.setVisible(False)
        self.timer = QTimer(viewer)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)

    def start_image(self, frames: int) -> None:
        """A new image of ``frames`` frames, shown from the first, not playing."""
        self.frame_slider.blockSignals(True)
        self.frame_slider.setRange(0, max(0, frames - 1))
        self.frame_slider.setValue(0)
        self.frame_slider.blockSignals(False)
        self.bar.setVisible(frames > 1)
        self.play_button.setChecked(False)

    def show_position(self, index: int) -> None:
        """Move the slider to frame ``index`` without asking the viewer for it again."""
        if self.frame_slider.value() != index:
            self.frame_slider.blockSignals(True)
            self.frame_slider.setValue(index)
            self.frame_slider.blockSignals(False)

    def show_frame_text(self, index: int, frames: int) -> None:
        """The read-out beside the slider: frame number and frame rate (cine images only)."""
        if frames > 1:
            fps = 1000.0 / self.viewer.frame_interval_ms()
            self.frame_label.setText(f"frame {index + 1}/{frames} · {fps:.1f} fps")

    def play(self) -> None:
        if self.viewer.frame_count() > 1:
            self.play_button.setChecked(True)

    def stop(self) -> None:
        if self.play_button.isChecked():
            self.play_button.setChecked(False)
        self.timer.stop()

    def toggle_play(self) -> None:
        if self.viewer.frame_count() > 1:
            self.play_button.setChecked(not self.play_button.isChecked())

    def is_playing(self) -> bool:
        return self.timer.isActive()

    def _play_toggled(self, on: bool) -> None:
        if on and self.viewer.frame_count() > 1:
            self.timer.start(self.viewer.frame_interval_ms())
            self.play_button.setText("⏸ Pause")
        else:
            self.timer.stop()
            self.play_button.setText("▶ Play")

    def _tick(self) -> None:
        self.viewer.set_frame(self.viewer.frame + 1)
