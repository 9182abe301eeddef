"""Newcomer path (issue 14): the AI panel says what to do next in each state, and "nothing
to do yet" is a friendly note, not a red error box (Ctrl+E on an empty store)."""

from __future__ import annotations

import shutil
from pathlib import Path

from gui_helpers import close_window, key
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from busviewer.core.store import Store
from busviewer.gui.main_window import MainWindow
from busviewer.services.guidance import NO_MODEL, Situation, next_step


def _registry(user: Path, shipped: Path):  # type: ignore[no-untyped-def]
    def factory():  # type: ignore[no-untyped-def]
        from busviewer.ai.registry import ModelRegistry

        return ModelRegistry(user_dir=user, shipped_dir=shipped)

    return factory


def _boxes() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]


def test_next_step_for_each_state() -> None:
    assert "File > Import folder" in next_step(Situation(models="none", store_empty=True))
    assert "Model > Train" in next_step(Situation(models="none", installed=0, store_empty=False))
    assert "Model > Manage models" in next_step(Situation(models="none", installed=2, store_empty=False))
    shipped = next_step(Situation(models="ready", shipped_active=("ensemble",), store_empty=False))
    assert "shipped default models" in shipped and "open a patient" in shipped
    assert next_step(Situation(models="ready", store_empty=False, patient_open=True)) == ""


def test_installed_but_inactive_models_point_to_manage_models(
    qtbot,
    styled_app,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    model_files: Path,
) -> None:
    user = tmp_path / "user"
    shutil.copytree(model_files, user)
    (user / "active.json").unlink()  # the two models stay installed, none is active
    (tmp_path / "shipped").mkdir()
    store = Store(tmp_path / "s.sqlite")
    w = MainWindow(store, registry_factory=_registry(user, tmp_path / "shipped"))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.modelsLoaded, timeout=120_000):
        w.start()
    qtbot.waitUntil(lambda: w.ai_panel.situation.store_empty is not None, timeout=10_000)
    panel = w.ai_panel
    assert w.models_state == "none"
    assert "2 model version(s) installed, none active" in panel.message.text()
    assert "Model > Manage models" in panel.message.text() and NO_MODEL not in panel.message.text()
    assert panel.guide.isVisibleTo(panel) and "File > Import folder" in panel.guide.text()
    assert "Manage models" in panel.guide.text()

    # Ctrl+E with nothing open on an empty store: an information note, no error
    errors: list = []
    w.errorShown.connect(lambda *a: errors.append(a))
    with qtbot.waitSignal(w.infoShown, timeout=5_000) as sig:
        key(w, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert sig.args[0] == "Nothing to export yet" and "the store has no patients" in sig.args[1]
    assert errors == [] and w.errors == []
    boxes = _boxes()
    assert boxes and all(b.icon() == QMessageBox.Icon.Information for b in boxes)
    for b in boxes:
        b.close()
    # the same for the de-identified export with nothing open
    with qtbot.waitSignal(w.infoShown, timeout=5_000) as sig:
        assert w.pacs.deid_dialog() is None
    assert sig.args[0] == "Nothing to export yet" and errors == []
    for b in _boxes():
        b.close()
    close_window(w)
    store.close()


def test_panel_names_the_shipped_models(qtbot) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from busviewer.gui.ai_panel import AIPanel

    panel = AIPanel()
    qtbot.addWidget(panel)
    panel.set_store_empty(False)
    panel.set_models({"ensemble": SimpleNamespace(name="busi-ensemble", version=1)}, "cpu", shipped=["ensemble"])
    assert "shipped default models" in panel.guide.text() and "open a patient" in panel.guide.text()
