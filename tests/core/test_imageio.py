"""Tests for busviewer.core.imageio: the pydicom-data ultrasound files, synthetic DICOM
variants built at test time, raster files, and bad inputs."""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from busviewer.core.imageio import (
    SUPPORTED_RASTER_SUFFIXES,
    DecodedImage,
    ImageMeta,
    ImageReadError,
    UltrasoundRegion,
    is_dicom,
    read_header,
    read_image,
    sha256_file,
)

pydicom = pytest.importorskip("pydicom")
from PIL import Image  # noqa: E402
from pydicom.pixels import apply_color_lut, convert_color_space  # noqa: E402


def _data_dir() -> Path:
    data_store = pytest.importorskip("data_store")
    return Path(data_store.__file__).parent / "data"


BUSI_BENIGN = (
    Path(os.environ["BUSVIEWER_BUSI"]) / "images" / "benign"
    if os.environ.get("BUSVIEWER_BUSI")
    else Path(__file__).resolve().parents[3] / "shared" / "data" / "busi" / "images" / "benign"
)

# name: (frames, rows, columns, is_color) -- from the files' headers.
US_FILES: dict[str, tuple[int, int, int, bool]] = {
    "JPGLosslessP14SV1_1s_1f_8b.dcm": (1, 768, 1024, False),  # MONOCHROME2, JPEG lossless SV1
    "OBXXXX1A.dcm": (1, 600, 800, True),  # PALETTE COLOR, explicit LE
    "OBXXXX1A_2frame.dcm": (2, 600, 800, True),
    "OBXXXX1A_expb.dcm": (1, 600, 800, True),  # explicit big endian
    "OBXXXX1A_expb_2frame.dcm": (2, 600, 800, True),
    "OBXXXX1A_rle.dcm": (1, 600, 800, True),
    "OBXXXX1A_rle_2frame.dcm": (2, 600, 800, True),
    "US1_J2KI.dcm": (1, 480, 640, True),  # YBR_ICT, JPEG 2000
    "US1_J2KR.dcm": (1, 480, 640, True),  # YBR_RCT, JPEG 2000 lossless
    "US1_UNCI.dcm": (1, 480, 640, True),  # RGB
    "US1_UNCR.dcm": (1, 480, 640, True),
    "color-pl.dcm": (1, 120, 256, True),  # RGB, planar configuration 1
    "color-px.dcm": (1, 120, 256, True),  # RGB, planar configuration 0
    "color3d_jpeg_baseline.dcm": (120, 480, 640, True),  # YBR_FULL_422, JPEG baseline
    "gdcm-US-ALOKA-16.dcm": (1, 480, 640, True),  # 16-bit PALETTE COLOR, segmented LUT
    "gdcm-US-ALOKA-16_big.dcm": (1, 480, 640, True),  # same, explicit big endian
}


@functools.cache
def _decoded(name: str) -> DecodedImage:
    return read_image(_data_dir() / name)


def _maxdiff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


# --------------------------------------------------------------------------- real files


@pytest.mark.parametrize("name", sorted(US_FILES))
def test_ultrasound_file_decodes(name: str) -> None:
    n_frames, rows, cols, colour = US_FILES[name]
    img = _decoded(name)
    assert img.path == _data_dir() / name
    assert img.frames.shape == (n_frames, rows, cols, 3)
    assert img.frames.dtype == np.uint8
    assert img.frame_count == n_frames
    assert img.frame(0).shape == (rows, cols, 3)
    assert img.frame(-1).shape == (rows, cols, 3)
    with pytest.raises(IndexError):
        img.frame(n_frames)
    assert img.is_color is colour
    assert img.frames.any(), "all-zero image"
    assert int(img.frames.max()) - int(img.frames.min()) > 50, "no contrast"
    channels_differ = bool(
        (img.frames[..., 0] != img.frames[..., 1]).any() or (img.frames[..., 1] != img.frames[..., 2]).any()
    )
    assert channels_differ is colour
    meta = img.meta
    assert isinstance(meta, ImageMeta)
    assert (meta.rows, meta.columns, meta.frame_count) == (rows, cols, n_frames)
    assert meta.modality == "US"
    assert meta.sop_uid and meta.transfer_syntax


@pytest.mark.parametrize("name", sorted(US_FILES))
def test_read_header_matches_geometry(name: str) -> None:
    n_frames, rows, cols, _ = US_FILES[name]
    meta = read_header(_data_dir() / name)
    assert (meta.rows, meta.columns, meta.frame_count) == (rows, cols, n_frames)
    ds = pydicom.dcmread(_data_dir() / name, stop_before_pixels=True)
    assert meta.sop_uid == ds.SOPInstanceUID
    assert meta.study_uid == ds.StudyInstanceUID
    assert meta.series_uid == ds.SeriesInstanceUID
    assert meta.patient_id == (str(ds.get("PatientID", "")).strip() or None)
    assert meta.photometric == ds.PhotometricInterpretation
    assert meta.transfer_syntax == ds.file_meta.TransferSyntaxUID
    assert is_dicom(_data_dir() / name)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("OBXXXX1A.dcm", "OBXXXX1A_expb.dcm"),
        ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm"),
        ("OBXXXX1A_2frame.dcm", "OBXXXX1A_expb_2frame.dcm"),
        ("OBXXXX1A_2frame.dcm", "OBXXXX1A_rle_2frame.dcm"),
        ("US1_UNCR.dcm", "US1_J2KR.dcm"),  # lossless JPEG 2000 (YBR_RCT) == RGB original
        ("US1_UNCI.dcm", "US1_J2KI.dcm"),  # UNCI is the decompressed J2KI
        ("color-pl.dcm", "color-px.dcm"),  # planar vs interleaved
        ("gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm"),  # little vs big endian
    ],
)
def test_pairs_agree(a: str, b: str) -> None:
    assert _maxdiff(_decoded(a).frames, _decoded(b).frames) == 0


def test_rgb_matches_raw_pixels() -> None:
    raw = pydicom.dcmread(_data_dir() / "US1_UNCR.dcm").pixel_array
    assert np.array_equal(_decoded("US1_UNCR.dcm").frame(0), raw)


def test_monochrome_8bit_is_passed_through() -> None:
    raw = pydicom.dcmread(_data_dir() / "JPGLosslessP14SV1_1s_1f_8b.dcm").pixel_array
    frame = _decoded("JPGLosslessP14SV1_1s_1f_8b.dcm").frame(0)
    for c in range(3):
        assert np.array_equal(frame[..., c], raw)


def test_jpeg_ybr_422_colours_match_reference_decode() -> None:
    path = _data_dir() / "color3d_jpeg_baseline.dcm"
    # pydicom's own default decode (GDCM + float YBR->RGB) as an independent reference.
    ref = pydicom.pixels.pixel_array(path, index=0)
    assert ref.shape == (480, 640, 3)
    assert _maxdiff(_decoded("color3d_jpeg_baseline.dcm").frame(0), ref) <= 2
    ref_last = pydicom.pixels.pixel_array(path, index=119)
    assert _maxdiff(_decoded("color3d_jpeg_baseline.dcm").frame(119), ref_last) <= 2


def test_palette_8bit_lut_in_16bit_words_is_scaled_exactly() -> None:
    ds = pydicom.dcmread(_data_dir() / "OBXXXX1A.dcm")
    assert list(ds.RedPaletteColorLookupTableDescriptor) == [256, 0, 16]
    lut16 = apply_color_lut(ds.pixel_array, ds)  # entries are v << 8
    assert np.array_equal(_decoded("OBXXXX1A.dcm").frame(0), (lut16 >> 8).astype(np.uint8))


def test_palette_16bit_full_range_is_scaled_exactly() -> None:
    ds = pydicom.dcmread(_data_dir() / "gdcm-US-ALOKA-16.dcm")
    assert ds.BitsAllocated == 16 and ds.RedPaletteColorLookupTableDescriptor[2] == 16
    lut16 = apply_color_lut(ds.pixel_array, ds)  # entries are v * 257
    assert int(lut16.max()) > 255
    expected = np.rint(lut16 / 257.0).astype(np.uint8)
    assert np.array_equal(_decoded("gdcm-US-ALOKA-16.dcm").frame(0), expected)


def test_cine_frame_time() -> None:
    img = _decoded("color3d_jpeg_baseline.dcm")
    assert img.frame_time_ms == pytest.approx(33.333)
    assert _decoded("US1_UNCR.dcm").frame_time_ms is None


def test_regions_and_spacing_jpeg_lossless() -> None:
    img = _decoded("JPGLosslessP14SV1_1s_1f_8b.dcm")
    (r,) = img.regions
    assert (r.x0, r.y0, r.x1, r.y1) == (14, 38, 1010, 758)
    assert (r.units_x, r.units_y, r.spatial_format, r.data_type) == (3, 3, 1, 1)
    assert r.physical_delta_x == pytest.approx(0.25476696592378157)  # 0.0254767 cm
    assert r.physical_delta_y == pytest.approx(0.25476696592378157)
    assert img.pixel_spacing_mm == pytest.approx((0.25476696592378157, 0.25476696592378157))


def test_regions_palette_file_with_doppler_strip() -> None:
    img = _decoded("OBXXXX1A.dcm")
    tissue, strip = img.regions
    assert (tissue.x0, tissue.y0, tissue.x1, tissue.y1) == (120, 60, 800, 518)
    assert tissue.physical_delta_x == pytest.approx(0.2622878766196998)
    # Second region: units x = seconds (4), y = none (0) -> no mm deltas.
    assert (strip.x0, strip.y0, strip.x1, strip.y1) == (176, 522, 743, 576)
    assert (strip.units_x, strip.units_y, strip.spatial_format, strip.data_type) == (4, 0, 4, 10)
    assert strip.physical_delta_x is None and strip.physical_delta_y is None
    assert img.pixel_spacing_mm == pytest.approx((0.2622878766196998, 0.2622878766196998))
    assert tissue.contains(120, 60) and tissue.contains(800, 518) and tissue.contains(400.5, 300)
    assert not tissue.contains(119.9, 300) and not tissue.contains(400, 519)


def test_regions_dual_view_and_cine() -> None:
    aloka = _decoded("gdcm-US-ALOKA-16.dcm")
    assert [(r.x0, r.y0, r.x1, r.y1) for r in aloka.regions] == [
        (32, 24, 335, 415),
        (336, 24, 639, 415),
        (32, 40, 63, 103),
    ]
    assert aloka.regions[2].physical_delta_x is None and aloka.regions[2].data_type == 13
    assert aloka.pixel_spacing_mm == pytest.approx((0.3826530650258064, 0.3826530650258064))
    cine = _decoded("color3d_jpeg_baseline.dcm")
    (r,) = cine.regions
    assert (r.x0, r.y0, r.x1, r.y1) == (84, 31, 595, 414)
    assert cine.pixel_spacing_mm == pytest.approx((0.5104970559477806, 0.5104970559477806))


def test_no_regions_no_spacing() -> None:
    img = _decoded("US1_UNCR.dcm")
    assert img.regions == () and img.pixel_spacing_mm is None


# --------------------------------------------------------------------------- synthetic DICOM


def _save(ds: pydicom.Dataset, path: Path) -> Path:
    ds.save_as(path)
    return path


def _mono_file(tmp_path: Path, arr: np.ndarray, name: str, *, bits_stored: int | None = None, **attrs: object) -> Path:
    """A native MONOCHROME2 DICOM built from US1_UNCR's header and ``arr`` ((H,W) or (F,H,W))."""
    ds = pydicom.dcmread(_data_dir() / "US1_UNCR.dcm")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    del ds.PlanarConfiguration
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(arr.dtype.kind == "i")
    ds.Rows, ds.Columns = arr.shape[-2:]
    if arr.ndim == 3:
        ds.NumberOfFrames = arr.shape[0]
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = arr.tobytes()
    return _save(ds, tmp_path / name)


def test_native_ybr_full_is_converted(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_data_dir() / "US1_UNCR.dcm")
    rgb = ds.pixel_array
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.PixelData = convert_color_space(rgb, "RGB", "YBR_FULL").tobytes()
    img = read_image(_save(ds, tmp_path / "ybr_full.dcm"))
    assert img.is_color and _maxdiff(img.frame(0), rgb) <= 2


def test_native_ybr_full_422_is_upsampled_and_converted(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_data_dir() / "US1_UNCR.dcm")
    ybr = convert_color_space(ds.pixel_array, "RGB", "YBR_FULL").astype(np.int32)
    cb = (ybr[:, 0::2, 1] + ybr[:, 1::2, 1] + 1) // 2
    cr = (ybr[:, 0::2, 2] + ybr[:, 1::2, 2] + 1) // 2
    packed = np.stack([ybr[:, 0::2, 0], ybr[:, 1::2, 0], cb, cr], axis=-1).astype(np.uint8)  # Y Y Cb Cr
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PixelData = packed.tobytes()
    img = read_image(_save(ds, tmp_path / "ybr_422.dcm"))
    full = ybr.copy()
    full[:, 0::2, 1] = full[:, 1::2, 1] = cb
    full[:, 0::2, 2] = full[:, 1::2, 2] = cr
    expected = convert_color_space(full.astype(np.uint8), "YBR_FULL", "RGB")
    assert img.frames.shape == (1, 480, 640, 3)
    assert _maxdiff(img.frame(0), expected) <= 2


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    arr = (np.arange(64 * 64) % 256).astype(np.uint8).reshape(64, 64)
    img = read_image(_mono_file(tmp_path, arr, "m1.dcm", PhotometricInterpretation="MONOCHROME1"))
    assert not img.is_color
    assert np.array_equal(img.frame(0)[..., 0], 255 - arr)
    assert np.array_equal(img.frame(0)[..., 0], img.frame(0)[..., 2])


def test_12bit_window_is_applied(tmp_path: Path) -> None:
    arr = np.arange(4096, dtype=np.uint16).reshape(64, 64)
    img = read_image(_mono_file(tmp_path, arr, "w.dcm", bits_stored=12, WindowCenter=2048, WindowWidth=1024))
    v = img.frame(0)[..., 0].ravel()
    assert v[1536] == 0 and v[2559] == 255 and v[2048] == 128  # PS3.3 C.11.2.1.2 linear window
    assert v[0] == 0 and v[-1] == 255


def test_16bit_without_window_uses_cine_min_max(tmp_path: Path) -> None:
    arr = np.stack([np.arange(4096).reshape(64, 64), 2 * np.arange(4096).reshape(64, 64)]).astype(np.uint16)
    img = read_image(_mono_file(tmp_path, arr, "mm.dcm", RescaleSlope=2, RescaleIntercept=-100))
    assert img.frames.shape == (2, 64, 64, 3)
    assert img.frames.min() == 0 and img.frames.max() == 255
    assert img.frame(0).max() == 128  # one scale for the whole loop, no per-frame flicker


def test_signed_monochrome(tmp_path: Path) -> None:
    arr = (np.arange(4096).reshape(64, 64) - 2048).astype(np.int16)
    v = read_image(_mono_file(tmp_path, arr, "s.dcm")).frame(0)[..., 0].ravel()
    assert (v[0], v[2048], v[-1]) == (0, 128, 255)


def test_frame_time_from_rate_and_vector(tmp_path: Path) -> None:
    arr = np.zeros((3, 8, 8), np.uint8)
    arr[:, 0, 0] = 200
    img = read_image(_mono_file(tmp_path, arr, "r.dcm", RecommendedDisplayFrameRate=25))
    assert img.frame_time_ms == pytest.approx(40.0)
    img = read_image(_mono_file(tmp_path, arr, "v.dcm", FrameTimeVector=[0, 20, 30]))
    assert img.frame_time_ms == pytest.approx(25.0)


def test_preamble_less_dicom(tmp_path: Path) -> None:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(_data_dir() / "OBXXXX1A.dcm")
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    path = tmp_path / "raw_dataset"  # no suffix, no preamble, no file meta
    path.write_bytes(buf.getvalue())
    assert is_dicom(path)
    assert read_header(path).sop_uid == ds.SOPInstanceUID
    assert np.array_equal(read_image(path).frames, _decoded("OBXXXX1A.dcm").frames)


# --------------------------------------------------------------------------- raster files


def test_busi_png() -> None:
    if not BUSI_BENIGN.is_dir():
        pytest.skip(f"{BUSI_BENIGN} is absent")
    path = next((p for p in sorted(BUSI_BENIGN.glob("* (*).png")) if "mask" not in p.name), None)
    if path is None:
        pytest.skip("no BUSI image found")
    img = read_image(path)
    ref = np.asarray(Image.open(path).convert("RGB"))
    assert img.path == path
    assert img.frames.shape == (1, *ref.shape) and img.frames.dtype == np.uint8
    assert np.array_equal(img.frame(0), ref)
    grey = bool((ref[..., 0] == ref[..., 1]).all() and (ref[..., 1] == ref[..., 2]).all())
    assert img.is_color is (not grey)
    assert (img.frame_time_ms, img.pixel_spacing_mm, img.regions) == (None, None, ())
    meta = read_header(path)
    assert (meta.rows, meta.columns, meta.frame_count) == (ref.shape[0], ref.shape[1], 1)
    assert not is_dicom(path)


def test_jpeg_written_with_pillow(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:120, 0:160]
    rgb = np.stack([xx * 255 // 159, yy * 255 // 119, np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    path = tmp_path / "colour image (1).JPG"
    Image.fromarray(rgb).save(path, quality=95)
    img = read_image(path)
    assert img.frames.shape == (1, 120, 160, 3) and img.is_color
    assert np.abs(img.frame(0).astype(int) - rgb).mean() < 3
    grey_path = tmp_path / "grey.jpeg"
    Image.fromarray(rgb[..., 0]).save(grey_path)
    grey = read_image(grey_path)
    assert not grey.is_color and grey.frames.shape == (1, 120, 160, 3)
    assert ".jpg" in SUPPORTED_RASTER_SUFFIXES and ".png" in SUPPORTED_RASTER_SUFFIXES


def test_jpeg_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgb = np.zeros((40, 100, 3), np.uint8)
    rgb[:, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(rgb).save(path, exif=exif, quality=95)
    img = read_image(path)
    assert img.frames.shape == (1, 100, 40, 3)
    meta = read_header(path)
    assert (meta.rows, meta.columns) == (100, 40)


def test_16bit_png_is_scaled(tmp_path: Path) -> None:
    arr = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 10
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    img = read_image(path)
    assert not img.is_color and img.frames.min() == 0 and img.frames.max() == 255


# --------------------------------------------------------------------------- bad inputs


def _assert_read_error(path: Path, *fragments: str) -> ImageReadError:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    err = info.value
    assert err.path == path
    assert str(err) == f"{path}: {err.reason}"
    for fragment in fragments:
        assert fragment in err.reason, err.reason
    # read_header either succeeds (pixel data are not checked) or raises ImageReadError.
    try:
        read_header(path)
    except ImageReadError as exc:
        assert exc.path == path
    return err


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_truncated_native_dicom(tmp_path: Path) -> None:
    data = (_data_dir() / "OBXXXX1A.dcm").read_bytes()
    path = tmp_path / "half native.dcm"
    path.write_bytes(data[: len(data) // 2])
    _assert_read_error(path, "truncated pixel data", "expected 480000 bytes")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_truncated_compressed_dicom(tmp_path: Path) -> None:
    data = (_data_dir() / "US1_J2KR.dcm").read_bytes()
    path = tmp_path / "half j2k.dcm"
    path.write_bytes(data[: len(data) // 2])
    _assert_read_error(path, "truncated pixel data")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_dicom_truncated_in_header(tmp_path: Path) -> None:
    data = (_data_dir() / "OBXXXX1A.dcm").read_bytes()
    path = tmp_path / "header.dcm"
    path.write_bytes(data[:1000])
    _assert_read_error(path, "truncated")


def test_random_bytes_named_dcm(tmp_path: Path) -> None:
    path = tmp_path / "random.dcm"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert not is_dicom(path)
    _assert_read_error(path, "not a DICOM or image file")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    assert not is_dicom(path)
    _assert_read_error(path, "empty file")


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes (2).png"
    path.write_text("this is not an image\n" * 20)
    _assert_read_error(path, "not a DICOM or image file")


def test_dicom_without_pixel_data(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_data_dir() / "OBXXXX1A.dcm")
    del ds.PixelData
    path = _save(ds, tmp_path / "nopixels.dcm")
    assert is_dicom(path)
    _assert_read_error(path, "no pixel data")
    assert read_header(path).rows == 600


def test_unsupported_transfer_syntax(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_data_dir() / "US1_J2KR.dcm")
    ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG4HP41
    path = tmp_path / "video.dcm"
    ds.save_as(path, enforce_file_format=False)
    _assert_read_error(path, "unsupported compression", "H.264")
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6"
    path = tmp_path / "private.dcm"
    ds.save_as(path, enforce_file_format=False)
    _assert_read_error(path, "unsupported transfer syntax 1.2.3.4.5.6")


def test_corrupt_compressed_frame(tmp_path: Path) -> None:
    from pydicom.encaps import encapsulate, generate_frames

    ds = pydicom.dcmread(_data_dir() / "US1_J2KR.dcm")
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[:200] + bytes(len(frame) - 200)])
    path = _save(ds, tmp_path / "corrupt.dcm")
    _assert_read_error(path, "cannot decode JPEG 2000")


def test_png_truncated_half_way(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:200, 0:300]
    noise = np.random.default_rng(1).integers(0, 256, (200, 300), dtype=np.uint8)
    src = tmp_path / "full.png"
    Image.fromarray(((xx + yy) % 256).astype(np.uint8) ^ noise).save(src)
    data = src.read_bytes()
    path = tmp_path / "half (3).png"
    path.write_bytes(data[: len(data) // 2])
    _assert_read_error(path, "truncated or corrupt PNG")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    _assert_read_error(tmp_path / "missing.dcm", "file not found")
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)
    assert not is_dicom(tmp_path / "missing.dcm")


# --------------------------------------------------------------------------- misc API


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "a b (1).bin"
    path.write_bytes(b"busviewer" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"busviewer" * 1000).hexdigest()
    with pytest.raises(ImageReadError):
        sha256_file(tmp_path / "nope")


def test_image_read_error_is_picklable() -> None:
    err = ImageReadError("/x/y.dcm", "no pixel data")
    assert str(err) == f"{Path('/x/y.dcm')}: no pixel data"
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.path, clone.reason, str(clone)) == (err.path, err.reason, str(err))


def test_region_contains_is_inclusive() -> None:
    r = UltrasoundRegion(10, 20, 30, 40, 0.1, 0.1, 3, 3, 1, 1)
    assert r.contains(10, 20) and r.contains(30, 40) and not r.contains(31, 40)
    with pytest.raises(AttributeError):
        r.x0 = 5  # type: ignore[misc]
    _ = copy.copy(r)
