"""Small helpers to drive the real widgets."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget


def pump_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Process events until ``condition()`` holds (for module-scoped fixtures without qtbot)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        QApplication.processEvents()
        time.sleep(0.005)


def view_point(viewer, x: float, y: float) -> QPoint:  # type: ignore[no-untyped-def]
    """Viewport pixel of image point (x, y)."""
    scene = viewer.view.mapViewToScene(QPointF(x, y))
    return viewer.graphics.mapFromScene(scene)


def drag(widget, start: QPoint, end: QPoint, steps: int = 8) -> None:  # type: ignore[no-untyped-def]
    """A real left-button drag on a widget (press, moves with the button held, release)."""
    QTest.mouseMove(widget, start)
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, steps + 1):
        time.sleep(0.015)  # pyqtgraph drops mouse moves closer than 10 ms (mouseRateLimit)
        p = QPointF(start + (end - start) * (i / steps))
        ev = QMouseEvent(
            QEvent.Type.MouseMove,
            p,
            widget.mapToGlobal(p),
            Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(widget, ev)
        QApplication.processEvents()
    time.sleep(0.015)
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    QApplication.processEvents()


def key(widget, k: Qt.Key, modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:  # type: ignore[no-untyped-def]
    """A key press as the reader makes it: the window is active, the event goes to ``widget``."""
    top = widget.window()
    if QApplication.activeWindow() is not top:
        top.activateWindow()
        QApplication.processEvents()
    QTest.keyClick(widget, k, modifier)
    QApplication.processEvents()


def link_models(src: Path, dst: Path) -> Path:
    """Hard-link (or copy) the model files so each test has its own registry folder."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        target = dst / f.name
        if f.suffix == ".safetensors":
            try:
                os.link(f, target)
                continue
            except OSError:
                pass
        shutil.copy2(f, target)
    return dst


def png(path: Path, seed: int, size: tuple[int, int] = (120, 160)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    blob = 200 * np.exp(-(((xx - w * 0.55) / (w * 0.15)) ** 2 + ((yy - h * 0.5) / (h * 0.2)) ** 2))
    img = np.clip(60 + blob + rng.normal(0, 18, (h, w)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


def make_study(root: Path, dicom: Path | None) -> list[Path]:
    """Two PNG patients (3 and 2 images) plus a 2-frame DICOM; returns the paths to import."""
    for i in range(3):
        png(root / "pngs" / "PAT-A" / f"a{i + 1}.png", seed=i)
    for i in range(2):
        png(root / "pngs" / "PAT-B" / f"b{i + 1}.png", seed=10 + i)
    paths = [root / "pngs"]
    if dicom is not None:
        (root / "dicom").mkdir(parents=True, exist_ok=True)
        copy = root / "dicom" / dicom.name
        shutil.copy2(dicom, copy)
        paths.append(copy)
    return paths


def close_window(window: QWidget) -> None:
    window.shutdown()
    window.close()
    window.deleteLater()
    QApplication.processEvents()


def answer_dialog(button_text: str, found: list | None = None, timeout: float = 10.0) -> None:  # type: ignore[type-arg]
    """Click ``button_text`` in the next modal message box (call before what opens it).
    The box's text is appended to ``found`` when given."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    deadline = time.monotonic() + timeout

    def look() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            if found is not None:
                found.append(box.text())
            button = next((b for b in box.buttons() if b.text().replace("&", "") == button_text), None)
            assert button is not None, f"no {button_text!r} button in {box.text()!r}"
            button.click()
            return
        if time.monotonic() < deadline:
            QTimer.singleShot(20, look)

    QTimer.singleShot(20, look)
