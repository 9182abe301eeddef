"""Screenshots of the workstation for review (not a test).

    BUSVIEWER_HOME=/tmp/shots_home xvfb-run -s "-screen 0 1600x1000x24" \
        .venv/bin/python tests/gui/make_screenshots.py out/screens

Imports the BUSI manifest and one pydicom-data cine DICOM into a fresh store under
``$BUSVIEWER_HOME``. When no model is active there, it registers *random-weight* models
(so the numbers on the screenshots mean nothing), then opens patients and grabs the
window: results, Grad-CAM, ROI crops, the cine DICOM with a caliper.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

REPO = Path(__file__).resolve().parents[2]
BUSI = Path(os.environ.get("BUSVIEWER_BUSI", REPO.parent / "shared" / "data" / "busi"))


def pump(condition, timeout: float = 300.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        QApplication.processEvents()
        time.sleep(0.01)


def settle(seconds: float = 0.4) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def ensure_models(size: int = 224) -> str:
    from busviewer.ai.registry import ModelRegistry

    reg = ModelRegistry()
    if reg.active("ensemble") and reg.active("vgg16"):
        return "existing active models"
    import torch

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model

    torch.manual_seed(1)
    for arch, name in (("ensemble", "demo-ensemble"), ("vgg16", "demo-vgg16")):
        if reg.active(arch):
            continue
        card = ModelCard(
            name=name,
            version=1,
            architecture=arch,
            input_size=size,
            pretrained_init="random",
            description="random weights, for screenshots only",
        )
        entry = reg.save(build_model(arch, "bmode", pretrained=False), card)
        reg.activate(entry.card.name, entry.card.version)
    return "random-weight models registered for the screenshots"


def main(out_dir: str) -> int:
    home = Path(os.environ.setdefault("BUSVIEWER_HOME", "/tmp/shots_home"))
    store_file = home / "store.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store_file}{suffix}").unlink(missing_ok=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)  # keep the user's settings out of it
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(home / "settings"))
    print(ensure_models())

    from busviewer.core.store import Store
    from busviewer.gui.app import create_app
    from busviewer.gui.main_window import MainWindow

    _app = create_app(["busviewer"])  # held: the QApplication lives as long as this reference
    store = Store(store_file)
    window = MainWindow(store)
    window.resize(1600, 960)
    window.show()
    QTimer.singleShot(0, window.start)
    settle(1.0)
    window.grab().save(str(out / "01_startup_empty.png"))

    import data_store

    dicom_src = Path(data_store.__file__).parent / "data" / "OBXXXX1A_2frame.dcm"
    dicom = home / "dicom" / dicom_src.name
    dicom.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(dicom_src, dicom)
    done = []
    window.importFinished.connect(done.append)
    window.import_paths([BUSI / "manifest.csv", dicom])
    settle(2.0)
    dialogs = [w for w in QApplication.topLevelWidgets() if w.isVisible() and w.windowTitle() == "Importing"]
    if dialogs:
        dialogs[0].grab().save(str(out / "02_import_progress.png"))
    pump(lambda: done, 900, "the import")
    pump(lambda: window.worklist.model.rowCount() > 0, 60, "the worklist")
    pump(lambda: window.models_state in ("ready", "none", "error"), 600, "the models")
    print("models:", window.model_status.text())

    # a patient with several images, one malignant
    patients = window.worklist.model.patients()
    multi = [p for p in patients if p.image_count >= 3] or [p for p in patients if p.image_count >= 2]
    key = next((p.patient_key for p in multi if "malignant" in p.label_counts), multi[0].patient_key)
    analysed = []
    window.analysisFinished.connect(analysed.append)
    window.worklist.select(key)
    pump(lambda: window.viewer.image is not None, 60, "the image")
    pump(lambda: analysed or window.models_state != "ready", 600, "the analysis")
    settle(0.8)
    window.grab().save(str(out / "03_patient_results.png"))

    # Grad-CAM on the second image
    window.step_image(1)
    pump(lambda: window.viewer.image is not None, 60, "the image")
    cams = []
    window.camShown.connect(lambda *a: cams.append(a))
    window.ai_panel.cam.enabled.setChecked(True)
    pump(lambda: cams or window.models_state != "ready", 300, "Grad-CAM")
    settle(0.5)
    window.grab().save(str(out / "04_gradcam.png"))
    window.ai_panel.cam.enabled.setChecked(False)

    # lesion ROI, classified; reader label
    rec = window.record(window.current_image_id)
    w, h = rec.columns, rec.rows
    roi = window.rois.add_roi((w * 0.3, h * 0.25, w * 0.7, h * 0.7))
    classified = []
    window.roiClassified.connect(lambda *a: classified.append(a))
    if roi is not None:
        window.rois.select(roi.id)
        window.rois.classify_button.click()
        pump(lambda: classified or window.models_state != "ready", 300, "the ROI")
    window.label_current_image("malignant")
    window.labels.image.birads.setCurrentIndex(window.labels.image.birads.findData("4C"))
    settle(0.5)
    window.grab().save(str(out / "05_roi_and_label.png"))

    # the cine DICOM, caliper in mm
    dkey = next(p.patient_key for p in window.worklist.model.patients() if not p.patient_key.startswith("BUSI"))
    window.worklist.select(dkey)
    pump(lambda: window.viewer.image is not None and window.patient_key == dkey, 60, "the DICOM")
    pump(lambda: window._analysis_task is None, 300, "the analysis")
    window.viewer.set_caliper((300, 150), (520, 330))
    window.viewer.cursor_label.setText(window.viewer.describe_point(400, 250))
    settle(0.5)
    window.grab().save(str(out / "06_dicom_cine_caliper.png"))

    # the shortcuts dialog
    window.show_shortcuts()
    settle(0.3)
    for top in QApplication.topLevelWidgets():
        if top.isVisible() and top.windowTitle() == "Keyboard shortcuts":
            top.grab().save(str(out / "07_shortcuts.png"))
            top.close()
    window.shutdown()
    window.close()

    # no active model: an empty registry
    from busviewer.ai.registry import ModelRegistry

    empty = home / "no_models"
    (empty / "user").mkdir(parents=True, exist_ok=True)
    (empty / "shipped").mkdir(parents=True, exist_ok=True)
    w2 = MainWindow(
        store, registry_factory=lambda: ModelRegistry(user_dir=empty / "user", shipped_dir=empty / "shipped")
    )
    w2.resize(1600, 960)
    w2.show()
    loaded = []
    w2.modelsLoaded.connect(loaded.append)
    w2.start()
    pump(lambda: loaded and w2.worklist.model.rowCount() > 0, 300, "the no-model window")
    w2.worklist.select(key)
    pump(lambda: w2.viewer.image is not None, 60, "the image")
    settle(0.5)
    w2.grab().save(str(out / "08_no_active_model.png"))
    w2.shutdown()
    w2.close()
    store.close()
    print("errors:", window.errors)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else str(REPO / "out" / "screens")))
