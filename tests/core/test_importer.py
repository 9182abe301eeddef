"""Importer: BUSI manifest, pydicom-data ultrasound files, bad input, idempotency."""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from busviewer.cli import main
from busviewer.core.importer import import_paths
from busviewer.core.store import Store

US_FILES = [
    "JPGLosslessP14SV1_1s_1f_8b.dcm",
    "OBXXXX1A.dcm",
    "OBXXXX1A_2frame.dcm",
    "OBXXXX1A_expb.dcm",
    "OBXXXX1A_expb_2frame.dcm",
    "OBXXXX1A_rle.dcm",
    "OBXXXX1A_rle_2frame.dcm",
    "US1_J2KI.dcm",
    "US1_J2KR.dcm",
    "US1_UNCI.dcm",
    "US1_UNCR.dcm",
    "color-pl.dcm",
    "color-px.dcm",
    "color3d_jpeg_baseline.dcm",
    "gdcm-US-ALOKA-16.dcm",
    "gdcm-US-ALOKA-16_big.dcm",
]


def test_busi_manifest_import(store: Store, busi_dir: Path) -> None:
    report = import_paths(store, [busi_dir / "manifest.csv"])
    assert report.problems == []
    assert report.added == 623
    counts = store.counts()
    assert counts["images"] == 623 and counts["patients"] == 478
    labels = Counter(img.label.label for img in store.images())
    assert labels == {"benign": 353, "malignant": 165, "normal": 105}
    assert all(img.label.source == "import" for img in store.images())
    # the one byte-identical benign/malignant pair in BUSI is kept twice and flagged
    assert sum(1 for img in store.images() if img.duplicate_of is not None) == 1

    again = import_paths(store, [busi_dir / "manifest.csv"])
    assert (again.added, again.existing, again.problems) == (0, 623, [])
    assert store.counts() == counts


def test_ultrasound_dicoms_import(store: Store, us_dicom_dir: Path) -> None:
    report = import_paths(store, [us_dicom_dir / name for name in US_FILES])
    assert report.problems == [], report.problems
    images = {img.name: img for img in store.images()}
    # identical SOP instances stored in several transfer syntaxes import once each by UID
    assert set(images) <= set(US_FILES)
    assert report.added + report.existing == len(US_FILES)
    cine = images["color3d_jpeg_baseline.dcm"]
    assert cine.frame_count == 120 and cine.frame_time_ms and cine.is_color
    assert images["OBXXXX1A.dcm"].pixel_spacing_mm is not None
    assert images["OBXXXX1A.dcm"].regions
    for img in store.images():  # grouped under the DICOM patient / study / series
        assert not img.study_uid.startswith("local-")
    again = import_paths(store, [us_dicom_dir / name for name in US_FILES])
    assert again.added == 0 and again.problems == []


def _png(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8)).save(path)
    return path


def test_folder_per_patient_and_bad_files(store: Store, tmp_path: Path, us_dicom_dir: Path) -> None:
    root = tmp_path / "study"
    _png(root / "P001" / "a (1).png", 1)
    _png(root / "P001" / "b.png", 2)
    (root / "P002").mkdir()
    Image.fromarray(np.full((30, 30, 3), 90, np.uint8)).save(root / "P002" / "c.jpg")
    bad = root / "P003"
    bad.mkdir()
    good = _png(tmp_path / "x.png", 3).read_bytes()
    (bad / "truncated.png").write_bytes(good[: len(good) // 2])
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.png").write_text("hello, not an image")
    (bad / "random.dcm").write_bytes(np.random.default_rng(0).bytes(4096))
    dcm = (us_dicom_dir / "OBXXXX1A.dcm").read_bytes()
    (bad / "cut.dcm").write_bytes(dcm[: len(dcm) // 2])
    (bad / "notes.txt").write_text("a note")

    report = import_paths(store, [root])
    assert report.added == 3
    bad_names = sorted(p.path.name for p in report.problems)
    assert bad_names == ["cut.dcm", "empty.jpg", "notes.txt", "random.dcm", "text.png", "truncated.png"]
    assert all(p.reason for p in report.problems)
    assert {p.patient_key: p.image_count for p in store.patients()} == {"P001": 2, "P002": 1}


def test_cancel_keeps_only_whole_images(store: Store, tmp_path: Path) -> None:
    for i in range(6):
        _png(tmp_path / "P1" / f"{i}.png", i)
    cancel = threading.Event()

    def progress(ev) -> None:
        if ev.done == 3:
            cancel.set()

    report = import_paths(store, [tmp_path / "P1"], progress=progress, cancel=cancel)
    assert report.cancelled and report.added == 3
    assert store.counts()["images"] == 3
    rest = import_paths(store, [tmp_path / "P1"])
    assert (rest.added, rest.existing) == (3, 3)


def test_moved_folder_is_relocated_not_duplicated(store: Store, tmp_path: Path) -> None:
    _png(tmp_path / "old" / "P9" / "a.png")
    import_paths(store, [tmp_path / "old"])
    shutil.move(tmp_path / "old", tmp_path / "new")
    report = import_paths(store, [tmp_path / "new"])
    assert report.relocated == 1 and store.counts()["images"] == 1
    assert store.images()[0].source_path == (tmp_path / "new" / "P9" / "a.png").resolve()


def test_manifest_problems_are_reported(store: Store, tmp_path: Path) -> None:
    _png(tmp_path / "img" / "a.png")
    (tmp_path / "m.csv").write_text(
        "image,label,patient_id\nimg/a.png,benign,P1\nimg/missing.png,benign,P2\nimg/a.png,weird,P3\n"
    )
    (tmp_path / "bad.csv").write_text("file,diagnosis\n")
    report = import_paths(store, [tmp_path / "m.csv", tmp_path / "bad.csv"])
    reasons = " | ".join(str(p) for p in report.problems)
    assert report.added == 1
    assert "missing.png" in reasons and "weird" in reasons and "lacks column" in reasons


def test_cli_import_patients_show(tmp_path: Path, capsys: pytest.CaptureFixture[str], us_dicom_dir: Path) -> None:
    db = str(tmp_path / "cli.sqlite")
    _png(tmp_path / "in" / "PX" / "a.png")
    assert main(["--store", db, "import", str(tmp_path / "in"), str(us_dicom_dir / "color3d_jpeg_baseline.dcm")]) == 0
    assert "2 image(s) added" in capsys.readouterr().out
    assert main(["--store", db, "patients"]) == 0
    out = capsys.readouterr().out
    assert "PX" in out and "2 patient(s)" in out
    dicom_patient = [p.patient_key for p in Store(db).patients() if p.patient_key != "PX"][0]
    assert main(["--store", db, "show", dicom_patient]) == 0
    assert "120 frames" in capsys.readouterr().out
    assert main(["--store", db, "show", "nobody"]) == 1
