"""Start-up without torch, the no-model and broken-model paths, bad files, small widgets."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from gui_helpers import close_window, png
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QMessageBox

from busviewer.core.store import Store
from busviewer.gui.ai_panel import NO_MODEL_MESSAGE, SETTINGS_AUTO, AIPanel
from busviewer.gui.main_window import MainWindow
from busviewer.gui.viewer import ImageViewer, measure


def _registry(user: Path, shipped: Path):  # type: ignore[no-untyped-def]
    def factory():  # type: ignore[no-untyped-def]
        from busviewer.ai.registry import ModelRegistry

        return ModelRegistry(user_dir=user, shipped_dir=shipped)

    return factory


def _close_boxes() -> None:
    for w in QApplication.topLevelWidgets():
        if isinstance(w, QMessageBox):
            w.close()


def test_window_shows_before_torch_is_imported(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import os, sys, time
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        os.environ["BUSVIEWER_HOME"] = {str(tmp_path / "home")!r}
        t0 = time.perf_counter()
        from busviewer.gui.app import create_app
        from busviewer.gui.main_window import MainWindow
        from busviewer.core.store import Store
        app = create_app(["busviewer"])
        window = MainWindow(Store({str(tmp_path / "s.sqlite")!r}))
        window.show()
        app.processEvents()
        shown = time.perf_counter() - t0
        print("torch" in sys.modules, any(m.startswith("busviewer.ai.") for m in sys.modules
              if m not in ("busviewer.ai",)), window.isVisible(), round(shown, 2))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    torch_loaded, ai_loaded, visible, seconds = out.stdout.split()
    assert (torch_loaded, ai_loaded, visible) == ("False", "False", "True"), out.stdout
    assert float(seconds) < 15  # generous on a loaded 2-core machine; typically ~1-2 s


def test_nothing_to_load_ends_loading_without_torch(tmp_path: Path) -> None:
    """With no model installed, "loading models" ends on the registry's listing: torch is
    never imported (its import alone takes seconds)."""
    code = textwrap.dedent(f"""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        os.environ["BUSVIEWER_HOME"] = {str(tmp_path / "home")!r}
        os.environ["BUSVIEWER_SHIPPED_MODELS"] = {str(tmp_path / "no-shipped")!r}
        from PySide6.QtCore import QTimer
        from busviewer.core.store import Store
        from busviewer.gui.app import create_app
        from busviewer.gui.main_window import MainWindow
        app = create_app(["busviewer"])
        store = Store({str(tmp_path / "s.sqlite")!r})
        window = MainWindow(store)
        window.modelsLoaded.connect(lambda cards: app.quit())
        window.show()
        QTimer.singleShot(0, window.start)
        QTimer.singleShot(60000, app.quit)
        app.exec()
        print(window.models_state, "torch" in sys.modules, repr(window.model_status.text()))
        window.shutdown()
        store.close()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["none", "False"], out.stdout + out.stderr[-2000:]
    assert "'AI: no active model'" in out.stdout


def test_no_active_model_message(qtbot, styled_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "s.sqlite")
    (tmp_path / "user").mkdir()
    (tmp_path / "shipped").mkdir()
    w = MainWindow(store, registry_factory=_registry(tmp_path / "user", tmp_path / "shipped"))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.modelsLoaded, timeout=120_000) as blocker:
        w.start()
    assert blocker.args[0] == {}
    assert w.models_state == "none"
    assert NO_MODEL_MESSAGE in w.ai_panel.message.text() and w.ai_panel.message.isVisible()
    assert "no active model" in w.model_status.text()
    assert not w.ai_panel.analyse_button.isEnabled()
    assert "(no model of this kind)" in [a.text() for a in w.arch_menus["vgg16"].actions()]
    close_window(w)
    store.close()


def test_broken_model_file_is_reported(qtbot, styled_app, model_files: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    user, shipped = tmp_path / "user", tmp_path / "shipped"
    user.mkdir()
    shipped.mkdir()
    for f in model_files.glob("test-vgg-v1.*"):
        (user / f.name).write_bytes(f.read_bytes()[:4096] if f.suffix == ".safetensors" else f.read_bytes())
    (user / "active.json").write_text('{"vgg16": "test-vgg:1"}')
    store = Store(tmp_path / "s.sqlite")
    w = MainWindow(store, registry_factory=_registry(user, shipped))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.errorShown, timeout=120_000) as blocker:
        w.start()
    title, text = blocker.args
    assert "test-vgg-v1.safetensors" in text, text
    assert w.models_state == "error" and "could not be loaded" in w.ai_panel.message.text()
    assert w.isVisible()
    _close_boxes()
    close_window(w)
    store.close()


def test_corrupt_file_import_names_the_file(qtbot, styled_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "study"
    png(root / "P1" / "good.png", 1)
    (root / "P1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    store = Store(tmp_path / "s.sqlite")
    w = MainWindow(store, registry_factory=_registry(tmp_path / "u", tmp_path / "sh"))
    w.models_state = "none"  # no model loading in this test
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.importFinished, timeout=60_000) as blocker:
        w.import_paths([root])
    report = blocker.args[0]
    assert report.added == 1 and len(report.problems) == 1
    assert any("broken.png" in text for _title, text in w.errors)
    qtbot.waitUntil(lambda: w.worklist.model.rowCount() == 1)
    _close_boxes()
    close_window(w)
    store.close()


def test_store_write_error_is_reported(qtbot, styled_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "study"
    png(root / "P1" / "a.png", 1)
    store = Store(tmp_path / "s.sqlite")
    from busviewer.core.importer import import_paths

    import_paths(store, [root])
    w = MainWindow(store)
    w.models_state = "none"
    qtbot.addWidget(w)
    w.show()
    w.open_patient("P1")
    qtbot.waitUntil(lambda: w.viewer.image is not None, timeout=30_000)

    from busviewer.core.store import StoreError

    def fail(*_a, **_k):  # type: ignore[no-untyped-def]
        raise StoreError(f"{tmp_path / 's.sqlite'}: write failed (disk I/O error); nothing was saved")

    store.set_label = fail  # type: ignore[method-assign]
    with qtbot.waitSignal(w.errorShown, timeout=5_000) as blocker:
        w.label_current_image("malignant")
    assert "s.sqlite" in blocker.args[1] and "not saved" in blocker.args[1]
    assert not w.labels.image.buttons["malignant"].isChecked()  # shows what is really stored
    _close_boxes()
    close_window(w)
    store.close()


def test_auto_analyse_setting_persists(qtbot, styled_app) -> None:  # type: ignore[no-untyped-def]
    panel = AIPanel()
    qtbot.addWidget(panel)
    panel.auto.setChecked(False)
    assert QSettings().value(SETTINGS_AUTO, type=bool) is False
    again = AIPanel()
    qtbot.addWidget(again)
    assert not again.auto.isChecked()
    again.auto.setChecked(True)
    assert QSettings().value(SETTINGS_AUTO, type=bool) is True


def test_cine_uses_stored_frame_time(qtbot, styled_app) -> None:  # type: ignore[no-untyped-def]
    v = ImageViewer()
    qtbot.addWidget(v)
    v.resize(600, 400)
    v.show()
    img = SimpleNamespace(
        frames=np.zeros((5, 40, 60, 3), np.uint8), frame_time_ms=25.0, regions=(), pixel_spacing_mm=None
    )
    v.set_image(img)
    frames: list[int] = []
    v.frameChanged.connect(frames.append)
    v.play()
    assert v.timer.interval() == 25
    qtbot.waitUntil(lambda: len(frames) >= 4, timeout=5_000)
    assert frames[:4] == [1, 2, 3, 4]
    v.stop()
    assert not v.timer.isActive()
    assert "40 fps" in v.frame_label.text() or "40.0 fps" in v.frame_label.text()


def test_measure_uses_the_region_holding_both_points() -> None:
    regions = (
        {"x0": 0, "y0": 0, "x1": 100, "y1": 100, "physical_delta_x": 0.1, "physical_delta_y": 0.2},
        {"x0": 0, "y0": 101, "x1": 100, "y1": 200, "physical_delta_x": None, "physical_delta_y": None},
    )
    px, mm, source = measure((10, 10), (40, 50), regions)
    assert px == pytest.approx(50.0)
    assert mm == pytest.approx(np.hypot(30 * 0.1, 40 * 0.2)) and source == "ultrasound region"
    px, mm, source = measure((10, 10), (10, 150), regions)
    assert mm is None and "different" in source
    px, mm, source = measure((10, 150), (20, 150), regions, pixel_spacing_mm=(0.5, 0.25))
    assert mm == pytest.approx(2.5) and source == "pixel spacing"
    assert measure((0, 0), (3, 4), ())[1:] == (None, "no calibration in the file")


def test_help_dialogs(qtbot, styled_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from busviewer.core.notice import RESEARCH_NOTICE
    from busviewer.gui.dialogs import SHORTCUTS, ShortcutsDialog, about_text

    assert RESEARCH_NOTICE in about_text()
    dlg = ShortcutsDialog()
    qtbot.addWidget(dlg)
    from PySide6.QtWidgets import QTableWidget

    assert dlg.findChild(QTableWidget).rowCount() == len(SHORTCUTS)
    keys = {k for k, _ in SHORTCUTS}
    assert {"B", "M", "R"} <= keys
    store = Store(tmp_path / "s.sqlite")
    w = MainWindow(store)
    qtbot.addWidget(w)
    w.show()
    w.show_shortcuts()
    shown = [d for d in QApplication.topLevelWidgets() if isinstance(d, ShortcutsDialog) and d.isVisible()]
    assert shown, "Help > Keyboard shortcuts did not open"
    for d in shown:
        d.close()
    close_window(w)
    store.close()
