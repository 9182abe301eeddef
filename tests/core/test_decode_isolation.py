"""Decoder isolation (issue 15): GDCM aborts cost one file, never the caller or an import;
header consistency is checked before any native codec sees the data; calibration values
that are not finite or not physical are refused with a reason."""

from __future__ import annotations

import math
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("data_store")

from pydicom.data import get_testdata_file  # noqa: E402

from busviewer.core import decode_pool, dicom_checks  # noqa: E402
from busviewer.core.geometry import dicom_geometry  # noqa: E402
from busviewer.core.imageio import ImageReadError, read_image  # noqa: E402
from busviewer.core.importer import import_paths  # noqa: E402

J2K = "US1_J2KR.dcm"
JPEG_LOSSLESS = "JPGLosslessP14SV1_1s_1f_8b.dcm"
GOOD = ("US1_J2KI.dcm", "OBXXXX1A_rle.dcm", "color-px.dcm")

# name: (seed file, edits) -- each of these made GDCM abort the whole process (SIGABRT).
ABORTERS = {
    "j2k_monochrome1.dcm": (J2K, {"PhotometricInterpretation": "MONOCHROME1"}),
    "j2k_spp1.dcm": (J2K, {"SamplesPerPixel": 1}),
    "jpegll_bits_stored_1.dcm": (JPEG_LOSSLESS, {"BitsStored": 1}),
    "jpegll_bits_allocated_32.dcm": (JPEG_LOSSLESS, {"BitsAllocated": 32}),
}


def _edited(seed: str, edits: dict, dest: Path) -> Path:
    ds = pydicom.dcmread(get_testdata_file(seed))
    for key, value in edits.items():
        setattr(ds, key, value)
    ds.save_as(dest)
    return dest


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the four abort reproducers and three good compressed files."""
    folder = tmp_path_factory.mktemp("aborters")
    for name, (seed, edits) in ABORTERS.items():
        _edited(seed, edits, folder / name)
    for name in GOOD:
        shutil.copyfile(get_testdata_file(name), folder / name)
    return folder


@pytest.fixture
def unchecked_decoders():
    """The process-wide decoders with the header checks off: GDCM really aborts in them."""
    pool = decode_pool.configure_default_pool(workers=1, header_checks=False)
    yield pool
    decode_pool.configure_default_pool()


def _import(tmp_path: Path, folder: Path):
    from busviewer.core.store import Store

    store = Store(tmp_path / "store.sqlite")
    try:
        return import_paths(store, [folder]), store.counts()["images"]
    finally:
        store.close()


def test_abort_reproducers_refused_by_header_checks(study: Path, tmp_path: Path) -> None:
    report, stored = _import(tmp_path, study)
    reasons = {p.path.name: p.reason for p in report.problems}
    assert set(reasons) == set(ABORTERS), reasons
    assert "Photometric Interpretation MONOCHROME1 needs Samples per Pixel 1" in reasons["j2k_monochrome1.dcm"]
    assert "YBR_RCT needs Samples per Pixel 3, the file says 1" in reasons["j2k_spp1.dcm"]
    assert "Bits Stored 8, not 1" in reasons["jpegll_bits_stored_1.dcm"]
    assert "Bits Allocated 32 is not allowed" in reasons["jpegll_bits_allocated_32.dcm"]
    assert report.added == stored == len(GOOD)


def test_decoder_crash_is_one_files_error_and_the_import_goes_on(
    study: Path, tmp_path: Path, unchecked_decoders
) -> None:
    report, stored = _import(tmp_path, study)
    reasons = {p.path.name: p.reason for p in report.problems}
    assert set(reasons) == set(ABORTERS), reasons
    for reason in reasons.values():
        assert reason.startswith("decoder crashed on this file (SIGABRT)"), reason
    assert report.added == stored == len(GOOD)
    assert unchecked_decoders.restarts == len(ABORTERS)
    # The pool keeps working after the crashes.
    assert read_image(study / GOOD[0]).frames.shape == (1, 480, 640, 3)


def test_hung_or_slow_decoder_is_stopped_and_replaced(tmp_path: Path) -> None:
    cine = Path(get_testdata_file("color3d_jpeg_baseline.dcm"))
    with decode_pool.DecoderPool(workers=1, timeout_s=0.05) as pool:
        with pytest.raises(ImageReadError, match="decoder did not finish within its time limit") as info:
            pool.read(cine)
        assert info.value.path == cine
        assert pool.restarts == 1
        pool.timeout_s = None
        assert pool.read(get_testdata_file(J2K)).frames.shape == (1, 480, 640, 3)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_decoder_killed_while_idle_is_replaced() -> None:
    with decode_pool.DecoderPool(workers=1) as pool:
        first = pool.read(get_testdata_file(J2K))
        (pid,) = pool.pids
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        again = pool.read(get_testdata_file(J2K))
        np.testing.assert_array_equal(first.frames, again.frames)
        assert pool.pids != [pid]


def test_decoders_that_cannot_start_fall_back_to_this_process(tmp_path: Path) -> None:
    """A program read from stdin has no importable __main__, so spawned decoders die at start."""
    import subprocess
    import sys

    program = (
        f"from busviewer.core.imageio import read_image\nprint(read_image({get_testdata_file(J2K)!r}).frames.shape)\n"
    )
    run = subprocess.run(
        [sys.executable, "-"],
        input=program,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BUSVIEWER_HOME": str(tmp_path)},
    )
    assert run.returncode == 0 and run.stdout.strip() == "(1, 480, 640, 3)", run.stderr
    assert "a decoder process could not start" in run.stderr and "decoding in the calling process" in run.stderr


def test_isolated_read_equals_in_process_read() -> None:
    from busviewer.core.imageio import read_image_here

    path = Path(get_testdata_file("OBXXXX1A_rle_2frame.dcm"))
    assert decode_pool.wants_isolation(path)  # RLE is compressed
    assert not decode_pool.wants_isolation(Path(get_testdata_file("OBXXXX1A.dcm")))  # native
    isolated, here = decode_pool.default_pool().read(path), read_image_here(path)
    np.testing.assert_array_equal(isolated.frames, here.frames)
    assert (isolated.meta, isolated.regions, isolated.pixel_spacing_mm) == (
        here.meta,
        here.regions,
        here.pixel_spacing_mm,
    )


@pytest.mark.parametrize(
    "edits, words",
    [
        ({"Rows": 100}, "the image is 640x100 but the JPEG 2000 codestream is 640x480"),
        (
            {"PhotometricInterpretation": "RGB", "SamplesPerPixel": 3, "BitsAllocated": 16, "BitsStored": 20},
            "Bits Stored 20 must be between 1 and Bits Allocated 16",
        ),
        (
            {"PhotometricInterpretation": "PALETTE COLOR", "SamplesPerPixel": 1},
            "Samples per Pixel is 1 but the JPEG 2000 codestream has 3 component",
        ),
        ({"NumberOfFrames": 100000, "Rows": 4096, "Columns": 4096}, "image too large to decode"),
    ],
)
def test_header_checks_name_the_inconsistency(tmp_path: Path, edits: dict, words: str) -> None:
    path = _edited(J2K, edits, tmp_path / "edited.dcm")
    with pytest.raises(ImageReadError, match=words):
        read_image(path)


def test_codestream_parsers_read_real_frames() -> None:
    for name, kind, comps in ((J2K, "j2k", 3), (JPEG_LOSSLESS, "jpeg", 1), ("color3d_jpeg_baseline.dcm", "jpeg", 3)):
        ds = pydicom.dcmread(get_testdata_file(name))
        cs = dicom_checks.parse_codestream(kind, dicom_checks.first_fragment(ds.PixelData))
        assert cs is not None and (cs.components, cs.rows, cs.columns) == (comps, ds.Rows, ds.Columns)
        assert cs.precision == ds.BitsStored


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_non_finite_or_unphysical_geometry_is_not_calibrated(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("OBXXXX1A.dcm"))
    tissue = ds.SequenceOfUltrasoundRegions[0]
    tissue.PhysicalDeltaX = math.inf  # FD: the PhysicalDelta overflow the fuzzer found
    ds.FrameTime = "1e308"
    geo = dicom_geometry(ds, int(ds.Rows), int(ds.Columns))
    assert geo.pixel_spacing_mm is None and geo.frame_time_ms is None
    assert geo.regions[0].physical_delta_x is None
    assert any("PhysicalDeltaX inf cm is not a finite spacing" in i for i in geo.issues), geo.issues
    assert any("FrameTime 1e+308 ms" in i and "not calibrated" in i for i in geo.issues), geo.issues

    ds.PixelSpacing = ["nan", "0.2"]
    ds.SequenceOfUltrasoundRegions[0].RegionLocationMaxX1 = 4_000_000
    geo = dicom_geometry(ds, int(ds.Rows), int(ds.Columns))
    assert geo.pixel_spacing_mm is None
    assert any(i.startswith("PixelSpacing [nan, 0.2] is not a finite spacing") for i in geo.issues)
    assert any("lies outside the 800x600 image; ignored" in i for i in geo.issues)

    path = tmp_path / "uncalibrated.dcm"
    ds.save_as(path)
    img = read_image(path)
    assert img.pixel_spacing_mm is None and img.frame_time_ms is None and img.calibration_issues


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_import_reports_uncalibrated_images(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("OBXXXX1A.dcm"))
    ds.PixelSpacing = ["inf", "inf"]
    folder = tmp_path / "in"
    folder.mkdir()
    ds.save_as(folder / "a.dcm")
    report, stored = _import(tmp_path, folder)
    assert report.added == stored == 1 and not report.problems
    assert [n.path.name for n in report.notes] == ["a.dcm"] and "not calibrated" in report.notes[0].reason
