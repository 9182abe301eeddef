"""File > Query PACS..., the listener indicator and de-identified export, against a real Orthanc."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from gui_helpers import close_window
from PySide6.QtWidgets import QApplication, QMessageBox

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from orthanc_server import LOCAL_AET, start_orthanc  # noqa: E402

from busviewer.core.store import Store  # noqa: E402
from busviewer.dicomnet.nodes import LocalAE, NetworkSettings, RemoteNode, save_settings  # noqa: E402
from busviewer.gui.main_window import MainWindow  # noqa: E402


def _us(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip("pydicom-data not installed")
    return Path(path)


def test_query_retrieve_listen_and_export(qtbot, styled_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = start_orthanc(tmp_path / "orthanc")
    store = Store(tmp_path / "s.sqlite")
    w = None
    try:
        for name in ("US1_UNCR.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm"):
            server.upload(_us(name))
        save_settings(
            NetworkSettings(
                LocalAE(LOCAL_AET, server.listener_port, "127.0.0.1"),
                (RemoteNode("orthanc", server.aet, "127.0.0.1", server.dicom_port, timeout_s=10),),
            )
        )
        (tmp_path / "user").mkdir()
        (tmp_path / "shipped").mkdir()

        def factory():  # type: ignore[no-untyped-def]
            from busviewer.ai.registry import ModelRegistry

            return ModelRegistry(user_dir=tmp_path / "user", shipped_dir=tmp_path / "shipped")

        w = MainWindow(store, registry_factory=factory)
        qtbot.addWidget(w)
        w.show()
        assert w.pacs.indicator.text() == "Listener: off"

        dlg = w.pacs.open_query()
        dlg.patient_id.setText("13US1")
        dlg.search()
        qtbot.waitUntil(lambda: dlg.table.rowCount() >= 1 or "rror" in dlg.status.text(), timeout=60_000)
        assert dlg.table.rowCount() == 1, dlg.status.text()
        (task,) = dlg.retrieve([0])
        qtbot.waitUntil(lambda: task.done, timeout=120_000)
        assert task.error is None and task.result.imported.added == 1
        qtbot.waitUntil(lambda: "13US1" in [p.patient_key for p in store.patients()], timeout=10_000)

        w.pacs.toggle_listener(True)
        qtbot.waitUntil(lambda: w.pacs.indicator.text().startswith("Listener: on"), timeout=60_000)
        ids = server.instances()
        server.rest(
            "/modalities/BUSVIEWER/store", ("[" + ",".join(f'"{i}"' for i in ids) + "]").encode(), method="POST"
        )
        qtbot.waitUntil(lambda: store.counts()["images"] == 2, timeout=120_000)
        qtbot.waitUntil(lambda: any(e.kind == "imported" for e in w.pacs.events), timeout=10_000)
        w.pacs.toggle_listener(False)
        qtbot.waitUntil(lambda: w.pacs.indicator.text() == "Listener: off", timeout=30_000)

        w.open_patient("13US1")
        export = w.pacs.deid_dialog(tmp_path / "deid", "refuse")
        qtbot.waitUntil(lambda: export.done, timeout=60_000)
        assert export.result.exported == 0 and "Burned In Annotation" in export.result.refused[0]
        assert (tmp_path / "deid" / "manifest.csv").is_file()
    finally:
        for top in QApplication.topLevelWidgets():
            if isinstance(top, QMessageBox):
                top.close()
        if w is not None:
            close_window(w)
        server.stop()
        store.close()
