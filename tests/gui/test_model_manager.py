"""Model > Manage models: listing with cards, delete protection, import errors, export,
activation with audit and roll back, and the main window's Model menu hooks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from gui_helpers import link_models
from PySide6.QtCore import Qt

from busviewer.core.store import Store


@pytest.fixture
def mm(styled_app, model_files: Path, tmp_path: Path, qtbot):  # type: ignore[no-untyped-def]
    from busviewer.ai.registry import ModelRegistry
    from busviewer.gui.model_manager import ModelManagerDialog

    models = link_models(model_files, tmp_path / "models")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    store = Store(tmp_path / "store.sqlite")

    def factory() -> ModelRegistry:
        return ModelRegistry(user_dir=models, shipped_dir=shipped)

    dlg = ModelManagerDialog(store, registry_factory=factory)
    qtbot.addWidget(dlg)
    with qtbot.waitSignal(dlg.refreshed, timeout=30_000):
        dlg.show()
    yield SimpleNamespace(dlg=dlg, store=store, factory=factory, models=models, root=tmp_path)
    dlg.close()
    store.close()


def test_lists_cards_and_protects_the_active_model(mm) -> None:  # type: ignore[no-untyped-def]
    dlg = mm.dlg
    assert dlg.table.rowCount() == 2
    refs = {dlg.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(2)}
    assert refs == {"test-ensemble:1", "test-vgg:1"}
    dlg.select("test-ensemble:1")
    assert dlg.selected().ref == "test-ensemble:1"
    assert "Ensemble (AlexNet + ResNet-18)" in dlg.details.toPlainText()
    assert "random initialisation" in dlg.details.toPlainText()
    assert "● active" in dlg.table.item(dlg.row_of("test-ensemble:1"), 2).text()
    assert not dlg.delete_button.isEnabled()
    assert "active" in dlg.delete_button.toolTip() and "cannot be deleted" in dlg.delete_button.toolTip()
    assert not dlg.activate_button.isEnabled()
    assert not dlg.rollback_button.isEnabled()
    assert "test-ensemble v1" in dlg.status.text() and "test-vgg v1" in dlg.status.text()
    assert dlg.isVisible() and not dlg.isModal()


@pytest.mark.parametrize(
    "name, content",
    [
        ("broken model.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00not a header at all"),
        ("checkpoint.pt", b"PK\x03\x04 pickled torch.save archive"),
    ],
)
def test_import_error_names_the_file(mm, qtbot, name: str, content: bytes) -> None:  # type: ignore[no-untyped-def]
    bad = mm.root / "incoming" / name
    bad.parent.mkdir()
    bad.write_bytes(content)
    if bad.suffix == ".safetensors":
        bad.with_suffix(".json").write_text("{}", encoding="utf-8")
    with qtbot.waitSignal(mm.dlg.errorShown, timeout=30_000) as blocker:
        mm.dlg.import_file(bad)
    title, text = blocker.args
    assert name in title and str(bad) in text
    box = mm.dlg.error_box
    assert box is not None and box.isVisible() and str(bad) in box.text()
    assert mm.dlg.last_error == (title, text)
    assert len(mm.factory().list()) == 2  # nothing was added
    qtbot.waitUntil(lambda: mm.dlg.import_button.isEnabled(), timeout=5_000)
    box.close()


def test_import_export_activate_delete(mm, qtbot) -> None:  # type: ignore[no-untyped-def]
    dlg = mm.dlg
    dlg.select("test-ensemble:1")
    out = mm.root / "exported"
    with qtbot.waitSignal(dlg.actionDone, timeout=60_000):
        dlg.export_to(out)
    assert sorted(p.name for p in out.iterdir()) == ["test-ensemble-v1.json", "test-ensemble-v1.safetensors"]
    # import it under another name: a second ensemble version, not active
    from busviewer.ai.integrity import seal
    from busviewer.ai.modelcard import ModelCard

    card = ModelCard.from_json((out / "test-ensemble-v1.json").read_text()).with_updates(name="other-ens")
    (out / "other-ens-v1.json").write_text(seal(card).to_json(), encoding="utf-8")  # a renamed copy, re-sealed
    (out / "test-ensemble-v1.safetensors").rename(out / "other-ens-v1.safetensors")
    with qtbot.waitSignal(dlg.refreshed, timeout=60_000):
        dlg.import_file(out / "other-ens-v1.json")
    assert dlg.table.rowCount() == 3 and dlg.selected().ref == "other-ens:1"
    assert dlg.delete_button.isEnabled() and dlg.activate_button.isEnabled()
    assert [a.action for a in mm.store.audit_log(entity="model")] == ["export_model", "import_model"]

    with qtbot.waitSignal(dlg.modelsChanged, timeout=60_000), qtbot.waitSignal(dlg.refreshed, timeout=60_000):
        qtbot.mouseClick(dlg.activate_button, Qt.MouseButton.LeftButton)
    assert mm.factory().active("ensemble").ref == "other-ens:1"
    a = mm.store.audit_log(entity="model")[-1]
    assert (a.action, a.field, a.old_value, a.new_value) == (
        "activate_model",
        "ensemble",
        "test-ensemble:1",
        "other-ens:1",
    )
    dlg.select("other-ens:1")
    assert not dlg.delete_button.isEnabled()
    assert "test-ensemble v1" in dlg.rollback_button.text()
    with qtbot.waitSignal(dlg.refreshed, timeout=60_000):
        dlg.roll_back("ensemble")
    assert mm.factory().active("ensemble").ref == "test-ensemble:1"

    dlg.select("other-ens:1")
    asked: list[str] = []
    dlg._confirm = lambda title, *a: asked.append(title) or False  # type: ignore[method-assign]
    assert dlg.delete_selected() is None  # the reader said no
    dlg._confirm = lambda title, *a: asked.append(title) or True  # type: ignore[method-assign]
    with qtbot.waitSignal(dlg.refreshed, timeout=60_000):
        qtbot.mouseClick(dlg.delete_button, Qt.MouseButton.LeftButton)  # the button asks, then deletes
    assert asked == ["Delete model version", "Delete model version"]
    assert {e.ref for e in mm.factory().list()} == {"test-ensemble:1", "test-vgg:1"}
    assert mm.store.audit_log(entity="model")[-1].action == "delete_model"


def test_main_window_menu_opens_wizard_and_manager(mm, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Model > Train… and Model > Manage models… find the new modules; an activation in the
    manager makes the main window reload its models (status bar)."""
    import os

    from busviewer.ai.integrity import seal
    from busviewer.ai.modelcard import ModelCard
    from busviewer.gui.main_window import MainWindow
    from busviewer.gui.model_manager import ModelManagerDialog
    from busviewer.gui.training_wizard import TrainingWizard

    # trained cards keep their test figures under metrics.test (the Model menu used to read a
    # key training never writes); an AUC of 0.60 asks for confirmation before activation
    poor = {"test": {"image": {"auc": 0.6, "n": 80}, "patient": {"auc": 0.6, "n": 40}}}
    card = ModelCard.from_json((mm.models / "test-ensemble-v1.json").read_text()).with_updates(
        name="second-ens", metrics=poor
    )
    # a second ensemble version (same weights under another name: a cheap hard link)
    os.link(mm.models / "test-ensemble-v1.safetensors", mm.models / "second-ens-v1.safetensors")
    (mm.models / "second-ens-v1.json").write_text(seal(card).to_json(), encoding="utf-8")

    window = MainWindow(mm.store, registry_factory=mm.factory)
    qtbot.addWidget(window)
    window.show()
    window.start()
    qtbot.waitUntil(lambda: window.models_state == "ready", timeout=120_000)
    assert "test-ensemble v1" in window.model_status.text()
    window.open_training_wizard()
    wiz = window._optional_dialog
    assert isinstance(wiz, TrainingWizard) and wiz.isVisible() and not wiz.isModal()
    qtbot.waitUntil(lambda: wiz.env is not None and wiz.data_page.summary is not None, timeout=60_000)
    window.open_training_wizard()  # a second click brings the same wizard forward
    assert window._optional_dialog is wiz
    wiz.close()
    window.open_model_manager()
    dlg = window._optional_dialog
    assert isinstance(dlg, ModelManagerDialog) and dlg.registry is window.registry
    qtbot.waitUntil(lambda: dlg.table.rowCount() == 3 and not dlg.busy, timeout=30_000)
    dlg.select("second-ens:1")
    assert dlg.activate_selected(confirm=False) is None and "not activated" in dlg.status.text()
    with qtbot.waitSignal(window.modelsLoaded, timeout=120_000):
        dlg.activate_selected(confirm=True)
    qtbot.waitUntil(lambda: window.models_state == "ready", timeout=60_000)

    def checked() -> list[str]:
        return [a.text() for a in window.arch_menus["ensemble"].actions() if a.isChecked()]

    # modelsLoaded may come from a load that started before the activation: wait for the menu
    qtbot.waitUntil(lambda: bool(checked()) and checked()[0].startswith("second-ens v1"), timeout=60_000)
    assert "test AUC 0.600" in checked()[0]
    dlg.close()
    window.shutdown()
    window.close()


def test_model_menu_import_is_audited(mm, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Model > Import model... in the main window writes the same audit entry as the manager."""
    from busviewer.ai.integrity import seal
    from busviewer.ai.modelcard import ModelCard
    from busviewer.gui.main_window import MainWindow

    drop = tmp_path / "drop"
    drop.mkdir()
    card = ModelCard.from_json((mm.models / "test-vgg-v1.json").read_text()).with_updates(name="menu-vgg")
    (drop / "menu-vgg-v1.json").write_text(seal(card).to_json(), encoding="utf-8")
    (drop / "menu-vgg-v1.safetensors").write_bytes((mm.models / "test-vgg-v1.safetensors").read_bytes())
    window = MainWindow(mm.store, registry_factory=mm.factory)
    qtbot.addWidget(window)
    task = window.import_model(drop / "menu-vgg-v1.json")
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert task.error is None, task.error
    last = mm.store.audit_log(entity="model")[-1]
    assert (last.action, last.field, last.new_value) == ("import_model", "vgg16", "menu-vgg:1")
    window.shutdown()
    window.close()
