"""``busviewer PATH...`` (the desktop entry's ``Exec=busviewer %F``): the real command line
starts the workstation, imports the files and folders and opens the first patient."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from gui_helpers import make_study
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from busviewer import cli
from busviewer.core.store import Store
from busviewer.gui.main_window import MainWindow


def _drop_cli_logging() -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_busviewer", False)]:
        root.removeHandler(handler)
        handler.close()
    logging.captureWarnings(False)


def test_busviewer_paths_start_the_gui_and_import_them(
    qtbot,
    styled_app,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    dicom_2frame: Path,
    monkeypatch,
) -> None:
    folder, dicom = make_study(tmp_path / "in", dicom_2frame)
    monkeypatch.setenv("BUSVIEWER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BUSVIEWER_SHIPPED_MODELS", str(tmp_path / "no-shipped-models"))
    monkeypatch.delenv("BUSVIEWER_STORE", raising=False)
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + 120

    def window() -> MainWindow | None:
        return next((w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()), None)

    def watch() -> None:  # runs inside the command's event loop
        w = window()
        if w is not None and "window" not in seen:
            seen["window"] = w
            w.importFinished.connect(lambda report: seen.setdefault("report", report))
        ready = (
            w is not None
            and "report" in seen
            and w.patient_key is not None
            and w.worklist.model.rowCount() == 3
            and len(w.thumbnails.image_ids()) > 0
        )
        if ready or time.monotonic() > deadline:
            if w is not None:
                seen.update(
                    patient=w.patient_key,
                    rows=w.worklist.model.rowCount(),
                    thumbs=len(w.thumbnails.image_ids()),
                    title=w.patient_title.text(),
                )
                w.close()
            QApplication.quit()
            return
        QTimer.singleShot(50, watch)

    # One quit only: closing the last window would post a second Quit event, and one handled
    # after exec() has returned leaves Qt's "quit now" flag set, so every later event loop
    # of this process (pytest-qt's waits) would return at once.
    QApplication.setQuitOnLastWindowClosed(False)
    QTimer.singleShot(0, watch)
    try:
        status = cli.main([str(folder), str(dicom)])  # no subcommand: files and folders to open
    finally:
        QApplication.setQuitOnLastWindowClosed(True)
        _drop_cli_logging()
        if "window" in seen:
            seen["window"].deleteLater()
            QApplication.processEvents()
    assert status == 0
    report = seen.get("report")
    assert report is not None, f"the import never finished: {seen}"
    assert report.added == 6 and not report.problems, report.summary()  # 3 + 2 PNGs, one 2-frame DICOM
    assert report.patients == {"PAT-A", "PAT-B", "11-05-25-142825"}
    assert seen["rows"] == 3
    assert seen["patient"] == "11-05-25-142825" and "11-05-25-142825" in seen["title"]
    assert seen["thumbs"] == 1  # the DICOM patient's one (cine) image
    store = Store(tmp_path / "home" / "store.sqlite")  # the default store of BUSVIEWER_HOME
    try:
        assert sorted(p.patient_key for p in store.patients()) == ["11-05-25-142825", "PAT-A", "PAT-B"]
    finally:
        store.close()


def test_a_command_name_still_wins_over_a_path(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "patients").mkdir()  # a folder named like a command
    (tmp_path / "scan.png").write_bytes(b"")
    commands = ["patients", "import", "gui"]
    assert cli.open_paths_argv(["patients"], commands) == ["patients"]
    assert cli.open_paths_argv(["scan.png", "patients"], commands) == ["gui", "scan.png", "patients"]
    assert cli.open_paths_argv(["--store", "s.db", "-v", "scan.png"], commands) == [
        "--store",
        "s.db",
        "-v",
        "gui",
        "scan.png",
    ]
    assert cli.open_paths_argv(["missing.png"], commands) == ["missing.png"]  # argparse reports it
    assert cli.open_paths_argv([], commands) == []
