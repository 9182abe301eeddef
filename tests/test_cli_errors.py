"""The CLI's one error boundary (issue 15): every bad input or environment gives one clear
line naming the path or value, a non-zero exit, no traceback, and an unchanged store."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from busviewer.cli import main
from busviewer.core.store import Store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def study(tmp_path: Path) -> tuple[Path, int]:
    """A store with one patient P1 and one labelled image; returns (store file, image id)."""
    folder = tmp_path / "images" / "P1"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(folder / "a.png")
    db = tmp_path / "store.sqlite"
    assert main(["--store", str(db), "import", "-q", str(tmp_path / "images")]) == 0
    store = Store(db)
    image_id = store.images("P1")[0].id
    store.close()
    assert (
        main(
            [
                "--store",
                str(db),
                "label",
                "--image",
                str(image_id),
                "benign",
                "--birads",
                "3",
                "--note",
                "stable since 2019",
            ]
        )
        == 0
    )
    return db, image_id


def _state(db: Path) -> tuple:
    store = Store(db)
    try:
        return (
            store.counts(),
            [(a.action, a.field, a.new_value) for a in store.audit_log()],
            [(i.id, sorted((s, r.label, r.birads, r.note) for s, r in i.labels.items())) for i in store.images()],
        )
    finally:
        store.close()


def _one_clean_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith(("busviewer", "error: ")), err
    return lines[0]


@pytest.mark.parametrize(
    "argv, words",
    [
        (
            ["label", "--image", "99999999999999999999", "benign"],
            "argument --image: 99999999999999999999 is out of range",
        ),
        (
            ["label", "--image", "1", "benign", "--birads", "'; DROP TABLE labels;--"],
            'BI-RADS category "\'; DROP TABLE labels;--" is not one of 0, 1, 2, 3, 4, 4A, 4B, 4C, 5, 6',
        ),
        (["label", "--image", "1", "benign", "--birads", "7"], "BI-RADS category '7' is not one of"),
        (["label", "--patient", "x" * 100_000, "benign"], "is 100000 characters long (at most 128)"),
        (["show", "x" * 100_000], "is 100000 characters long (at most 128)"),
        (["review", "P1\x00"], "contains control characters"),
        (["label", "--image", "abc", "benign"], "invalid int value: 'abc' (see busviewer label --help)"),
    ],
)
def test_bad_arguments(study, capsys, argv: list[str], words: str) -> None:
    db, _ = study
    before = _state(db)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["--store", str(db), *argv])
    assert info.value.code == 2
    assert words in _one_clean_line(capsys)
    assert _state(db) == before


@pytest.mark.parametrize(
    "command",
    [
        ["patients"],
        ["show", "P1"],
        ["audit"],
        ["label", "--image", "1", "benign"],
        ["review", "P1"],
        ["import", "-q", "."],
    ],
)
def test_stores_that_cannot_be_opened(tmp_path: Path, capsys, command: list[str]) -> None:
    not_sqlite = tmp_path / "notes.sqlite"
    not_sqlite.write_text("not a database\n")
    folder = tmp_path / "folder.sqlite"
    folder.mkdir()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    cases = [
        (not_sqlite, "cannot open the store (file is not a database)"),
        (folder, "cannot open the store"),
        (blocker / "sub" / "store.sqlite", "Not a directory"),
    ]
    if Path("/proc").is_dir():
        cases.append((Path("/proc/busviewer-test/store.sqlite"), "/proc/busviewer-test"))
    for path, words in cases:
        capsys.readouterr()
        assert main(["--store", str(path), *command]) != 0
        line = _one_clean_line(capsys)
        assert words in line and (str(path) in line or str(path.parent) in line), line
    assert not_sqlite.read_text() == "not a database\n"


def test_read_only_store_refuses_writes_in_one_line(study, capsys) -> None:
    db, image_id = study
    before = _state(db)
    url = f"sqlite:///file:{db}?mode=ro&uri=true"
    capsys.readouterr()
    assert main(["--store", url, "label", "--image", str(image_id), "malignant"]) != 0
    assert "readonly database" in _one_clean_line(capsys)
    assert main(["--store", url, "review", "P1"]) != 0
    assert "readonly database" in _one_clean_line(capsys)
    assert _state(db) == before


def test_editing_a_label_keeps_fields_not_given(study) -> None:
    db, image_id = study
    assert main(["--store", str(db), "label", "--image", str(image_id), "malignant"]) == 0
    assert main(["--store", str(db), "label", "--image", str(image_id), "malignant", "--birads", "4c"]) == 0
    store = Store(db)
    label = store.image(image_id).labels["reader"]
    store.close()
    assert (label.label, label.birads, label.note) == ("malignant", "4C", "stable since 2019")
    assert main(["--store", str(db), "label", "--image", str(image_id), "malignant", "--note", ""]) == 0
    store = Store(db)
    assert store.image(image_id).labels["reader"].note is None
    store.close()


def test_manifest_rows_outside_its_folder(tmp_path: Path, capsys) -> None:
    outside = tmp_path / "outside.png"
    Image.fromarray(np.full((30, 30, 3), 50, np.uint8)).save(outside)
    sub = tmp_path / "set"
    sub.mkdir()
    Image.fromarray(np.full((30, 30, 3), 70, np.uint8)).save(sub / "inside.png")
    manifest = sub / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows(
            [
                ["image", "label", "patient_id"],
                ["../outside.png", "benign", "A"],
                [str(outside), "benign", "B"],
                ["inside.png", "benign", "C"],
                ["inside.png", "", "D" * 200],
            ]
        )
    db = tmp_path / "s.sqlite"
    assert main(["--store", str(db), "import", "-q", str(manifest)]) == 0
    err = capsys.readouterr().err
    assert err.count("is outside the manifest's folder") == 2 and "(at most 128)" in err and "Traceback" not in err
    store = Store(db)
    assert [p.patient_key for p in store.patients()] == ["C"]
    store.close()
    assert main(["--store", str(db), "import", "-q", "--allow-outside", str(manifest)]) == 0
    store = Store(db)
    assert sorted(p.patient_key for p in store.patients()) == ["A", "C"]  # B: the same file as A
    store.close()


def test_real_process_one_line_exit_code_and_debug(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_text("these are notes, not a database\n" * 20)
    env = {**os.environ, "BUSVIEWER_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "busviewer", "--store", str(bad), "patients"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.strip().splitlines() == [
        f"busviewer: error: {bad}: cannot open the store (file is not a database)"
    ]
    debug = subprocess.run(
        cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_library_log_noise_goes_to_the_log_file(tmp_path: Path) -> None:
    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("data_store")
    from pydicom.data import get_testdata_file

    folder = tmp_path / "in"
    folder.mkdir()
    ds = pydicom.dcmread(get_testdata_file("OBXXXX1A.dcm"))
    ds.StudyInstanceUID = "1.2.x9"  # pydicom warns and logs "Invalid value for VR UI" on reading it
    ds.save_as(folder / "odd-uid.dcm")
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI")
    home = tmp_path / "home"
    run = subprocess.run(
        [sys.executable, "-m", "busviewer", "--store", str(tmp_path / "s.sqlite"), "import", "-q", str(folder)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "BUSVIEWER_HOME": str(home)},
    )
    assert run.returncode == 0, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"skipped {folder / 'broken.dcm'}: "), run.stderr
    log = (home / "logs" / "busviewer.log").read_text()
    assert "Invalid value for VR UI" in log
