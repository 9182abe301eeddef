"""Blinded first read in the GUI (issue 14): with the setting on, the AI result of a patient
and the patient's labels stay hidden (panel, thumbnails, worklist, label editors) until the
reader records a call; recording
reveals it and stores both; Reader vs AI shows the comparison."""

from __future__ import annotations

from pathlib import Path

from gui_helpers import close_window, link_models, png, pump_until
from PySide6.QtCore import QSettings

from busviewer.core.importer import import_paths
from busviewer.core.store import Store
from busviewer.core.store.reads import reads
from busviewer.gui.blinded_read import HIDDEN_TEXT
from busviewer.gui.main_window import MainWindow
from busviewer.gui.worklist import LABEL_HIDDEN
from busviewer.services.blinded_read import SETTING

SHOTS = Path("/tmp/screens/issue14")


def test_ai_hidden_until_the_first_read_is_recorded(
    qtbot,
    styled_app,
    model_files: Path,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from busviewer.ai.registry import ModelRegistry

    models = link_models(model_files, tmp_path / "models")
    (tmp_path / "shipped").mkdir()
    store = Store(tmp_path / "s.sqlite")
    for i in range(2):
        png(tmp_path / "in" / "PAT-BLIND" / f"img{i}.png", seed=i)
    import_paths(store, [tmp_path / "in" / "PAT-BLIND"])
    store.set_label("malignant", patient_key="PAT-BLIND", source="biopsy", biopsy_confirmed=True)
    QSettings().setValue(SETTING, True)
    w = MainWindow(store, registry_factory=lambda: ModelRegistry(user_dir=models, shipped_dir=tmp_path / "shipped"))
    qtbot.addWidget(w)
    w.ai_panel.auto.setChecked(True)
    w.show()
    try:
        w.start()
        pump_until(lambda: w.models_state == "ready" and w.worklist.model.rowCount() == 1, 120, "models and worklist")
        assert w.blinded.on
        with qtbot.waitSignal(w.analysisFinished, timeout=120_000):
            w.open_patient("PAT-BLIND")
        panel, box = w.ai_panel, w.blinded.box
        pump_until(lambda: box.isVisible(), 10, "the first-read box")
        assert all(not b.isVisible() for b in panel.result_boxes)
        assert panel.image_short_labels() == {} and panel.analysis is not None
        assert w.worklist.model.verdict("PAT-BLIND") == HIDDEN_TEXT
        # the biopsy label is the answer: hidden in the worklist, thumbnails and label editors
        assert w.worklist.model.label_text(w.worklist.model.patient(0)) == LABEL_HIDDEN
        assert all("label hidden" in w.thumbnails.item(r).text() for r in range(w.thumbnails.count()))
        assert "malignant" not in " ".join(w.thumbnails.item(r).toolTip() for r in range(w.thumbnails.count()))
        assert w.labels.patient.isHidden() and w.labels.image.isHidden() and w.labels.hidden_note.isVisible()
        w.label_current_image("benign")  # the B key: refused while the labels are hidden
        assert store.images("PAT-BLIND")[0].label is None
        assert not box.button.isEnabled()
        assert w.rois.suggestion.item is None  # no Grad-CAM ROI suggestion while blinded
        with qtbot.waitSignal(w.infoShown, timeout=5_000):  # nor a PDF with the AI result in it
            assert w.export_report(tmp_path / "early.pdf") is None
        assert not (tmp_path / "early.pdf").exists()
        SHOTS.mkdir(parents=True, exist_ok=True)
        w.grab().save(str(SHOTS / "blinded_before_reveal.png"))

        box.malignant.click()
        box.birads.setCurrentIndex(box.birads.findData("4C"))
        box.button.click()
        pump_until(lambda: "PAT-BLIND" in w.blinded.read_keys, 20, "the read to be recorded")
        pump_until(lambda: all(b.isVisible() for b in panel.result_boxes), 10, "the AI result")
        assert not box.isVisible() and panel.image_short_labels() != {}
        assert w.worklist.model.verdict("PAT-BLIND") not in ("", HIDDEN_TEXT)
        assert w.worklist.model.label_text(w.worklist.model.patient(0)) == "malignant (biopsy)"
        assert not w.labels.patient.isHidden() and not w.labels.hidden_note.isVisible()
        assert not any("label hidden" in w.thumbnails.item(r).text() for r in range(w.thumbnails.count()))
        (rec,) = reads(store, store.user)
        assert (rec.call, rec.birads, rec.revealed) == ("malignant", "4C", True)
        assert rec.ai_label == panel.analysis.verdicts["ensemble"].label
        qtbot.wait(300)  # let the panel lay out again before the screenshot
        w.grab().save(str(SHOTS / "blinded_after_reveal.png"))

        w.blinded.open_comparison()
        pump_until(lambda: w.blinded.dialog is not None, 20, "the Reader vs AI dialog")
        dlg = w.blinded.dialog
        assert dlg.table.rowCount() == 2  # this month + all
        assert [dlg.table.item(1, c).text() for c in (0, 1, 2, 5, 6)] == ["all", "1", "1", "1", "100%"]
        dlg.grab().save(str(SHOTS / "reader_vs_ai.png"))
        dlg.close()
    finally:
        QSettings().setValue(SETTING, False)
        close_window(w)
        store.close()
