"""Shipped default models in the GUI: Model manager's *Use shipped default* (audited, then
*Roll back* returns to the site model), the training wizard fine-tuning the shipped model
by default, and a fresh install analysing real BUSI images with the repository's models/.

The first two tests ship a small VGG-16 'bn' built in the test into a temporary folder.
The last one uses the REAL shipped models: whatever `busviewer models ship` has written to
models/ at the repository top level (busviewer.core.paths.SHIPPED_MODELS_DIR), found by the
registry exactly as an installation finds them. It is skipped only while models/ holds no
shipped model (remove the skip once the default models are committed)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from gui_helpers import close_window, pump_until
from PySide6.QtCore import Qt

from busviewer.core.store import Store

BUSI_IMAGES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "busi" / "images"


@pytest.fixture(scope="module")
def shipped_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``vgg-default:1`` (VGG-16 'bn', input 32, int8/fp16 shards) in a temporary shipped folder."""
    import torch

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model
    from busviewer.ai.registry import ModelRegistry
    from busviewer.ai.shipping import ShipOptions, ship_model

    root = tmp_path_factory.mktemp("shipped-gui")
    torch.manual_seed(1)
    source = ModelRegistry(user_dir=root / "source", shipped_dir=root / "none")
    source.save(
        build_model("vgg16", pretrained=False, variant="bn"),
        ModelCard("vgg-default", 1, "vgg16", input_size=32, variant="bn", pretrained_init="random"),
    )
    ship_model(source, "vgg-default:1", ShipOptions(out_dir=root / "shipped", large_linear_min=100_000))
    return root / "shipped"


@pytest.fixture
def site(shipped_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A user folder holding an activated site model next to the shipped default."""
    import torch

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model
    from busviewer.ai.registry import ModelRegistry

    shipped = tmp_path / "shipped"
    shutil.copytree(shipped_dir, shipped)

    def factory() -> ModelRegistry:
        return ModelRegistry(user_dir=tmp_path / "models", shipped_dir=shipped)

    torch.manual_seed(2)
    reg = factory()
    reg.save(
        build_model("vgg16", pretrained=False, variant="bn"),
        ModelCard("site-vgg", 1, "vgg16", input_size=32, variant="bn", pretrained_init="random"),
    )
    store = Store(tmp_path / "store.sqlite")
    yield SimpleNamespace(factory=factory, store=store, root=tmp_path)
    store.close()


def test_use_shipped_default_in_the_model_manager(site, qtbot, styled_app) -> None:  # type: ignore[no-untyped-def]
    from busviewer.gui.model_manager import ModelManagerDialog
    from busviewer.services.models import activate

    activate(site.factory(), site.store, "site-vgg", 1)
    dlg = ModelManagerDialog(site.store, registry_factory=site.factory)
    qtbot.addWidget(dlg)
    with qtbot.waitSignal(dlg.refreshed, timeout=30_000):
        dlg.show()
    assert dlg.defaults == {"vgg16": "vgg-default:1"}
    dlg.select("vgg-default:1")
    assert "shipped" in dlg.table.item(dlg.row_of("vgg-default:1"), 7).text()
    details = dlg.details.toPlainText()
    assert "shipped with busviewer" in details and "sha256 checked on load" in details
    assert not dlg.delete_button.isEnabled() and "cannot be deleted" in dlg.delete_button.toolTip()
    assert dlg.default_button.isEnabled() and "site-vgg:1" in dlg.default_button.toolTip()
    with qtbot.waitSignal(dlg.modelsChanged, timeout=60_000), qtbot.waitSignal(dlg.refreshed, timeout=60_000):
        qtbot.mouseClick(dlg.default_button, Qt.MouseButton.LeftButton)
    assert site.factory().active("vgg16").ref == "vgg-default:1"
    a = site.store.audit_log(entity="model")[-1]
    assert (a.action, a.field, a.old_value, a.new_value) == (
        "use_default_model",
        "vgg16",
        "site-vgg:1",
        "vgg-default:1",
    )
    assert "VGG-16: vgg-default v1" in dlg.status.text()
    assert not dlg.default_button.isEnabled() and "already the active one" in dlg.default_button.toolTip()
    assert "site-vgg v1" in dlg.rollback_button.text()  # the step back is recorded like any activation
    with qtbot.waitSignal(dlg.refreshed, timeout=60_000):
        dlg.roll_back("vgg16")
    assert site.factory().active("vgg16").ref == "site-vgg:1"
    dlg.close()


def test_wizard_fine_tunes_the_shipped_model_by_default(site, qtbot, styled_app) -> None:  # type: ignore[no-untyped-def]
    from test_training_wizard import balanced, import_into, press, write_dataset

    from busviewer.gui.training_wizard import PAGE_MODEL, TrainingWizard

    import_into(site.store, write_dataset(site.root / "data", balanced(8)))
    wiz = TrainingWizard(site.store, registry_factory=site.factory)
    qtbot.addWidget(wiz)
    wiz.show()
    qtbot.waitUntil(lambda: wiz.env is not None and wiz.data_page.summary is not None, timeout=60_000)
    press(qtbot, wiz)
    assert wiz.currentId() == PAGE_MODEL
    mp = wiz.model_page
    mp.arch_buttons["vgg16"].click()
    assert mp.init_active.isEnabled() and mp.init_active.isChecked()
    assert "vgg-default v1" in mp.init_active.text()  # nothing activated here: the shipped default
    assert wiz.build_spec().config["init_from"] == "vgg-default:1"
    wiz.close()


def _shipped_architectures() -> set[str]:
    """Architectures with a model in the repository's models/ (empty until models ship)."""
    import tempfile

    from busviewer.ai.registry import ModelRegistry
    from busviewer.core.paths import SHIPPED_MODELS_DIR

    with tempfile.TemporaryDirectory() as empty:
        reg = ModelRegistry(user_dir=Path(empty), shipped_dir=SHIPPED_MODELS_DIR)
        return {e.architecture for e in reg.list() if e.location == "shipped"}


def test_fresh_install_analyses_real_busi_images(
    qtbot,
    styled_app,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The app as `make run` starts it (default store and registry) on an empty user folder,
    with the shipped models of models/: an imported folder of real BUSI images gets per-image
    results from every shipped architecture without training or importing a model."""
    archs = _shipped_architectures()
    assert archs == {"ensemble", "vgg16"}, f"models/ must ship both default models (found {archs})"
    if not BUSI_IMAGES.is_dir():
        pytest.fail(f"the BUSI images are not at {BUSI_IMAGES}")
    from busviewer.gui.main_window import MainWindow

    monkeypatch.delenv("BUSVIEWER_SHIPPED_MODELS", raising=False)
    study = tmp_path / "study"
    picked = {
        "BUSI-B": sorted((BUSI_IMAGES / "benign").glob("*.png"))[:3],
        "BUSI-M": sorted((BUSI_IMAGES / "malignant").glob("*.png"))[:3],
    }
    for patient, files in picked.items():
        (study / patient).mkdir(parents=True)
        for f in files:
            shutil.copy2(f, study / patient / f.name)
    store = Store()  # in the test's empty BUSVIEWER_HOME, like a first start
    window = MainWindow(store)
    try:
        window.ai_panel.auto.setChecked(True)
        window.show()
        window.start()
        pump_until(lambda: window.models_state in ("ready", "none", "error"), 300, "the shipped models to load")
        assert window.models_state == "ready", window.errors
        assert set(window.analyzer.cards) == archs
        assert all(e.location == "shipped" for e in window.model_entries if e.active)
        with qtbot.waitSignal(window.importFinished, timeout=120_000) as blocker:
            window.import_paths([study])
        assert blocker.args[0].added == 6 and not blocker.args[0].problems
        for patient, files in picked.items():
            with qtbot.waitSignal(window.analysisFinished, timeout=300_000) as done:
                window.open_patient(patient)
            analysis = done.args[0]
            assert analysis.patient_key == patient and set(analysis.verdicts) == archs
            ids = [r.id for r in window.records]
            assert len(ids) == len(files)
            for image_id in ids:
                for arch in archs:
                    p = analysis.predictions[(image_id, arch)]
                    assert 0.0 <= p.malignant_probability <= 1.0
            n = len(files)
            qtbot.waitUntil(lambda n=n: window.ai_panel.table.rowCount() == n, timeout=10_000)
    finally:
        close_window(window)
        store.close()
