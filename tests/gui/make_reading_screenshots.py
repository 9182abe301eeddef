"""Screenshots of the issue-14 reading tools (not a test): W/L + calipers, the worklist and
study header, the wizard's locked test set and start confirmation.

    BUSVIEWER_HOME=/tmp/shots14 BUSVIEWER_SHIPPED_MODELS=/tmp/none xvfb-run -a -s "-screen 0 1600x1000x24" \\
        .venv/bin/python tests/gui/make_reading_screenshots.py /tmp/screens/issue14b

Imports 40 BUSI patients and two pydicom-data ultrasound files (one copy given ImageLaterality
L and a radial view in its header) into a fresh store under ``$BUSVIEWER_HOME``.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path

from make_screenshots import BUSI, pump, settle
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWizard


def build_store(home: Path):  # type: ignore[no-untyped-def]
    import data_store
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    from busviewer.core.importer import import_paths
    from busviewer.core.store import Store

    with open(BUSI / "manifest.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    keep: dict[str, list[dict]] = {}
    for label in ("benign", "malignant"):
        for r in rows:
            if r["label"] == label and len([k for k in keep if keep[k][0]["label"] == label]) < 20:
                keep.setdefault(r["patient_id"], []).append(r)
    manifest = home / "busi40.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["image", "label", "patient_id"])
        w.writeheader()
        for rs in keep.values():
            for r in rs:
                w.writerow({"image": str(BUSI / r["image"]), "label": r["label"], "patient_id": r["patient_id"]})
    src = Path(data_store.__file__).parent / "data"
    dicom = home / "dicom"
    dicom.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "OBXXXX1A.dcm", dicom / "a.dcm")
    ds = pydicom.dcmread(src / "OBXXXX1A_2frame.dcm")
    ds.SOPInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SeriesDescription, ds.ImageLaterality = "Left breast radial", "L"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "R-10B1F", "SRT", "radial"
    ds.ViewCodeSequence = [code]
    ds.save_as(dicom / "b.dcm")
    store = Store(home / "store.sqlite")
    print(import_paths(store, [manifest], allow_outside=True).summary())
    print(import_paths(store, [dicom]).summary())
    return store


def main(out: Path) -> None:
    from busviewer.gui.app import apply_style
    from busviewer.gui.main_window import MainWindow
    from busviewer.gui.viewer import MODE_CALIPER, MODE_NAVIGATE

    home = Path(os.environ["BUSVIEWER_HOME"])
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    out.mkdir(parents=True, exist_ok=True)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)  # a fresh window layout, not the user's
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(home / "settings"))
    app = QApplication.instance() or QApplication(sys.argv)
    apply_style(app)
    store = build_store(home)
    w = MainWindow(store)
    w.show()
    w.start()
    pump(lambda: w.worklist.model.rowCount() > 0 and w.models_state not in ("idle", "loading"), 120, "start-up")
    key = next(p.patient_key for p in w.worklist.model.patients() if not p.patient_key.startswith("BUSI"))
    w.open_patient(key)
    w.show_image(w.records[1].id)
    pump(lambda: w._displayed_id == w.records[1].id, 60, "the DICOM")
    pump(lambda: "left" in w.patient_title.text(), 20, "the header views")
    w._display(w.records[1].id, w._cache[w.records[1].id])  # the info line with the view just read
    v = w.viewer
    v.set_window_level(170, 110)
    v.set_mode(MODE_CALIPER)
    v.set_caliper((300, 150), (520, 330))
    v.set_caliper((330, 420), (600, 420))
    v.set_mode(MODE_NAVIGATE)
    settle(0.6)
    w.grab().save(str(out / "1_window_wl_calipers.png"))
    v.grab().save(str(out / "2_viewer_wl_calipers.png"))
    w.worklist.grab().save(str(out / "3_worklist.png"))
    w.act_compare.trigger()  # the 1x2 layout: both views of the lesion
    pump(lambda: w.compare.pane.viewer.image is not None, 60, "the right image")
    w.compare.pane.chooser.activated.emit(0)
    pump(lambda: w.compare.pane.image_id == w.records[0].id and w.compare.pane.viewer.image is not None, 60, "#1")
    settle(0.5)
    w.grab().save(str(out / "3b_window_1x2.png"))
    w.act_compare.trigger()
    w.open_patient("BUSI-P0001")
    pump(lambda: w._displayed_id is not None, 60, "a BUSI image")
    settle(0.4)
    w.grab().save(str(out / "4_window_busi_patient.png"))

    from busviewer.gui.training_wizard import TrainingWizard

    wiz = TrainingWizard(store)
    wiz.show()
    pump(lambda: wiz.env is not None and wiz.data_page.summary is not None, 300, "the wizard")
    wiz.next()
    wiz.model_page.arch_buttons["vgg16"].click()
    wiz.model_page.init_random.click()
    wiz.next()
    settle(0.3)
    wiz.grab().save(str(out / "5_wizard_validation_before.png"))
    wiz.button(QWizard.WizardButton.NextButton).click()
    pump(lambda: wiz.locked is not None and not wiz.locked_busy, 120, "the locked test set")
    settle(0.3)
    wiz.grab().save(str(out / "6_wizard_locked_set_created.png"))
    wiz.next()
    sp = wiz.settings_page
    sp.input_size.setValue(128)

    def shoot_box() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            settle(0.2)
            box.grab().save(str(out / "7_wizard_start_confirmation.png"))
            next(b for b in box.buttons() if b.text() == "Cancel").click()
        else:
            QTimer.singleShot(50, shoot_box)

    QTimer.singleShot(50, shoot_box)
    wiz.button(QWizard.WizardButton.CommitButton).click()
    print("after Cancel the wizard is on page", wiz.currentId())
    wiz.close()
    w.shutdown()
    w.close()
    store.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/screens/issue14b"))
