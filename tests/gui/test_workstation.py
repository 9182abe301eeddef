"""The review workstation end to end with the real store, importer, analyzer and report.

One window (module scope) with random-weight models of input size 64: import a study,
open patients, AI results via worker signals, Grad-CAM, ROIs, keyboard labels, cine,
PDF export, and a GUI-thread heartbeat while inference runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from gui_helpers import close_window, drag, key, link_models, make_study, pump_until, view_point
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication

from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.store import Store
from busviewer.gui.main_window import MainWindow


@pytest.fixture(scope="module")
def ws(styled_app, model_files: Path, dicom_2frame: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from busviewer.ai.registry import ModelRegistry

    root = tmp_path_factory.mktemp("workstation")
    models = link_models(model_files, root / "models")
    shipped = root / "shipped"
    shipped.mkdir()
    store = Store(root / "store.sqlite")
    window = MainWindow(store, registry_factory=lambda: ModelRegistry(user_dir=models, shipped_dir=shipped))
    window.ai_panel.auto.setChecked(True)
    window.show()
    window.start()
    pump_until(lambda: window.models_state == "ready", 120, "the models to load")
    yield SimpleNamespace(window=window, store=store, root=root, study=make_study(root / "study", dicom_2frame))
    close_window(window)
    store.close()


def _row_rect_centre(window: MainWindow, patient_key: str) -> QPoint:
    wl = window.worklist
    row = wl.model.row_of(patient_key)
    idx = wl.proxy.mapFromSource(wl.model.index(row, 0))
    return wl.table.visualRect(idx).center()


def test_models_status_and_notice(ws) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    assert "test-ensemble v1" in w.model_status.text() and "test-vgg v1" in w.model_status.text()
    assert "cpu" in w.model_status.text()
    assert w.status_notice.text() == RESEARCH_NOTICE and w.status_notice.isVisible()
    assert RESEARCH_NOTICE in w.ai_panel.banner.text() and w.ai_panel.banner.isVisible()
    checked = [a.text() for a in w.arch_menus["ensemble"].actions() if a.isChecked()]
    assert checked and checked[0].startswith("test-ensemble v1")


def test_import_study(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    with qtbot.waitSignal(w.importFinished, timeout=60_000) as blocker:
        w.import_paths(ws.study)
    report = blocker.args[0]
    assert report.added == 6 and not report.problems, report.summary()
    qtbot.waitUntil(lambda: w.worklist.model.rowCount() == 3, timeout=10_000)
    keys = {p.patient_key for p in w.worklist.model.patients()}
    assert {"PAT-A", "PAT-B"} <= keys
    assert w.worklist.proxy.index(0, 1).data() in (1, 2, 3)  # image count column


def test_open_patient_runs_analysis(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    with qtbot.waitSignal(w.analysisFinished, timeout=60_000) as blocker:
        qtbot.mouseClick(w.worklist.table.viewport(), Qt.MouseButton.LeftButton, pos=_row_rect_centre(w, "PAT-A"))
    analysis = blocker.args[0]
    assert w.patient_key == "PAT-A" and analysis.patient_key == "PAT-A"
    assert set(analysis.verdicts) == {"ensemble", "vgg16"}
    qtbot.waitUntil(lambda: w.viewer.image is not None, timeout=20_000)
    assert w.thumbnails.count() == 3
    panel = w.ai_panel
    from busviewer.gui.ai_panel import ID_ROLE

    for row in range(3):
        image_id = panel.table.item(row, 0).data(ID_ROLE)
        for col, arch in ((1, "ensemble"), (2, "vgg16")):
            text = panel.table.item(row, col).text()
            assert text[0] in "BM?" and 0.0 <= float(text.split()[1]) <= 1.0
            assert (text[0] == "?") == analysis.is_indeterminate(image_id, arch)  # in the indeterminate band
    for arch, card in panel.cards.items():
        v = analysis.verdicts[arch]
        assert card.verdict.text() == v.label.upper()
        assert f"{v.malignant_votes} malignant, {v.benign_votes} benign" in card.detail.text()
        assert card.tie.isVisible() == v.tie_decided  # 3 images: no tie possible
    assert panel.disagree.isVisible() == bool(
        analysis.disagreements or len({v.label for v in analysis.verdicts.values()}) > 1
    )
    verdict_cell = w.worklist.model.verdict("PAT-A")
    assert analysis.verdicts["ensemble"].label in verdict_cell
    stored = ws.store.latest_predictions([r.id for r in w.records])
    assert len(stored) == 6  # 3 images x 2 models, each with sha256 and image hash
    assert all(p.model_sha256 and p.image_hash for p in stored.values())


def test_tie_note_and_disagreement_flag(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    """PAT-B has 2 images: shown through the panel with a synthetic tied, split analysis."""
    w = ws.window
    with qtbot.waitSignal(w.analysisFinished, timeout=60_000):
        w.open_patient("PAT-B")
    ids = [r.id for r in w.records]
    from busviewer.ai.analysis import ImagePrediction, ModelVerdict, PatientAnalysis

    def pred(i: int, arch: str, p: float) -> ImagePrediction:
        return ImagePrediction(
            i, 0, None, arch, "m", 1, {"benign": 1 - p, "malignant": p}, p, "malignant" if p >= 0.5 else "benign"
        )

    preds = {
        (ids[0], "ensemble"): pred(ids[0], "ensemble", 0.9),
        (ids[1], "ensemble"): pred(ids[1], "ensemble", 0.2),
        (ids[0], "vgg16"): pred(ids[0], "vgg16", 0.1),
        (ids[1], "vgg16"): pred(ids[1], "vgg16", 0.3),
    }
    verdicts = {
        "ensemble": ModelVerdict("ensemble", "malignant", 1, 1, True, 0.55, (ids[1],), (ids[0],)),
        "vgg16": ModelVerdict("vgg16", "benign", 2, 0, False, 0.2, tuple(ids), ()),
    }
    w.ai_panel.show_analysis(PatientAnalysis("PAT-B", preds, verdicts, (ids[0],)))
    assert w.ai_panel.cards["ensemble"].tie.isVisible()
    assert "Tie: counted as malignant" in w.ai_panel.cards["ensemble"].tie.text()
    assert not w.ai_panel.cards["vgg16"].tie.isVisible()
    assert w.ai_panel.disagree.isVisible() and "disagree" in w.ai_panel.disagree.text()
    assert "Malignant: #1" in w.ai_panel.cards["ensemble"].detail.text()
    assert "Benign: #2" in w.ai_panel.cards["ensemble"].detail.text()


def test_heartbeat_during_inference(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    """The GUI thread keeps ticking (max gap < 200 ms) while the models run."""
    w = ws.window
    w.open_patient("PAT-A")
    qtbot.waitUntil(lambda: w._analysis_task is None, timeout=60_000)
    beats: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    timer.start()
    try:
        for _ in range(3):
            with qtbot.waitSignal(w.analysisFinished, timeout=60_000):
                key(w, Qt.Key.Key_A)  # the "Analyse" shortcut
            with qtbot.waitSignal(w.camShown, timeout=60_000):
                w.cams.clear()
                w.ai_panel.cam.enabled.setChecked(True)
                w._refresh_cam()
            w.ai_panel.cam.enabled.setChecked(False)
    finally:
        timer.stop()
    gaps = np.diff(beats)
    assert len(beats) > 10
    assert gaps.max() < 0.2, f"GUI thread blocked for {gaps.max() * 1000:.0f} ms"


def test_gradcam_overlay(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    w.open_patient("PAT-A")
    qtbot.waitUntil(lambda: w.viewer.image is not None and w._analysis_task is None, timeout=60_000)
    w.cams.clear()
    with qtbot.waitSignal(w.camShown, timeout=60_000) as blocker:
        key(w, Qt.Key.Key_G)
    assert blocker.args == [w.current_image_id, "ensemble"]
    assert w.viewer.cam_item.isVisible()
    cam = w.viewer.cam_item.image
    h, wd = w.viewer.image.frames.shape[1:3]
    assert cam.shape == (h, wd) and float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0
    w.ai_panel.cam.opacity.setValue(20)
    assert abs(w.viewer.cam_item.opacity() - 0.2) < 1e-6
    with qtbot.waitSignal(w.camShown, timeout=60_000) as blocker:
        w.ai_panel.cam.model.setCurrentIndex(w.ai_panel.cam.model.findData("vgg16"))
    assert blocker.args[1] == "vgg16"
    assert w.ai_panel.cam.colorbar.isVisible()
    key(w, Qt.Key.Key_G)
    assert not w.viewer.cam_item.isVisible()


def test_draw_save_classify_delete_roi(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    w.open_patient("PAT-A")
    qtbot.waitUntil(lambda: w.viewer.image is not None and w._analysis_task is None, timeout=60_000)
    image_id = w.current_image_id
    before = len(ws.store.rois(image_id))
    qtbot.mouseClick(w.rois.draw_button, Qt.MouseButton.LeftButton)
    assert w.viewer.view.mode == "roi"
    vp = w.viewer.graphics.viewport()
    drag(vp, view_point(w.viewer, 40, 30), view_point(w.viewer, 110, 90))
    rois = ws.store.rois(image_id)
    assert len(rois) == before + 1
    roi = rois[-1]
    assert abs(roi.x0 - 40) <= 2 and abs(roi.y0 - 30) <= 2 and abs(roi.x1 - 110) <= 2 and abs(roi.y1 - 90) <= 2
    assert w.viewer.view.mode == "navigate"
    assert roi.id in w.rois.items and w.rois.selected_id() == roi.id
    # move it: the change is saved (and audited) at once
    item = w.rois.items[roi.id]
    item.setPos((50, 35), finish=True)
    moved = ws.store.roi(roi.id)
    assert (moved.x0, moved.y0) == (50, 35)
    assert [a.action for a in ws.store.audit_log("roi", roi.id)] == ["add_roi", "update_roi"]
    # a second ROI on the same image
    second = w.rois.add_roi((5, 5, 30, 30))
    assert second is not None and len(ws.store.rois(image_id)) == before + 2
    w.rois.select(roi.id)
    with qtbot.waitSignal(w.roiClassified, timeout=60_000) as blocker:
        qtbot.mouseClick(w.rois.classify_button, Qt.MouseButton.LeftButton)
    rid, result = blocker.args
    assert rid == roi.id and set(result) == {"ensemble", "vgg16"}
    assert all(p.roi_id == roi.id for p in result.values())
    assert "Ens" in w.rois.list.currentItem().text() and "VGG" in w.rois.list.currentItem().text()
    stored = ws.store.latest_predictions([image_id], roi_id=roi.id)
    assert len(stored) == 2
    w.rois.select(second.id)
    qtbot.mouseClick(w.rois.delete_button, Qt.MouseButton.LeftButton)
    assert [r.id for r in ws.store.rois(image_id)][-1] == roi.id
    assert second.id not in w.rois.items
    assert ws.store.audit_log("roi", second.id)[-1].action == "delete_roi"


def test_keyboard_labels_navigation_review(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    w.open_patient("PAT-A")
    qtbot.waitUntil(lambda: w.viewer.image is not None, timeout=30_000)
    w.worklist.table.setFocus()  # the shortcuts work wherever the focus is (but text fields)
    ids = [r.id for r in w.records]
    assert w.current_image_id == ids[0]
    key(w.worklist.table, Qt.Key.Key_B)
    assert ws.store.image(ids[0]).labels["reader"].label == "benign"
    key(w.worklist.table, Qt.Key.Key_Right)
    assert w.current_image_id == ids[1]
    key(w.worklist.table, Qt.Key.Key_M)
    assert ws.store.image(ids[1]).labels["reader"].label == "malignant"
    key(w.worklist.table, Qt.Key.Key_Left)
    assert w.current_image_id == ids[0]
    key(w.worklist.table, Qt.Key.Key_M)  # change of mind: audited with old and new values
    log = [a for a in ws.store.audit_log("image", ids[0]) if a.action == "set_label"]
    assert [(a.field, a.old_value, a.new_value) for a in log[-2:]] == [
        ("label[reader]", None, "benign"),
        ("label[reader]", "benign", "malignant"),
    ]
    assert log[-1].user
    assert w.labels.image.buttons["malignant"].isChecked()
    assert "malignant" in w.thumbnails.item(0).text()
    # the patient becomes reviewed with R, and the worklist shows it
    key(w.worklist.table, Qt.Key.Key_R)
    assert ws.store.patient("PAT-A").reviewed
    row = w.worklist.model.row_of("PAT-A")
    assert w.worklist.model.index(row, 4).data() == "✓"
    assert "Reviewed" in w.worklist.model.index(row, 4).data(Qt.ItemDataRole.ToolTipRole)
    assert ws.store.audit_log("patient")[-1].action == "review"
    # next / previous patient
    before = w.patient_key
    key(w.worklist.table, Qt.Key.Key_Down)
    assert w.patient_key != before
    key(w.worklist.table, Qt.Key.Key_Up)
    assert w.patient_key == before
    qtbot.waitUntil(lambda: w._analysis_task is None, timeout=60_000)


def test_label_panel_biopsy_birads_note(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    w.open_patient("PAT-B")
    qtbot.waitUntil(lambda: w.viewer.image is not None, timeout=30_000)
    image_id = w.current_image_id
    editor = w.labels.image
    qtbot.mouseClick(editor.buttons["benign"], Qt.MouseButton.LeftButton)
    editor.birads.setCurrentIndex(editor.birads.findData("3"))
    editor.note.setText("smooth margins")
    editor.note.editingFinished.emit()
    lab = ws.store.image(image_id).labels["reader"]
    assert (lab.label, lab.birads, lab.note) == ("benign", "3", "smooth margins")
    editor.biopsy.setChecked(True)
    labels = ws.store.image(image_id).labels
    assert labels["biopsy"].label == "benign" and labels["biopsy"].biopsy_confirmed
    assert ws.store.image(image_id).label.source == "biopsy"
    # the patient label
    qtbot.mouseClick(w.labels.patient.buttons["malignant"], Qt.MouseButton.LeftButton)
    assert ws.store.patient_label("PAT-B")["reader"].label == "malignant"
    qtbot.waitUntil(lambda: "malignant" in w.worklist.model.index(w.worklist.model.row_of("PAT-B"), 2).data())
    # typing "m" into the note must not relabel the image; the note is kept when moving on
    editor.note.setFocus()
    QApplication.processEvents()
    key(editor.note, Qt.Key.Key_End)
    key(editor.note, Qt.Key.Key_M)
    assert ws.store.image(image_id).labels["biopsy"].label == "benign"
    w.step_image(1)
    assert ws.store.image(image_id).labels["biopsy"].note == "smooth marginsm"
    qtbot.waitUntil(lambda: w._analysis_task is None, timeout=60_000)


def test_cine_dicom_and_caliper(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    dicom_key = next(p.patient_key for p in w.worklist.model.patients() if not p.patient_key.startswith("PAT-"))
    w.open_patient(dicom_key)
    qtbot.waitUntil(lambda: w.viewer.image is not None, timeout=30_000)
    v = w.viewer
    assert v.frame_count() == 2 and v.cine_bar.isVisible()
    assert not v.timer.isActive()
    v.graphics.setFocus()  # the reader clicks on the image, then plays the loop with Space
    frames: list[int] = []
    v.frameChanged.connect(frames.append)
    key(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: len(frames) >= 2, timeout=5_000)
    assert v.is_playing() and v.timer.interval() == v.frame_interval_ms()
    key(w, Qt.Key.Key_Space)
    assert not v.is_playing()
    v.frame_slider.setValue(0)
    assert v.frame == 0
    # the caliper measures in mm inside the calibrated ultrasound region
    qtbot.mouseClick(v.caliper_button, Qt.MouseButton.LeftButton)
    drag(v.graphics.viewport(), view_point(v, 200, 100), view_point(v, 500, 400))
    assert "mm" in v.caliper_text and "ultrasound region" in v.caliper_text
    (x0, y0), (x1, y1) = v._caliper.points()
    delta = 0.26228787661969977
    expected = float(np.hypot((x1 - x0) * delta, (y1 - y0) * delta))
    assert f"{expected:.2f} mm" in v.caliper_text
    assert "x " in v.describe_point(300, 200) and "µm/px" in v.describe_point(300, 200)
    v.set_mode("navigate")
    v.clear_caliper()
    # window/level and zoom buttons
    v.set_window_level(100, 60)
    assert tuple(v.image_item.levels) == (10.0, 110.0)
    v.reset_levels()
    qtbot.mouseClick(v.one_button, Qt.MouseButton.LeftButton)
    assert abs(v.zoom_factor() - 1.0) < 0.05
    qtbot.mouseClick(v.fit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w._analysis_task is None, timeout=60_000)


def test_search_filter(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    qtbot.keyClicks(w.worklist.search, "pat-b")
    assert w.worklist.proxy.rowCount() == 1
    w.worklist.search.clear()
    w.worklist.state.setCurrentText("Reviewed")
    assert w.worklist.proxy.rowCount() == 1  # PAT-A was marked reviewed
    w.worklist.state.setCurrentText("All patients")
    assert w.worklist.proxy.rowCount() == 3


def test_export_pdf(ws, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    w.open_patient("PAT-A")
    qtbot.waitUntil(lambda: w.viewer.image is not None and w._analysis_task is None, timeout=60_000)
    out = tmp_path / "PAT-A report.pdf"
    with qtbot.waitSignal(w.reportExported, timeout=120_000) as blocker:
        w.export_report(out)
    assert blocker.args[0] is not None, w.errors[-1:]
    assert out.is_file() and out.read_bytes()[:4] == b"%PDF"


def test_cancel_analysis(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    w.open_patient("PAT-A")
    qtbot.waitUntil(lambda: w._analysis_task is None, timeout=60_000)
    finished: list[object] = []
    w.analysisFinished.connect(finished.append)
    qtbot.mouseClick(w.ai_panel.analyse_button, Qt.MouseButton.LeftButton)
    assert w.ai_panel.progress.isVisible() and w.ai_panel.cancel_button.isVisible()
    qtbot.mouseClick(w.ai_panel.cancel_button, Qt.MouseButton.LeftButton)
    assert not w.ai_panel.progress.isVisible()
    from busviewer.gui import workers

    assert workers.wait_all(60_000)
    QApplication.processEvents()
    assert finished == [] and w._analysis_task is None
    assert w.ai_panel.analyse_button.isEnabled()


def test_activate_model_from_menu_is_audited(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    act = next(a for a in w.arch_menus["vgg16"].actions() if a.text().startswith("test-vgg v1"))
    with qtbot.waitSignal(w.modelsLoaded, timeout=120_000):
        act.trigger()
    assert w.models_state == "ready"
    entry = ws.store.audit_log("model")[-1]
    assert (entry.action, entry.new_value) == ("activate_model", "test-vgg:1")
    qtbot.waitUntil(lambda: w._analysis_task is None, timeout=60_000)


def test_import_of_a_bad_model_file_names_it(ws, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"PK\x03\x04 a torch.save zip, never unpickled")
    with qtbot.waitSignal(w.errorShown, timeout=60_000) as blocker:
        w.import_model(bad)
    assert blocker.args[0] == "Model not imported" and "weights.pt" in blocker.args[1]
    for box in QApplication.topLevelWidgets():
        if box.inherits("QMessageBox"):
            box.close()


def test_missing_source_file_is_reported(ws, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = ws.window
    missing = ws.root / "study" / "pngs" / "PAT-B" / "b2.png"
    missing.unlink()
    w._cache.clear()
    w._decode_errors.clear()
    w.open_patient("PAT-A")
    with qtbot.waitSignal(w.errorShown, timeout=60_000, check_params_cb=lambda t, m: "b2.png" in m) as blocker:
        w.open_patient("PAT-B")
        qtbot.waitUntil(lambda: len(w.records) == 2)
        w.show_image(w.records[1].id)
    assert "b2.png" in blocker.args[1]
    qtbot.waitUntil(lambda: "b2.png" in w.viewer.message.text(), timeout=30_000)
    assert w.viewer.message.isVisible()
    qtbot.waitUntil(lambda: w._analysis_task is None, timeout=60_000)
    assert w.isVisible()  # still running
    for box in QApplication.topLevelWidgets():
        if box.inherits("QMessageBox"):
            box.close()
