"""Reading ultrasound images: DICOM (any ultrasound photometric interpretation and the
common transfer syntaxes) and raster files (PNG, JPEG, BMP, TIFF, ...).

``read_image`` always returns ``(F, H, W, 3) uint8`` RGB frames; every failure is an
:class:`ImageReadError` naming the file and a human-readable reason.  No Qt, no torch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from busviewer.core import dicom_decode
from busviewer.core.dicom_decode import DicomDecodeError
from busviewer.core.geometry import UltrasoundRegion, dicom_geometry

__all__ = [
    "SUPPORTED_RASTER_SUFFIXES",
    "DecodedImage",
    "ImageMeta",
    "ImageReadError",
    "UltrasoundRegion",
    "is_dicom",
    "read_header",
    "read_image",
    "read_image_here",
    "sha256_file",
]

PathLike = str | os.PathLike[str]

SUPPORTED_RASTER_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
"""Lower-case suffixes of raster files the importer should pick up."""

# Formats Pillow may open (keeps e.g. EPS, which would run Ghostscript, out).
# MPO (multi-picture JPEG) is opened through the JPEG entry.
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP")
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class ImageReadError(Exception):
    """A file could not be read as an image; ``str(e) == f"{path}: {reason}"``."""

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class ImageMeta:
    """Identifiers and basic geometry (DICOM attributes; mostly None for raster files)."""

    patient_id: str | None
    patient_name: str | None
    study_uid: str | None
    study_date: str | None
    study_description: str | None
    series_uid: str | None
    series_description: str | None
    sop_uid: str | None
    modality: str | None
    photometric: str | None
    transfer_syntax: str | None
    manufacturer: str | None
    rows: int
    columns: int
    frame_count: int


@dataclass
class DecodedImage:
    """Decoded pixels plus geometry; ``frames`` is always ``(F, H, W, 3) uint8`` RGB."""

    path: Path
    frames: np.ndarray
    is_color: bool
    frame_time_ms: float | None
    pixel_spacing_mm: tuple[float, float] | None
    regions: tuple[UltrasoundRegion, ...]
    meta: ImageMeta
    #: Why spacing, frame time or a region was refused ("not calibrated"); empty when none was.
    calibration_issues: tuple[str, ...] = ()

    @property
    def frame_count(self) -> int:
        """Number of frames (1 for still images)."""
        return int(self.frames.shape[0])

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as ``(H, W, 3) uint8``; negative indices count from the end."""
        n = self.frame_count
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range for {n} frame(s)")
        return self.frames[i]


# --------------------------------------------------------------------------- public API


def is_dicom(path: PathLike) -> bool:
    """True when ``path`` is a DICOM file ('DICM' at offset 128, or parses as DICOM)."""
    p = Path(path)
    try:
        if not p.is_file():
            return False
    except OSError:
        return False
    return dicom_decode.is_dicom_file(p)


def read_header(path: PathLike) -> ImageMeta:
    """Identifiers and geometry without decoding pixels (fast; used for grouping).

    Does not check that the pixel data are decodable; :func:`read_image` does.
    """
    p = Path(path)
    try:
        _check_file(p)
        if dicom_decode.is_dicom_file(p):
            ds, _ = dicom_decode.read_dataset(p, stop_before_pixels=True)
            return _dicom_meta(ds)
        return _raster_header(p)
    except ImageReadError:
        raise
    except DicomDecodeError as exc:
        raise ImageReadError(p, str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - never leak other exception types
        raise ImageReadError(p, f"unexpected error reading header ({type(exc).__name__}: {exc})") from exc


def read_image(path: PathLike) -> DecodedImage:
    """Decode a DICOM, PNG, JPEG (or BMP/TIFF) file to RGB frames; see :class:`DecodedImage`.

    Pixel data that need a native codec (compressed DICOM) are decoded in a decoder
    process (:mod:`busviewer.core.decode_pool`), so a codec that aborts costs only that
    file: ``ImageReadError(path, "decoder crashed on this file ...")``.
    """
    from busviewer.core import decode_pool

    p = Path(path)
    if decode_pool.wants_isolation(p):
        return decode_pool.default_pool().read(p)
    return read_image_here(p)


def read_image_here(path: PathLike) -> DecodedImage:
    """:func:`read_image` in this process (what a decoder process runs)."""
    p = Path(path)
    try:
        _check_file(p)
        if dicom_decode.is_dicom_file(p):
            return _read_dicom(p)
        return _read_raster(p)
    except ImageReadError:
        raise
    except DicomDecodeError as exc:
        raise ImageReadError(p, str(exc)) from exc
    except MemoryError as exc:
        raise ImageReadError(p, "not enough memory to decode the image") from exc
    except Exception as exc:  # noqa: BLE001 - never leak other exception types
        raise ImageReadError(p, f"unexpected error decoding image ({type(exc).__name__}: {exc})") from exc


def sha256_file(path: PathLike) -> str:
    """Hex SHA-256 of the file's bytes (raises ImageReadError if it cannot be read)."""
    p = Path(path)
    try:
        with p.open("rb") as fp:
            return hashlib.file_digest(fp, "sha256").hexdigest()
    except OSError as exc:
        raise ImageReadError(p, f"cannot read file ({exc.strerror or exc})") from exc


# --------------------------------------------------------------------------- helpers


def _check_file(p: Path) -> None:
    """Reject missing, non-regular, unreadable and empty files with a clear reason."""
    try:
        if not p.exists():
            raise ImageReadError(p, "file not found")
        if p.is_dir():
            raise ImageReadError(p, "is a directory, not an image file")
        if not p.is_file():
            raise ImageReadError(p, "not a regular file")
        size = p.stat().st_size
        with p.open("rb"):
            pass
    except ImageReadError:
        raise
    except OSError as exc:
        raise ImageReadError(p, f"cannot read file ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageReadError(p, "empty file (0 bytes)")


# ----- DICOM


def _text(ds: Dataset, keyword: str) -> str | None:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed value is just "unknown"
        return None
    if value is None:
        return None
    if isinstance(value, MultiValue):
        value = "\\".join(str(v) for v in value)
    text = str(value).replace("\x00", "").strip()
    return text or None


def _opt_int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _dicom_meta(ds: Dataset, frames: np.ndarray | None = None) -> ImageMeta:
    tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if frames is not None:
        n, rows, cols = int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
    else:
        rows, cols = _opt_int(ds, "Rows") or 0, _opt_int(ds, "Columns") or 0
        n = max(1, _opt_int(ds, "NumberOfFrames") or 1)
    return ImageMeta(
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
        study_uid=_text(ds, "StudyInstanceUID"),
        study_date=_text(ds, "StudyDate"),
        study_description=_text(ds, "StudyDescription"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        series_description=_text(ds, "SeriesDescription"),
        sop_uid=_text(ds, "SOPInstanceUID"),
        modality=_text(ds, "Modality"),
        photometric=_text(ds, "PhotometricInterpretation"),
        transfer_syntax=str(tsyntax) if tsyntax else None,
        manufacturer=_text(ds, "Manufacturer"),
        rows=rows,
        columns=cols,
        frame_count=n,
    )


def _read_dicom(p: Path) -> DecodedImage:
    ds = dicom_decode.load_dataset(p)
    pixels = dicom_decode.decode_frames(ds)
    geometry = dicom_geometry(ds, int(pixels.frames.shape[1]), int(pixels.frames.shape[2]))
    return DecodedImage(
        path=p,
        frames=pixels.frames,
        is_color=pixels.is_color,
        frame_time_ms=geometry.frame_time_ms,
        pixel_spacing_mm=geometry.pixel_spacing_mm,
        regions=geometry.regions,
        meta=_dicom_meta(ds, pixels.frames),
        calibration_issues=geometry.issues,
    )


# ----- raster


def _open_raster(p: Path) -> Image.Image:
    try:
        return Image.open(p, formats=_PIL_FORMATS)
    except UnidentifiedImageError:
        suffix = p.suffix.lower()
        if suffix in (".dcm", ".dicom", ".dic"):
            detail = f"no DICOM header found despite the '{p.suffix}' suffix"
        elif suffix in SUPPORTED_RASTER_SUFFIXES:
            detail = f"content is not a recognised image format despite the '{p.suffix}' suffix"
        else:
            detail = "no DICOM header and not a recognised image format"
        raise ImageReadError(p, f"not a DICOM or image file ({detail})") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(p, f"image too large ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(p, f"corrupt image header ({exc})") from exc


def _photometric_for_mode(mode: str) -> str:
    if mode in _GREY_MODES:
        return "MONOCHROME2"
    return "PALETTE COLOR" if mode in ("P", "PA") else "RGB"


def _raster_meta(photometric: str, rows: int, cols: int, frames: int) -> ImageMeta:
    return ImageMeta(
        patient_id=None,
        patient_name=None,
        study_uid=None,
        study_date=None,
        study_description=None,
        series_uid=None,
        series_description=None,
        sop_uid=None,
        modality=None,
        photometric=photometric,
        transfer_syntax=None,
        manufacturer=None,
        rows=rows,
        columns=cols,
        frame_count=frames,
    )


def _raster_header(p: Path) -> ImageMeta:
    with _open_raster(p) as img:
        cols, rows = img.size
        try:
            if img.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation: rotated 90°
                rows, cols = cols, rows
        except Exception:  # noqa: BLE001 - broken EXIF is ignored
            pass
        return _raster_meta(_photometric_for_mode(img.mode), rows, cols, int(getattr(img, "n_frames", 1)))


def _frame_array(frame: Image.Image) -> tuple[np.ndarray, bool]:
    """One PIL frame -> (array, is_grey); grey arrays may be >8-bit (scaled later)."""
    mode = frame.mode
    if mode in ("1", "LA", "La"):
        return np.asarray(frame.convert("L")), True
    if mode in _GREY_MODES:
        return np.asarray(frame), True
    if mode != "RGB":
        frame = frame.convert("RGB")
    return np.asarray(frame), False


def _grey_to_uint8(arrays: list[np.ndarray]) -> list[np.ndarray]:
    if all(a.dtype == np.uint8 for a in arrays):
        return arrays
    lo = min(float(np.min(a)) for a in arrays)
    hi = max(float(np.max(a)) for a in arrays)
    span = hi - lo
    if span <= 0:
        return [np.zeros(a.shape, np.uint8) for a in arrays]
    return [np.clip(np.rint((a.astype(np.float64) - lo) * (255.0 / span)), 0, 255).astype(np.uint8) for a in arrays]


def _read_raster(p: Path) -> DecodedImage:
    with _open_raster(p) as img:
        fmt = img.format or p.suffix.lstrip(".").upper()
        photometric = _photometric_for_mode(img.mode)
        if fmt == "PNG":
            # verify() checks chunk CRCs and the end of the stream, so a truncated PNG
            # fails even when ImageFile.LOAD_TRUNCATED_IMAGES was switched on elsewhere.
            try:
                img.verify()
            except Exception as exc:  # noqa: BLE001
                raise ImageReadError(p, f"truncated or corrupt PNG image ({exc})") from exc
    with _open_raster(p) as img:
        arrays: list[np.ndarray] = []
        grey_flags: list[bool] = []
        try:
            for frame in ImageSequence.Iterator(img):
                frame.load()
                frame = ImageOps.exif_transpose(frame) or frame
                arr, grey = _frame_array(frame)
                arrays.append(np.array(arr))
                grey_flags.append(grey)
        except ImageReadError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageReadError(p, f"truncated or corrupt {fmt} image ({exc})") from exc
    if not arrays:
        raise ImageReadError(p, f"{fmt} file contains no image")
    if len({a.shape[:2] for a in arrays}) > 1:
        raise ImageReadError(p, f"{fmt} frames have different sizes; not supported")

    grey_idx = [i for i, grey in enumerate(grey_flags) if grey]
    for i, g in zip(grey_idx, _grey_to_uint8([arrays[i] for i in grey_idx])):
        arrays[i] = np.repeat(g[..., np.newaxis], 3, axis=-1)
    frames = np.ascontiguousarray(np.stack(arrays).astype(np.uint8, copy=False))
    # Colour by content: BUSI-style PNGs store grey images as RGB with equal channels.
    is_color = bool(np.any(frames[..., 0] != frames[..., 1]) or np.any(frames[..., 1] != frames[..., 2]))
    f, h, w = frames.shape[:3]
    return DecodedImage(
        path=p,
        frames=frames,
        is_color=is_color,
        frame_time_ms=None,
        pixel_spacing_mm=None,
        regions=(),
        meta=_raster_meta(photometric, h, w, f),
    )
