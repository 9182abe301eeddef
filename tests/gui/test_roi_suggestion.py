"""The suggested ROI in the workstation: shown dashed with Accept / Reject when an image
without ROIs is displayed; accepting (after moving it) stores an audited reader ROI and
classifies the crop; rejecting is logged and not asked again."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from gui_helpers import close_window, link_models, png, pump_until
from PySide6.QtCore import Qt

from busviewer.core.store import Store
from busviewer.gui.main_window import MainWindow
from busviewer.gui.roi_suggestion import SuggestedROI


@pytest.fixture(scope="module")
def sw(styled_app, model_files: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from busviewer.ai.registry import ModelRegistry
    from busviewer.core.importer import import_paths

    root = tmp_path_factory.mktemp("suggest")
    models = link_models(model_files, root / "models")
    (root / "shipped").mkdir()
    for i in range(3):
        png(root / "study" / "PAT-S" / f"s{i + 1}.png", seed=20 + i)
    store = Store(root / "store.sqlite")
    import_paths(store, [root / "study"])
    window = MainWindow(store, registry_factory=lambda: ModelRegistry(user_dir=models, shipped_dir=root / "shipped"))
    window.ai_panel.auto.setChecked(False)
    window.rois.suggestion.enabled.setChecked(True)
    window.show()
    window.start()
    pump_until(lambda: window.models_state == "ready", 120, "the models to load")
    yield SimpleNamespace(window=window, store=store)
    close_window(window)
    store.close()


def _wait_for_suggestion(qtbot, w: MainWindow, image_id: int) -> None:  # type: ignore[no-untyped-def]
    bar = w.rois.suggestion
    qtbot.waitUntil(lambda: (image_id, 0) in bar.done and not bar.pending, timeout=60_000)
    assert bar.suggestion is not None, bar.label.text()
    assert bar.suggestion.image_id == image_id


def test_accept_a_moved_suggestion_stores_an_audited_roi_and_classifies_it(sw, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = sw.window
    w.open_patient("PAT-S")
    qtbot.waitUntil(lambda: w.viewer.image is not None, timeout=20_000)
    image_id = w.current_image_id
    _wait_for_suggestion(qtbot, w, image_id)
    bar = w.rois.suggestion
    item = bar.item
    assert isinstance(item, SuggestedROI) and item in w.viewer.view.addedItems
    assert item.pen.style() == Qt.PenStyle.DashLine
    assert bar.accept_button.isVisible() and bar.reject_button.isVisible()
    assert "Ens" in item.caption.textItem.toPlainText()  # the CAM model chosen in the AI panel
    suggested = bar.suggestion.box
    assert tuple(item.box()) == suggested
    # the reader moves it a little, then accepts
    x0, y0, x1, y1 = suggested
    dx = -2 if x1 >= w.viewer.image_rect().width() - 1 else 2
    item.setPos((x0 + dx, y0), finish=True)
    with qtbot.waitSignal(w.roiClassified, timeout=60_000) as blocker:
        qtbot.mouseClick(bar.accept_button, Qt.MouseButton.LeftButton)
    roi_id, result = blocker.args
    (roi,) = sw.store.rois(image_id)
    assert roi.id == roi_id and roi.box == (x0 + dx, y0, x1 + dx, y1)
    assert set(result) == {"ensemble", "vgg16"} and all(p.roi_id == roi.id for p in result.values())
    log = sw.store.audit_log("roi", roi.id)
    assert [a.action for a in log] == ["add_roi", "accept_suggested_roi"]
    detail = json.loads(log[-1].new_value)
    assert detail["box"] == list(suggested) and detail["moved"] is True
    assert roi.id in w.rois.items and w.rois.selected_id() == roi.id
    assert bar.suggestion is None and bar.item is None and item not in w.viewer.view.addedItems
    assert not bar.accept_button.isVisible()


def test_reject_is_logged_and_not_asked_again(sw, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = sw.window
    w.open_patient("PAT-S")
    first = w.records[0].id
    second = w.records[1].id
    w.show_image(second)
    qtbot.waitUntil(lambda: w.viewer.image is not None and w.current_image_id == second, timeout=20_000)
    _wait_for_suggestion(qtbot, w, second)
    bar = w.rois.suggestion
    qtbot.mouseClick(bar.reject_button, Qt.MouseButton.LeftButton)
    assert bar.suggestion is None and sw.store.rois(second) == []
    entry = sw.store.audit_log("image", second)[-1]
    assert entry.action == "reject_suggested_roi" and json.loads(entry.old_value)["image_id"] == second
    # back and forth: neither the rejected image nor the one with an ROI gets a new suggestion
    for image_id in (first, second):
        w.show_image(image_id)
        qtbot.waitUntil(lambda i=image_id: w._displayed_id == i, timeout=20_000)
        # the image's ROIs load in a worker: once they are in, no suggestion is pending or shown
        qtbot.waitUntil(lambda: not bar.pending and bar.suggestion is None, timeout=20_000)


def test_switching_suggestions_off_and_on(sw, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = sw.window
    w.open_patient("PAT-S")
    third = w.records[2].id
    bar = w.rois.suggestion
    bar.enabled.setChecked(False)
    w.show_image(third)
    qtbot.waitUntil(lambda: w._displayed_id == third, timeout=20_000)
    assert not bar.pending and (third, 0) not in bar.done
    bar.enabled.setChecked(True)  # asks at once for the shown image
    _wait_for_suggestion(qtbot, w, third)
    bar.enabled.setChecked(False)
    assert bar.suggestion is None and bar.item is None
