"""Issue 14, viewer: window/level per image (reset on patient change), W/L drag and presets,
zoom shown, several calipers with a list whose handles a pan cannot move, fresh read-outs."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from gui_helpers import close_window, drag, png, pump_until, view_point
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QFontMetrics, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from busviewer.core.imageio import read_image_here
from busviewer.gui.viewer import MODE_CALIPER, MODE_NAVIGATE, ImageViewer


def button_drag(widget, start: QPoint, end: QPoint, button: Qt.MouseButton, steps: int = 6) -> None:  # type: ignore[no-untyped-def]
    """A real drag with ``button`` held (press, moves, release)."""
    QTest.mouseMove(widget, start)
    QTest.mousePress(widget, button, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, steps + 1):
        time.sleep(0.015)  # pyqtgraph drops mouse moves closer than 10 ms
        p = QPointF(start + (end - start) * (i / steps))
        ev = QMouseEvent(
            QEvent.Type.MouseMove,
            p,
            widget.mapToGlobal(p),
            Qt.MouseButton.NoButton,
            button,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(widget, ev)
        QApplication.processEvents()
    time.sleep(0.015)
    QTest.mouseRelease(widget, button, Qt.KeyboardModifier.NoModifier, end)
    QApplication.processEvents()


@pytest.fixture
def viewer(styled_app, qtbot, dicom_2frame: Path):  # type: ignore[no-untyped-def]
    v = ImageViewer()
    qtbot.addWidget(v)
    v.resize(900, 700)
    v.show()
    qtbot.waitExposed(v)
    img = read_image_here(dicom_2frame)
    v.set_image(img, title="#1 OBXXXX1A_2frame.dcm", key=1)
    QApplication.processEvents()
    return SimpleNamespace(v=v, img=img)


# ------------------------------------------------------------------ window/level
def test_wl_drag_with_right_and_middle_button_and_presets(viewer) -> None:  # type: ignore[no-untyped-def]
    v = viewer.v
    port = v.graphics.viewport()
    c = port.rect().center()
    button_drag(port, c, c + QPoint(-60, 0), Qt.MouseButton.RightButton)
    w, lv = v.window_level()
    assert w == 255 - 60 and lv == 128, (w, lv)  # horizontal: window only
    button_drag(port, c, c + QPoint(0, 40), Qt.MouseButton.MiddleButton)
    assert v.window_level() == (195, 168)  # vertical: level only
    assert tuple(v.image_item.levels) == (168 - 97.5, 168 + 97.5)
    assert v.wl_label.text() == "W 195 L 168"
    v.preset.activated.emit(3)  # High contrast
    assert v.window_level() == (120, 128)
    assert v.preset.currentIndex() == 0  # the combo is a chooser, not a state


def test_zoom_level_is_shown(viewer) -> None:  # type: ignore[no-untyped-def]
    v = viewer.v
    v.one_to_one()
    QApplication.processEvents()
    assert v.zoom_label.text() == "Zoom 100%"
    v.fit()
    QApplication.processEvents()
    assert v.zoom_label.text() == f"Zoom {v.zoom_factor() * 100:.0f}%" != "Zoom 100%"


# ---------------------------------------------------------------------- calipers
def test_several_calipers_listed_and_deleted(viewer) -> None:  # type: ignore[no-untyped-def]
    v = viewer.v
    port = v.graphics.viewport()
    v.set_mode(MODE_CALIPER)
    drag(port, view_point(v, 200, 100), view_point(v, 500, 400))
    drag(port, view_point(v, 300, 300), view_point(v, 420, 300))
    assert len(v.calipers.items) == 2 and v.calipers.list.count() == 2 and v.calipers.isVisible()
    rows = [v.calipers.list.item(i).text() for i in range(2)]
    assert rows[0].startswith("1: ") and rows[1].startswith("2: ") and all(" mm" in r for r in rows)
    (x0, _), (x1, _) = v.calipers.items[1].points()
    assert abs((x1 - x0) * 0.26228787661969977 - float(rows[1].split()[1])) < 0.06
    v.calipers.list.setCurrentRow(0)
    v.calipers.delete_selected()
    assert [c.number for c in v.calipers.items] == [2] and v.calipers.list.count() == 1
    v.clear_caliper()
    assert not v.calipers.items and not v.calipers.isVisible()


def test_pan_drag_starting_on_a_handle_does_not_move_the_caliper(viewer) -> None:  # type: ignore[no-untyped-def]
    v = viewer.v
    port = v.graphics.viewport()
    v.set_mode(MODE_CALIPER)
    drag(port, view_point(v, 200, 150), view_point(v, 500, 150))
    before = v.calipers.items[0].points()
    text = v.caliper_text
    v.set_mode(MODE_NAVIGATE)
    QApplication.processEvents()
    rect = v.view.viewRect()
    handle = view_point(v, *before[1])
    drag(port, handle, handle + QPoint(-120, 60))
    assert v.calipers.items[0].points() == before and v.caliper_text == text
    assert v.view.viewRect() != rect  # the drag panned instead
    # with the caliper tool on, the end point can still be adjusted
    v.set_mode(MODE_CALIPER)
    handle = view_point(v, *before[1])
    drag(port, handle, handle + QPoint(-40, 0))
    assert len(v.calipers.items) == 1 and v.calipers.items[0].points()[1][0] < before[1][0] - 5


# ------------------------------------------------------------------------ text
def test_info_line_elides_and_cursor_readout_is_fresh(viewer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    v = viewer.v
    v.resize(420, 500)
    long_title = "#12 " + "very-long-file-name-of-a-study-" * 3 + ".dcm"
    v.set_image(viewer.img, title=long_title, key=2)
    QApplication.processEvents()
    shown = v.info.text()
    assert QFontMetrics(v.info.font()).horizontalAdvance(shown) <= v.info.width()
    assert shown.endswith("…") and v.info.toolTip().endswith("calibrated")
    QTest.mouseMove(v.graphics.viewport(), view_point(v, 300, 200))
    pump_until(lambda: "µm/px" in v.cursor_label.full_text(), 5, "the cursor read-out")
    plain = read_image_here(png(tmp_path / "plain.png", seed=3))
    v.set_image(plain, title="#2 plain.png", key=3)
    assert v.cursor_label.full_text() == ""  # not the previous file's spacing
    assert "µm/px" not in v.describe_point(10, 10)


# ------------------------------------------------------------- in the window
@pytest.fixture(scope="module")
def window(styled_app, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from busviewer.ai.registry import ModelRegistry
    from busviewer.core.importer import import_paths
    from busviewer.core.store import Store
    from busviewer.gui.main_window import MainWindow

    root = tmp_path_factory.mktemp("wl")
    for i in range(2):
        png(root / "study" / "PAT-A" / f"a{i + 1}.png", seed=i)
    png(root / "study" / "PAT-B" / "b1.png", seed=9)
    store = Store(root / "store.sqlite")
    import_paths(store, [root / "study"])
    (root / "models").mkdir()
    w = MainWindow(store, registry_factory=lambda: ModelRegistry(user_dir=root / "models", shipped_dir=root / "models"))
    w.ai_panel.auto.setChecked(False)
    w.show()
    yield w
    close_window(w)
    store.close()


def _show(w, qtbot, patient: str | None = None, index: int = 0) -> None:  # type: ignore[no-untyped-def]
    if patient is not None:
        w.open_patient(patient)
    w.show_image(w.records[index].id)
    qtbot.waitUntil(lambda: w._displayed_id == w.records[index].id, timeout=20_000)


def test_window_level_is_per_image_and_resets_on_patient_change(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = window
    _show(w, qtbot, "PAT-A", 0)
    w.viewer.set_window_level(100, 60)
    _show(w, qtbot, None, 1)
    assert w.viewer.window_level() == (255, 128)  # another image: the stored grey levels
    _show(w, qtbot, None, 0)
    assert w.viewer.window_level() == (100, 60)  # back on the first: as the reader left it
    w.viewer.set_caliper((10, 10), (60, 50))
    assert w.statusBar().currentMessage().startswith("Caliper: ")
    _show(w, qtbot, "PAT-B", 0)
    assert w.viewer.window_level() == (255, 128)
    assert tuple(w.viewer.image_item.levels) == (0.5, 255.5)
    assert not w.statusBar().currentMessage().startswith("Caliper")  # not the last patient's measurement
    _show(w, qtbot, "PAT-A", 0)
    assert w.viewer.window_level() == (255, 128)  # a new reading of the patient starts clean


def test_one_by_two_layout_compares_two_images(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = window
    _show(w, qtbot, "PAT-A", 0)
    assert not w.compare.is_on()
    w.act_compare.trigger()  # View > Compare two images (C)
    pane = w.compare.pane
    assert pane.isVisible() and w.viewer.isVisible()
    qtbot.waitUntil(lambda: pane.viewer.image is not None, timeout=20_000)
    assert pane.image_id == w.records[1].id and pane.viewer.info.full_text().startswith("#2 a2.png")
    qtbot.waitUntil(lambda: abs(pane.viewer.width() - w.viewer.width()) < 40, timeout=2_000)  # two halves
    pane.viewer.set_window_level(90, 100)
    assert w.viewer.window_level() == (255, 128)  # each side its own W/L
    pane.chooser.activated.emit(0)
    qtbot.waitUntil(lambda: pane.image_id == w.records[0].id and pane.viewer.image is not None, timeout=20_000)
    _show(w, qtbot, "PAT-B", 0)
    assert pane.chooser.count() == 1 and pane.viewer.image is None and "one image" in pane.viewer.message.text()
    assert pane.viewer.window_level() == (255, 128)
    w.act_compare.trigger()
    assert not w.compare.is_on()
