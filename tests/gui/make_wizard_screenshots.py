"""Screenshots of the training wizard and the model manager for review (not a test).

    BUSVIEWER_HOME=/tmp/wizard_shots_home xvfb-run -a -s "-screen 0 1600x1000x24" \\
        .venv/bin/python tests/gui/make_wizard_screenshots.py out/screens

Imports the BUSI manifest into a fresh store under ``$BUSVIEWER_HOME``, registers a
*random-weight* ensemble and VGG-16 (input 224) as the active models when none is active
(so the "active model" numbers mean nothing), then walks the wizard: data (with the
near-duplicate check), model, validation (creates the locked test set), settings
(Advanced open), a short real training run (64 px, a few steps per epoch, CPU), results,
promote, the model manager, and a cancelled run offered for resume.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication, QWizard

REPO = Path(__file__).resolve().parents[2]
BUSI = Path(os.environ.get("BUSVIEWER_BUSI", REPO.parent / "shared" / "data" / "busi"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gui_helpers import answer_dialog  # noqa: E402
from make_screenshots import ensure_models, pump, settle  # noqa: E402


def shot(widget, out: Path, name: str, wait: float = 0.4) -> None:  # type: ignore[no-untyped-def]
    settle(wait)
    path = out / f"wizard_{name}.png"
    widget.grab().save(str(path))
    print("saved", path)


def fast(sp) -> None:  # type: ignore[no-untyped-def]
    sp.epochs.setValue(3)
    sp.patience.setValue(2)
    sp.batch_size.setValue(16)
    sp.input_size.setValue(64)
    sp.freezing.setCurrentIndex(sp.freezing.findData("custom"))
    sp.alexnet_last.setValue(2)
    sp.resnet_frozen.setValue(5)
    sp.device.setCurrentIndex(sp.device.findData("cpu"))
    sp.max_steps.setValue(4)


def main(out_dir: str) -> int:
    home = Path(os.environ.setdefault("BUSVIEWER_HOME", "/tmp/wizard_shots_home"))
    for p in ("store.sqlite", "store.sqlite-wal", "store.sqlite-shm", "locked_test_set.json"):
        (home / p).unlink(missing_ok=True)
    shutil.rmtree(home / "runs", ignore_errors=True)
    shutil.rmtree(home / "models", ignore_errors=True)  # fresh random-weight models each time
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(home / "settings"))
    print(ensure_models())

    from busviewer.core.importer import import_paths
    from busviewer.core.store import Store
    from busviewer.gui.app import create_app
    from busviewer.gui.model_manager import ModelManagerDialog
    from busviewer.gui.training_wizard import TrainingWizard
    from busviewer.training import events as ev

    create_app(["busviewer"])
    store = Store(home / "store.sqlite")
    report = import_paths(store, [BUSI / "manifest.csv"])
    print("import:", report.summary())

    wiz = TrainingWizard(store)
    wiz.show()
    pump(lambda: wiz.env is not None and wiz.data_page.summary is not None, 300, "the data page")
    pump(lambda: wiz.data_page.near is not None, 600, "the near-duplicate check")
    shot(wiz, out, "1_data")

    wiz.next()
    shot(wiz, out, "2_model")
    wiz.next()
    shot(wiz, out, "3_validation_before")
    wiz.validation_page.create_locked_button.click()
    pump(lambda: wiz.locked is not None and not wiz.locked_busy, 120, "the locked test set")
    shot(wiz, out, "3_validation")
    wiz.next()
    wiz.settings_page.advanced_toggle.click()
    shot(wiz, out, "4_settings")
    fast(wiz.settings_page)
    epochs = []
    wiz.runEvent.connect(lambda e: epochs.append(e) if isinstance(e, ev.EpochDone) else None)
    answer_dialog("Start training")  # the confirmation with the estimate
    wiz.button(QWizard.WizardButton.CommitButton).click()
    pump(lambda: len(epochs) >= 4 or wiz.run_page.state in ("finished", "failed"), 900, "some epochs")
    shot(wiz, out, "5_run", wait=0.2)
    pump(lambda: wiz.run_page.state in ("finished", "failed", "cancelled"), 1800, "the training run")
    shot(wiz, out, "5_run_finished")
    if wiz.run_page.state != "finished":
        print("run failed:", wiz.run_page.stage_label.text())
        return 1
    wiz.next()
    pump(lambda: wiz.results_page.comparison is not None, 900, "the comparison")
    shot(wiz, out, "6_results")
    wiz.results_page.promote_button.click()
    pump(lambda: wiz.results_page.decision is not None, 300, "the promotion")
    shot(wiz, out, "6_results_promoted")
    wiz.accept()

    dlg = ModelManagerDialog(store)
    dlg.show()
    pump(lambda: dlg.entries and not dlg.busy, 120, "the model list")
    ref = wiz.outcome["model"]
    dlg.select(ref)
    shot(dlg, out, "manager")
    dlg.close()

    # a cancelled run, then the wizard reopened: it offers to resume
    wiz2 = TrainingWizard(store)
    wiz2.show()
    pump(lambda: wiz2.env is not None and wiz2.data_page.summary is not None, 300, "the data page")
    wiz2.next()
    wiz2.model_page.arch_buttons["vgg16"].click()
    wiz2.next()
    wiz2.next()
    fast(wiz2.settings_page)
    wiz2.settings_page.input_size.setValue(32)
    wiz2.settings_page.vgg_frozen.setValue(4)
    wiz2.runEvent.connect(lambda e: wiz2.cancel_run() if isinstance(e, ev.StepDone) and e.step >= 2 else None)
    answer_dialog("Start training")
    wiz2.button(QWizard.WizardButton.CommitButton).click()
    pump(lambda: wiz2.run_page.state in ("cancelled", "finished", "failed"), 900, "the cancel")
    shot(wiz2, out, "5_run_cancelled")
    wiz2.reject()
    wiz3 = TrainingWizard(store)
    wiz3.show()
    pump(lambda: wiz3.env is not None and wiz3.data_page.summary is not None, 300, "the data page")
    pump(lambda: wiz3.data_page.near is not None, 600, "the near-duplicate check")
    shot(wiz3, out, "1_data_resume")
    wiz3.reject()
    from busviewer.gui import workers

    workers.shutdown()
    print("errors:", wiz.errors + wiz2.errors + wiz3.errors, dlg.last_error)
    store.close()
    QApplication.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else str(REPO / "out" / "screens")))
