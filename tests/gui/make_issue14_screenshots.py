"""Issue-14 screenshot of a patient with an indeterminate result, with the shipped models
(not a test). pydicom-data's grey cardiac echo cine (color3d_jpeg_baseline.dcm) lands in
the shipped ensemble's indeterminate band; it is not a breast image, which the colour
guard does not detect (see the issue-14 note).

    BUSVIEWER_HOME=/tmp/i14shots xvfb-run -a -s "-screen 0 1600x1000x24" \\
        .venv/bin/python tests/gui/make_issue14_screenshots.py /tmp/screens/issue14
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication


def pump(condition, timeout: float = 600.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        QApplication.processEvents()
        time.sleep(0.01)


def main(out_dir: str) -> int:
    home = Path(os.environ.setdefault("BUSVIEWER_HOME", "/tmp/i14shots"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(home / "settings"))
    import data_store

    from busviewer.core.importer import import_paths
    from busviewer.core.store import Store
    from busviewer.gui.app import create_app
    from busviewer.gui.main_window import MainWindow

    src = next((Path(data_store.__file__).parent / "data").rglob("color3d_jpeg_baseline.dcm"))
    folder = home / "in"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, folder / src.name)
    store = Store(home / "store.sqlite")
    import_paths(store, [folder])
    (patient,) = store.patients()
    _app = create_app(["busviewer"])
    window = MainWindow(store)
    window.resize(1600, 960)
    window.ai_panel.auto.setChecked(True)
    window.show()
    window.start()
    pump(lambda: window.models_state in ("ready", "none", "error"), 600, "the models")
    print("models:", window.model_status.text())
    done: list = []
    window.analysisFinished.connect(done.append)
    window.open_patient(patient.patient_key)
    pump(lambda: done, 600, "the analysis")
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)
    window.grab().save(str(out / "indeterminate_shipped_models.png"))
    window.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/screens/issue14"))
