"""The launch paints the window before it builds the image viewer (issue 11's launch time):
pyqtgraph, about 0.3 s of imports, is loaded only after the first paint.

Run in a fresh interpreter: this test process imported pyqtgraph long ago."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, sys
from PySide6.QtCore import QTimer
from busviewer.core.store import Store
from busviewer.gui.app import create_app
from busviewer.gui.main_window import MainWindow

app = create_app()
store = Store()
window = MainWindow(store, defer_viewer=True)
seen = {"pyqtgraph_before_show": "pyqtgraph" in sys.modules}

def check() -> None:
    seen["viewer_shown"] = window.viewer.isVisible()
    seen["rois_shown"] = window.rois.isVisible()
    app.quit()

def painted() -> None:
    seen["pyqtgraph_at_first_paint"] = "pyqtgraph" in sys.modules
    seen["viewer_at_first_paint"] = window.viewer is not None
    window.build_viewer()
    seen["viewer"] = type(window.viewer).__name__
    seen["rois"] = type(window.rois).__name__
    seen["colour_stops"] = len(window.ai_panel.cam.colorbar._stops)
    window.viewer.fit()  # the View menu's actions reach the new viewer
    QTimer.singleShot(0, check)

window.firstPainted.connect(painted)
window.show()
QTimer.singleShot(30000, app.quit)
app.exec()
window.shutdown()
store.close()
print(json.dumps(seen))
"""


def test_window_paints_before_pyqtgraph_loads_and_then_builds_the_viewer(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", BUSVIEWER_HOME=str(tmp_path / "home"))
    env.pop("BUSVIEWER_STORE", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "pyqtgraph_before_show": False,
        "pyqtgraph_at_first_paint": False,
        "viewer_at_first_paint": False,
        "viewer": "ImageViewer",
        "rois": "RoiPanel",
        "colour_stops": 16,
        "viewer_shown": True,
        "rois_shown": True,
    }, done.stderr[-3000:]
