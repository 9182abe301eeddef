"""Issue 18: the training wizard's path from Model > Train… to a finished run, many times
over, while the cyclic GC is pushed to run in any thread that allocates (the training
worker above all) and the GUI thread keeps making menu/widget garbage for it to free.

A QObject finalised in a worker can deadlock with the GUI thread; here none may be, no
cyclic collection may even start in a worker, and a hang fails through pytest-timeout with
every thread's stack. ``BUSVIEWER_GC_STRESS_RUNS`` changes the number of runs (30).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from gui_helpers import answer_dialog, link_models
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWizard
from test_training_wizard import balanced, import_into, press, write_dataset

from busviewer.core.store import Store

RUNS = int(os.environ.get("BUSVIEWER_GC_STRESS_RUNS", "30"))
RUN_TIMEOUT_MS = 120_000

pytestmark = pytest.mark.slow  # about a minute on a quiet CI machine; still runs in CI


@pytest.fixture
def tiny(styled_app, model_files: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """12 patients with one image each; the random-weight test models are active."""
    from busviewer.ai.registry import ModelRegistry

    models = link_models(model_files, tmp_path / "models")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    store = Store(tmp_path / "store.sqlite")
    import_into(store, write_dataset(tmp_path / "data", balanced(12, per=1), seed=7))
    yield SimpleNamespace(store=store, factory=lambda: ModelRegistry(user_dir=models, shipped_dir=shipped))
    store.close()


def train_once(ws, qtbot) -> SimpleNamespace:  # type: ignore[no-untyped-def]
    """Open a wizard, walk it to a one-step VGG-16 run (busviewer recipe: batch-normalised
    with a GAP head, the smallest model the wizard makes; 32 px, four conv blocks frozen,
    CPU), wait for the end."""
    from busviewer.gui.training_wizard import PAGE_RUN, PAGE_SETTINGS, TrainingWizard

    wiz = TrainingWizard(ws.store, registry_factory=ws.factory)
    try:
        wiz.show()
        qtbot.waitUntil(lambda: wiz.env is not None and wiz.data_page.summary is not None, timeout=60_000)
        press(qtbot, wiz)
        wiz.model_page.arch_buttons["vgg16"].click()
        wiz.model_page.init_random.click()
        press(qtbot, wiz)
        vp = wiz.validation_page
        if wiz.locked is None:
            vp.locked_fraction.setValue(25)
            qtbot.mouseClick(vp.create_locked_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: wiz.locked is not None and not wiz.locked_busy, timeout=30_000)
        vp.holdout_radio.click()
        vp.val_fraction.setValue(25)
        press(qtbot, wiz)
        assert wiz.currentId() == PAGE_SETTINGS
        sp = wiz.settings_page
        sp.recipe.setCurrentIndex(sp.recipe.findData("busviewer"))  # VGG-16 bn: a small GAP head
        sp.epochs.setValue(1)
        sp.patience.setValue(1)
        sp.batch_size.setValue(8)
        sp.input_size.setValue(32)
        if not sp.advanced.isVisible():
            sp.advanced_toggle.click()
        sp.freezing.setCurrentIndex(sp.freezing.findData("custom"))
        sp.vgg_frozen.setValue(4)
        sp.device.setCurrentIndex(sp.device.findData("cpu"))
        sp.max_steps.setValue(1)
        answer_dialog("Start training")  # the confirmation with the estimate
        press(qtbot, wiz, QWizard.WizardButton.CommitButton)
        assert wiz.currentId() == PAGE_RUN
        rp = wiz.run_page
        qtbot.waitUntil(lambda: rp.state in ("finished", "failed", "cancelled"), timeout=RUN_TIMEOUT_MS)
        return SimpleNamespace(
            state=rp.state, text=rp.stage_label.text(), run_dir=wiz.run_dir, model=(wiz.outcome or {}).get("model")
        )
    finally:
        wiz.close()
        wiz.deleteLater()
        QApplication.processEvents()


def test_training_path_under_forced_worker_gc(  # type: ignore[no-untyped-def]
    tiny, qtbot, forced_worker_gc, finalisation_recorder
) -> None:
    from busviewer.gui import gcpolicy
    from busviewer.services.models import split_ref

    rec = finalisation_recorder
    off0, fin0, gui_gc0 = len(rec.off_gui), rec.finalised, gcpolicy.collections()
    rec.worker_collections.clear()
    t0, cpu0 = time.monotonic(), time.process_time()
    for i in range(RUNS):
        t1 = time.monotonic()
        run = train_once(tiny, qtbot)
        print(
            f"run {i + 1}: {run.state} in {time.monotonic() - t1:.1f} s; QObjects finalised outside the GUI "
            f"thread so far: {len(rec.off_gui) - off0}",
            flush=True,
        )
        assert run.state == "finished", f"run {i + 1}: {run.state}: {run.text}"
        assert (run.run_dir / "roc.png").is_file() and (run.run_dir / "loss.png").is_file()
        tiny.factory().delete(*split_ref(run.model))  # keep the disk use of 30 runs small
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    off = rec.off_gui[off0:]
    print(
        f"\n{RUNS} runs in {elapsed:.1f} s ({cpu:.1f} s CPU); {forced_worker_gc.churned} churned menus; "
        f"{rec.finalised - fin0} QObjects finalised, {len(off)} outside the GUI thread; cyclic collections in "
        f"workers: {dict(rec.worker_collections)}; GUI-thread collections for workers: "
        f"{gcpolicy.collections() - gui_gc0}"
    )
    assert not off, f"{len(off)} QObject(s) finalised outside the GUI thread: {off[:10]}"
    assert not rec.worker_collections, f"cyclic GC ran in worker threads: {dict(rec.worker_collections)}"
    assert forced_worker_gc.churned >= RUNS and rec.finalised - fin0 >= RUNS  # the guard had work to do
    # the plots were drawn on matplotlib's Agg canvas, never through a Qt backend
    assert not [m for m in sys.modules if m.startswith("matplotlib.backends.backend_qt")]
