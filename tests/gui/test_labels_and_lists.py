"""Issue 14: BI-RADS from the keyboard, the patient label box agrees with the worklist,
the ROI list wraps long rows instead of cutting them."""

from __future__ import annotations

from pathlib import Path

import pytest
from gui_helpers import key, png
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget

from busviewer.core.imageio import read_image_here
from busviewer.core.importer import import_paths
from busviewer.core.store import Store
from busviewer.gui.label_panel import LabelPanel
from busviewer.gui.roi import RoiPanel
from busviewer.gui.viewer import ImageViewer
from busviewer.gui.worklist import COL_LABEL, WorklistWidget


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    for i in range(2):
        png(tmp_path / "study" / "PAT-M" / f"m{i + 1}.png", seed=i)
    s = Store(tmp_path / "store.sqlite")
    import_paths(s, [tmp_path / "study"])
    for rec in s.images("PAT-M"):
        s.set_label("malignant", image_id=rec.id, source="import")
    yield s
    s.close()


@pytest.fixture
def panel(styled_app, qtbot, store: Store):  # type: ignore[no-untyped-def]
    top = QWidget()
    qtbot.addWidget(top)
    p = LabelPanel(store, top)
    QVBoxLayout(top).addWidget(p)
    top.show()
    qtbot.waitExposed(top)
    yield p
    top.close()


def test_birads_keyboard_shortcuts(panel, store: Store) -> None:  # type: ignore[no-untyped-def]
    rec = store.images("PAT-M")[0]
    panel.image.set_image(rec.id, rec.labels)
    panel.patient.set_patient("PAT-M", store.patient_label("PAT-M"))
    key(panel, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert "Choose benign or malignant first" in panel.image.info.text()
    assert store.image(rec.id).labels.get("reader") is None  # nothing saved without a label
    panel.image.apply_label("malignant")
    key(panel, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert store.image(rec.id).labels["reader"].birads == "4"
    key(panel, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    key(panel, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert store.image(rec.id).labels["reader"].birads == "4B"  # 4 again steps through 4A, 4B, 4C
    key(panel, Qt.Key.Key_5, Qt.KeyboardModifier.ControlModifier)
    assert store.image(rec.id).labels["reader"].birads == "5"
    panel.patient.apply_label("benign")
    key(panel, Qt.Key.Key_2, Qt.KeyboardModifier.AltModifier)
    assert store.patient_label("PAT-M")["reader"].birads == "2"
    assert store.image(rec.id).labels["reader"].birads == "5"  # Alt is the patient's, Ctrl the image's


def test_patient_box_says_what_the_worklist_shows(panel, store: Store, qtbot) -> None:  # type: ignore[no-untyped-def]
    wl = WorklistWidget()
    qtbot.addWidget(wl)
    wl.set_patients(store.patients())
    assert wl.model.index(0, COL_LABEL).data() == "malignant"
    panel.patient.set_patient("PAT-M", store.patient_label("PAT-M"))
    text = panel.patient.info.text()
    assert "Not labelled yet" not in text
    assert "No patient label yet" in text and "2 malignant" in text
    rec = store.images("PAT-M")[0]
    panel.image.set_image(rec.id, rec.labels)
    panel.image.apply_label("benign")  # the reader relabels an image: the patient box follows
    assert "benign" in panel.patient.info.text()


def test_roi_list_wraps_long_rows(styled_app, qtbot, store: Store) -> None:  # type: ignore[no-untyped-def]
    rec = store.images("PAT-M")[0]
    viewer = ImageViewer()
    qtbot.addWidget(viewer)
    viewer.set_image(read_image_here(rec.source_path), key=rec.id)
    rois = RoiPanel(store, viewer)
    qtbot.addWidget(rois)
    rois.resize(240, 300)
    rois.show()
    rois.set_image(rec.id)
    roi = rois.add_roi((10, 10, 90, 70))
    assert roi is not None
    error = "failed: the crop is smaller than the model's input after trimming the border region"
    rois.set_result(roi.id, None, error)
    QApplication.processEvents()
    item = rois.list.item(0)
    lines = item.text().count("\n") + 1
    assert rois.list.horizontalScrollBar().maximum() == 0
    assert rois.list.visualItemRect(item).width() <= rois.list.viewport().width()
    assert rois.list.visualItemRect(item).height() > lines * rois.list.fontMetrics().lineSpacing()  # wrapped
    assert error in item.toolTip()
