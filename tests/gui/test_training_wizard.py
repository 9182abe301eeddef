"""The training wizard on a tiny synthetic store: real widgets, real training (CPU, 64 px,
two steps per epoch), the locked test set, cancel/resume across wizard instances, promote,
roll back, and the data page's warnings."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from gui_helpers import answer_dialog, link_models
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard
from synthetic import blob_image

from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.store import Store

TRAIN_TIMEOUT = 240_000


# ---------------------------------------------------------------------------- data
def write_dataset(root: Path, patients: dict[str, list[str]], seed: int = 0) -> Path:
    """PNGs and a manifest ``image,label,patient_id``; ``patients`` maps id -> image labels."""
    rng = np.random.default_rng(seed)
    rows = []
    for pid, labels in patients.items():
        for k, label in enumerate(labels):
            name = f"images/{pid}/{label} ({k + 1}).png"
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(blob_image(rng, label == "malignant")).save(root / name)
            rows.append((name, label, pid))
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", "patient_id"])
        w.writerows(rows)
    return manifest


def import_into(store: Store, manifest: Path) -> None:
    from busviewer.core.importer import import_paths

    report = import_paths(store, [manifest])
    assert not report.problems, report.summary()


def balanced(n: int, prefix: str = "P", per: int = 2) -> dict[str, list[str]]:
    return {f"{prefix}{i:03d}": ["malignant" if i % 2 else "benign"] * per for i in range(n)}


@pytest.fixture
def ws(styled_app, model_files: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A store with 16 patients (8 benign, 8 malignant, 2 images each) and a registry whose
    random-weight test models (input 64) are active."""
    from busviewer.ai.registry import ModelRegistry

    models = link_models(model_files, tmp_path / "models")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    store = Store(tmp_path / "store.sqlite")
    import_into(store, write_dataset(tmp_path / "data", balanced(16)))
    yield SimpleNamespace(
        store=store, root=tmp_path, models=models, factory=lambda: ModelRegistry(user_dir=models, shipped_dir=shipped)
    )
    store.close()


def open_wizard(ws, qtbot):  # type: ignore[no-untyped-def]
    from busviewer.gui.training_wizard import TrainingWizard

    wiz = TrainingWizard(ws.store, registry_factory=ws.factory)
    qtbot.addWidget(wiz)
    wiz.show()
    qtbot.waitUntil(lambda: wiz.env is not None and wiz.data_page.summary is not None, timeout=60_000)
    return wiz


def press(
    qtbot,
    wiz,  # type: ignore[no-untyped-def]
    which: QWizard.WizardButton = QWizard.WizardButton.NextButton,
) -> None:
    button = wiz.button(which)
    assert button.isVisible() and button.isEnabled(), f"{which} is not available on page {wiz.currentId()}"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def fast_settings(sp) -> None:  # type: ignore[no-untyped-def]
    """Tiny but real: seed recipe (staged ensemble), 64 px, 2 epochs of 2 steps per stage, most of the
    ensemble frozen, CPU."""
    assert sp.recipe.currentData() == "busviewer"  # the default
    assert sp.lr.value() == pytest.approx(1e-3)
    sp.recipe.setCurrentIndex(sp.recipe.findData("seed"))
    assert sp.lr.value() == pytest.approx(1e-4) and sp.config_values()["recipe"] == "seed"
    sp.epochs.setValue(2)
    sp.patience.setValue(2)
    sp.batch_size.setValue(8)
    sp.input_size.setValue(64)
    if not sp.advanced.isVisible():
        sp.advanced_toggle.click()
    assert sp.advanced.isVisible()
    sp.freezing.setCurrentIndex(sp.freezing.findData("custom"))
    sp.alexnet_last.setValue(1)
    sp.resnet_frozen.setValue(6)
    sp.device.setCurrentIndex(sp.device.findData("cpu"))
    sp.max_steps.setValue(2)


def walk_to_training(wiz, qtbot, locked_fraction: int = 25) -> None:  # type: ignore[no-untyped-def]
    from busviewer.gui.training_wizard import PAGE_MODEL, PAGE_RUN, PAGE_SETTINGS, PAGE_VALIDATION

    press(qtbot, wiz)
    assert wiz.currentId() == PAGE_MODEL
    mp = wiz.model_page
    mp.arch_buttons["ensemble"].click()
    assert not mp.bse_radio.isEnabled() and "not store" in mp.bse_radio.toolTip()
    mp.init_random.click()
    press(qtbot, wiz)
    assert wiz.currentId() == PAGE_VALIDATION
    vp = wiz.validation_page
    if wiz.locked is None:
        vp.locked_fraction.setValue(locked_fraction)
        qtbot.mouseClick(vp.create_locked_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: wiz.locked is not None and not wiz.locked_busy, timeout=30_000)
    assert not vp.create_locked_button.isEnabled()
    vp.holdout_radio.click()
    vp.val_fraction.setValue(25)
    assert vp.preview_ok, vp.preview_label.text()
    press(qtbot, wiz)
    assert wiz.currentId() == PAGE_SETTINGS
    fast_settings(wiz.settings_page)
    answer_dialog("Start training")  # the confirmation with the estimate
    press(qtbot, wiz, QWizard.WizardButton.CommitButton)
    assert wiz.currentId() == PAGE_RUN


def split_parts(run_dir: Path) -> dict[str, list[str]]:
    d = json.loads((run_dir / "split.json").read_text(encoding="utf-8"))
    return d["parts"] | {"folds": d.get("folds", [])}


def assert_locked_respected(run_dir: Path, locked, present: set[str]) -> None:  # type: ignore[no-untyped-def]
    parts = split_parts(run_dir)
    lk = set(locked.patients)
    assert set(parts["test"]) == lk & present
    assert not lk & (set(parts["train"]) | set(parts["val"]))
    for f in parts["folds"]:
        assert not lk & (set(f["train"]) | set(f["val"]) | set(f["test"]))


# --------------------------------------------------------------------------- tests
def test_train_promote_and_roll_back(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    from busviewer.gui.model_manager import ModelManagerDialog
    from busviewer.gui.training_wizard import PAGE_RESULTS
    from busviewer.services.training_runs import fmt_metric
    from busviewer.training.locked_test import load_locked_test

    wiz = open_wizard(ws, qtbot)
    dp = wiz.data_page
    assert dp.summary.n_patients == 16 and dp.summary.images_per_class == {"benign": 16, "malignant": 16}
    assert dp.table.rowCount() == 16 and "16 of 16 patients used" in dp.patient_count.text()
    assert not dp.resume_box.isVisible()
    # leave one patient out through its check box, then take it back
    dp.set_patient_used("P015", False)
    qtbot.waitUntil(lambda: dp.summary.n_patients == 15, timeout=5_000)
    assert "P015" not in dp.summary.selected_patients
    dp.set_patient_used("P015", True)
    qtbot.waitUntil(lambda: dp.summary.n_patients == 16, timeout=5_000)

    walk_to_training(wiz, qtbot)
    rp = wiz.run_page
    qtbot.waitUntil(lambda: rp.state in ("finished", "failed", "cancelled"), timeout=TRAIN_TIMEOUT)
    assert rp.state == "finished", rp.stage_label.text()
    assert wiz.isVisible() and not wiz.isModal()
    assert len(rp._hist["x"]) >= 3 and rp.progress.value() == 1000
    assert "CPU" in rp.device_label.text()
    run_dir = wiz.run_dir
    new_ref = wiz.outcome["model"]
    assert new_ref and new_ref.startswith("ensemble:")
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))

    # the locked test set: persisted, and exactly the run's test part
    locked = load_locked_test()
    assert locked is not None and len(locked.patients) == 4
    assert_locked_respected(run_dir, locked, {f"P{i:03d}" for i in range(16)})

    press(qtbot, wiz)
    assert wiz.currentId() == PAGE_RESULTS
    res = wiz.results_page
    qtbot.waitUntil(lambda: res.comparison is not None, timeout=120_000)
    assert res.comparison.get("model") == "test-ensemble:1", res.comparison
    assert res.banner.text().endswith(RESEARCH_NOTICE) and res.banner.isVisible()
    for level in ("image", "patient"):
        for key in ("accuracy", "sensitivity", "specificity", "precision", "f1", "auc", "n"):
            want = metrics["test"][level][key]
            assert res.metric_value("new", level, key) == want, (level, key)
            assert res.metric_text("new", level, key) == fmt_metric(want)
            active = res.comparison["report"][level][key]
            assert res.metric_value("active", level, key) == active
    assert res.metric_value("active", "image", "n") == metrics["test"]["image"]["n"]  # same test images
    cm = metrics["test"]["image"]["confusion_matrix"]
    assert [[int(res.cm_new.item(r, c).text()) for c in range(2)] for r in range(2)] == cm
    roc = metrics["test"]["image"]["roc"]
    if roc:
        x, y = res.roc_new.getData()
        assert list(x) == pytest.approx(roc["fpr"]) and list(y) == pytest.approx(roc["tpr"])
    cal = metrics["calibration"]  # the reliability diagram and operating points next to the ROC
    assert res.reliability.summary_text().startswith(f"Temperature {cal['temperature']:.3f}")
    after = [b for b in cal["test"]["reliability"]["after"] if b["count"]]
    assert list(res.reliability.after.getData()[0]) == pytest.approx([b["mean_predicted"] for b in after])

    # promote: active changes, audited
    with qtbot.waitSignal(wiz.decisionDone, timeout=60_000):
        qtbot.mouseClick(res.promote_button, Qt.MouseButton.LeftButton)
    assert res.decision == "promoted"
    assert ws.factory().active("ensemble").ref == new_ref
    audit = [a for a in ws.store.audit_log(entity="model") if a.action == "promote_model"]
    assert audit and (audit[-1].field, audit[-1].old_value, audit[-1].new_value) == (
        "ensemble",
        "test-ensemble:1",
        new_ref,
    )
    press(qtbot, wiz, QWizard.WizardButton.FinishButton)
    assert not wiz.isVisible()

    # roll back in the model manager
    dlg = ModelManagerDialog(ws.store, registry_factory=ws.factory)
    qtbot.addWidget(dlg)
    with qtbot.waitSignal(dlg.refreshed, timeout=30_000):
        dlg.show()
    dlg.select(new_ref)
    assert dlg.rollback_button.isEnabled() and "test-ensemble v1" in dlg.rollback_button.text()
    assert not dlg.delete_button.isEnabled()  # the promoted model is active now
    with qtbot.waitSignal(dlg.refreshed, timeout=60_000):
        qtbot.mouseClick(dlg.rollback_button, Qt.MouseButton.LeftButton)
    assert ws.factory().active("ensemble").ref == "test-ensemble:1"
    last = ws.store.audit_log(entity="model")[-1]
    assert (last.action, last.old_value, last.new_value) == ("rollback_model", new_ref, "test-ensemble:1")
    dlg.select(new_ref)
    assert dlg.delete_button.isEnabled()  # no longer active
    assert not dlg.rollback_button.isEnabled()  # nothing earlier than test-ensemble:1 recorded
    dlg.close()


def test_cancel_then_resume_in_a_new_wizard(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    from busviewer.gui.training_wizard import PAGE_RUN, TrainingWizard
    from busviewer.services.training_runs import list_resumable_runs
    from busviewer.training import events as ev
    from busviewer.training.locked_test import load_locked_test

    before = sorted(e.ref for e in ws.factory().list())
    wiz = open_wizard(ws, qtbot)

    def cancel_on_first_epoch(e) -> None:  # type: ignore[no-untyped-def]
        if isinstance(e, ev.EpochDone) and wiz.run_page.cancel_button.isEnabled():
            qtbot.mouseClick(wiz.run_page.cancel_button, Qt.MouseButton.LeftButton)

    wiz.runEvent.connect(cancel_on_first_epoch)
    walk_to_training(wiz, qtbot, locked_fraction=25)
    rp = wiz.run_page
    qtbot.waitUntil(lambda: rp.state in ("cancelled", "finished", "failed"), timeout=TRAIN_TIMEOUT)
    assert rp.state == "cancelled"
    run_dir = wiz.run_dir
    assert sorted(e.ref for e in ws.factory().list()) == before  # nothing registered
    assert (run_dir / "config.json").is_file() and not (run_dir / "registered.json").exists()
    assert list(run_dir.glob("final/checkpoint.safetensors"))
    assert rp.resume_button.isVisible()
    assert [r.run_dir for r in list_resumable_runs()] == [run_dir]
    # "Resume" on the run page continues it (here cancelled again at once)
    wiz.runEvent.disconnect(cancel_on_first_epoch)
    qtbot.mouseClick(rp.resume_button, Qt.MouseButton.LeftButton)
    assert rp.state == "starting" and wiz.training_running()
    qtbot.mouseClick(rp.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: rp.state == "cancelled" and not wiz.training_running(), timeout=TRAIN_TIMEOUT)
    assert sorted(e.ref for e in ws.factory().list()) == before
    assert [r.run_dir for r in list_resumable_runs()] == [run_dir]
    locked = load_locked_test()
    wiz.close()
    qtbot.waitUntil(lambda: not wiz.isVisible(), timeout=5_000)

    # new patients arrive; they never join the locked test set
    import_into(ws.store, write_dataset(ws.root / "more", balanced(4, prefix="Q"), seed=5))

    # "the app is reopened": a new wizard offers to resume the run
    wiz2 = TrainingWizard(ws.store, registry_factory=ws.factory)
    qtbot.addWidget(wiz2)
    wiz2.show()
    qtbot.waitUntil(lambda: wiz2.env is not None, timeout=60_000)
    dp = wiz2.data_page
    assert dp.resume_box.isVisible() and dp.resume_combo.currentData() == str(run_dir)
    assert "cancelled" in dp.resume_combo.currentText()
    qtbot.mouseClick(dp.resume_button, Qt.MouseButton.LeftButton)
    assert wiz2.currentId() == PAGE_RUN
    assert (
        not wiz2.button(QWizard.WizardButton.BackButton).isEnabled()
        or not wiz2.button(QWizard.WizardButton.BackButton).isVisible()
    )
    rp2 = wiz2.run_page
    qtbot.waitUntil(lambda: rp2.state in ("finished", "failed", "cancelled"), timeout=TRAIN_TIMEOUT)
    assert rp2.state == "finished", rp2.stage_label.text()
    started = [e for e in rp2.events if isinstance(e, ev.RunStarted)]
    assert started and started[0].resumed
    ref = wiz2.outcome["model"]
    assert ref in {e.ref for e in ws.factory().list()} and (run_dir / "registered.json").is_file()
    assert not ws.factory().get(ref).active  # registered, never activated silently
    assert list_resumable_runs() == []

    # the locked test set is unchanged and respected; the new patients are not in it
    again = load_locked_test()
    assert again == locked and not {p for p in again.patients if p.startswith("Q")}
    assert_locked_respected(run_dir, locked, {f"P{i:03d}" for i in range(16)})
    qtbot.waitUntil(lambda: wiz2.validation_page.create_locked_button is not None, timeout=1_000)
    assert wiz2.create_locked_test() is None  # never replaced without a reset
    wiz2.validation_page.update_locked()
    assert not wiz2.validation_page.create_locked_button.isEnabled()
    assert f"{len(locked.patients)} patients" in wiz2.validation_page.locked_label.text()
    # reset needs an explicit confirmation and is audited
    wiz2.confirm = lambda *a, **k: False  # type: ignore[method-assign]
    assert wiz2.reset_locked_test() is None and load_locked_test() == locked
    wiz2.confirm = lambda *a, **k: True  # type: ignore[method-assign]
    with qtbot.waitSignal(wiz2.lockedChanged, timeout=10_000, check_params_cb=lambda *a: not wiz2.locked_busy):
        wiz2.reset_locked_test()
    assert load_locked_test() is None and wiz2.locked is None
    entry = [a for a in ws.store.audit_log(entity="locked_test") if a.action == "reset_locked_test"]
    assert entry and json.loads(entry[-1].old_value)["patients"] == list(locked.patients)
    wiz2.close()


def test_data_page_warnings(
    styled_app,
    model_files: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    qtbot,
) -> None:
    from busviewer.ai.registry import ModelRegistry
    from busviewer.gui.training_wizard import TrainingWizard

    patients = {f"B{i:02d}": ["benign", "benign"] for i in range(16)}
    patients |= {f"M{i:02d}": ["malignant"] for i in range(4)}
    patients["MIX"] = ["benign", "malignant"]  # conflicting labels
    manifest = write_dataset(tmp_path / "data", patients, seed=3)
    images = tmp_path / "data" / "images"
    # near-duplicate across patients: B01's image with a little noise, filed under B02
    src = np.asarray(Image.open(images / "B01" / "benign (1).png"), dtype=np.float32)
    noisy = np.clip(src + np.random.default_rng(9).normal(0, 2, src.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(images / "B02" / "benign (3).png")
    # exact duplicate across patients: B03's file copied to B04
    shutil.copy(images / "B03" / "benign (1).png", images / "B04" / "benign (3).png")
    with open(manifest, "a", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(
            [("images/B02/benign (3).png", "benign", "B02"), ("images/B04/benign (3).png", "benign", "B04")]
        )
    store = Store(tmp_path / "store.sqlite")
    try:
        import_into(store, manifest)
        shipped = tmp_path / "shipped"
        shipped.mkdir()
        models = link_models(model_files, tmp_path / "models")
        wiz = TrainingWizard(store, registry_factory=lambda: ModelRegistry(user_dir=models, shipped_dir=shipped))
        qtbot.addWidget(wiz)
        with qtbot.waitSignal(wiz.nearDuplicatesDone, timeout=60_000):
            wiz.show()
        dp = wiz.data_page
        qtbot.waitUntil(lambda: dp.summary is not None, timeout=30_000)
        kinds = dp.warning_kinds()
        assert {"too_few_patients", "imbalance", "conflicting_labels", "near_duplicates", "exact_duplicates"} <= set(
            kinds
        ), kinds
        texts = {w.kind: w.text for w in dp.warnings}
        assert "MIX" in texts["conflicting_labels"]
        assert "B01" in texts["near_duplicates"] and "B02" in texts["near_duplicates"]
        assert "B03" in texts["exact_duplicates"] and "B04" in texts["exact_duplicates"]
        assert "(fewer than 20 per class)" in texts["too_few_patients"]
        assert "16 benign vs 5 malignant patients" in texts["imbalance"]
        shown = [lab.text() for lab in dp.warnings_widget.findChildren(type(dp.summary_label)) if lab.property("kind")]
        assert len(shown) == len(kinds)
        assert dp.isComplete()  # warnings inform, they do not block
        # leaving the mixed patient out removes its warning
        dp.set_patient_used("MIX", False)
        qtbot.waitUntil(lambda: "conflicting_labels" not in dp.warning_kinds(), timeout=5_000)
        # no malignant images at all blocks the wizard
        dp.search.setText("M")
        dp.exclude_shown.click()
        qtbot.waitUntil(lambda: not dp.isComplete(), timeout=5_000)
        assert "no_data" in dp.warning_kinds()
        assert not wiz.button(QWizard.WizardButton.NextButton).isEnabled()
        wiz.close()
    finally:
        store.close()
