"""Input guard in the workstation (issue 14): a colour Doppler image gets "outside the
model's training data" instead of a result; the reader's override shows the result and
is stored with their name."""

from __future__ import annotations

import shutil
from pathlib import Path

from gui_helpers import close_window, link_models, pump_until

from busviewer.core.importer import import_paths
from busviewer.core.store import Store
from busviewer.core.store.flags import image_flags
from busviewer.gui.main_window import MainWindow

SHOTS = Path("/tmp/screens/issue14")


def test_doppler_is_flagged_and_the_reader_can_override(
    qtbot,
    styled_app,
    model_files: Path,  # type: ignore[no-untyped-def]
    us_dicom_dir: Path,
    tmp_path: Path,
) -> None:
    from busviewer.ai.registry import ModelRegistry

    models = link_models(model_files, tmp_path / "models")
    (tmp_path / "shipped").mkdir()
    store = Store(tmp_path / "s.sqlite")
    (tmp_path / "in").mkdir()
    shutil.copy(next(us_dicom_dir.rglob("color-pl.dcm")), tmp_path / "in" / "doppler.dcm")
    import_paths(store, [tmp_path / "in"])
    (patient,) = store.patients()
    (rec,) = store.images(patient.patient_key)
    w = MainWindow(store, registry_factory=lambda: ModelRegistry(user_dir=models, shipped_dir=tmp_path / "shipped"))
    qtbot.addWidget(w)
    w.ai_panel.auto.setChecked(True)
    w.show()
    try:
        w.start()
        pump_until(lambda: w.models_state == "ready" and w.worklist.model.rowCount() == 1, 120, "models and worklist")
        with qtbot.waitSignal(w.analysisFinished, timeout=120_000) as sig:
            w.open_patient(patient.patient_key)
        analysis = sig.args[0]
        assert rec.id in analysis.outside and "colour Doppler" in analysis.outside[rec.id]
        panel = w.ai_panel
        assert [panel.table.item(0, c).text() for c in (1, 2)] == ["outside", "outside"]
        assert {c.verdict.text() for c in panel.cards.values()} == {"NOT CLASSIFIED"}
        assert all("Mean p" not in c.detail.text() for c in panel.cards.values())  # no number leaks out
        assert "outside the model's training data" in panel.outside_note.text()
        assert panel.override_button.isVisible()
        assert w.rois.suggestion.item is None  # no Grad-CAM ROI suggestion on a flagged image
        assert "not classified" in w.worklist.model.verdict(patient.patient_key)
        qtbot.wait(300)
        SHOTS.mkdir(parents=True, exist_ok=True)
        w.grab().save(str(SHOTS / "doppler_flagged.png"))

        panel.override_button.click()
        pump_until(lambda: panel.analysis is not None and rec.id in panel.analysis.overridden, 20, "the override")
        assert panel.table.item(0, 1).text() != "outside" and panel.override_button.text() == "Withdraw the override"
        assert image_flags(store, [rec.id])[rec.id].overridden_by == store.user
        qtbot.wait(300)
        w.grab().save(str(SHOTS / "doppler_overridden.png"))
    finally:
        close_window(w)
        store.close()
