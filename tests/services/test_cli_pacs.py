"""The CLI twins against a real Orthanc: pacs node/echo/find/get/send, export --deidentify."""

from __future__ import annotations

from pathlib import Path

import pytest
from orthanc_server import LOCAL_AET, Orthanc
from pacs_data import STUDY_13US1, us_file

from busviewer.cli import main


def test_cli_pacs_round_trip(loaded: Orthanc, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.sqlite")
    assert main(["pacs", "local", "--aet", LOCAL_AET, "--port", str(loaded.listener_port)]) == 0
    assert (
        main(
            [
                "pacs",
                "node",
                "add",
                "main",
                "--aet",
                loaded.aet,
                "--host",
                "127.0.0.1",
                "--port",
                str(loaded.dicom_port),
                "--timeout",
                "10",
            ]
        )
        == 0
    )
    assert main(["pacs", "node", "add", "web", "--url", loaded.dicomweb_url]) == 0
    assert main(["pacs", "echo", "main"]) == 0 and main(["pacs", "echo", "web"]) == 0
    assert main(["pacs", "find", "main", "--patient-id", "13US1"]) == 0
    out = capsys.readouterr().out
    assert STUDY_13US1 in out and "1 match(es)" in out
    assert main(["--store", db, "pacs", "get", "main", STUDY_13US1]) == 0
    assert "2 image(s) added" in capsys.readouterr().out
    assert main(["--store", db, "pacs", "send", "13US1", "--node", "main"]) == 1  # nothing analysed yet
    assert "no model results stored" in capsys.readouterr().err
    assert main(["pacs", "echo", "nowhere"]) == 1
    assert "no PACS node named 'nowhere'" in capsys.readouterr().err

    assert main(["--store", db, "import", str(us_file("JPGLosslessP14SV1_1s_1f_8b.dcm"))]) == 0
    patients = [line.split()[0] for line in _patients(db, capsys)]
    assert (
        main(["--store", db, "export", *patients, "--deidentify", "--out", str(tmp_path / "x"), "--burned-in", "blank"])
        == 0
    )
    text = capsys.readouterr()
    assert "1 image(s) of 1 patient(s) exported" in text.out and "no ultrasound tissue region" in text.err


def _patients(db: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    capsys.readouterr()
    main(["--store", db, "patients"])
    return [line for line in capsys.readouterr().out.splitlines()[1:-1]]
