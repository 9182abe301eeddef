"""DICOM pixel decoding helpers for :mod:`busviewer.core.imageio`.

Everything here works on pydicom datasets and numpy arrays and reports problems as
:class:`DicomDecodeError` carrying a short human-readable reason; ``imageio`` adds the
file path.  No Qt, no torch.

Notes on pydicom 3 behaviour that this module relies on (checked against the
``pydicom-data`` ultrasound files):

* ``Decoder.as_array(ds, as_rgb=False)`` returns full-resolution samples (YBR_FULL_422
  is upsampled) and reports the *decoded* photometric interpretation in its metadata:
  JPEG 2000 YBR_ICT / YBR_RCT come back as RGB (the codec applies the inverse MCT),
  JPEG and native YBR data stay YBR.  ``ds.PhotometricInterpretation`` keeps the stored
  value, and ``ds.pixel_array`` already converts YBR to RGB (``as_rgb=True``), so
  converting ``ds.pixel_array`` based on the dataset's value would convert twice.  We
  always branch on the decoder's metadata and convert YBR ourselves with Pillow's
  fixed-point routine (pydicom's float conversion took ~3 s for a 120-frame loop).
* pydicom silently accepts truncated files: a short native Pixel Data value is read
  as is, a truncated encapsulated Pixel Data element is dropped (sometimes with the
  whole data set), and a file cut inside an element header just ends.  The checks in
  :func:`load_dataset` turn these into explicit "truncated" reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, convert_color_space, get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

__all__ = [
    "DicomDecodeError",
    "DicomPixels",
    "decode_frames",
    "has_dicm_prefix",
    "is_dicom_file",
    "load_dataset",
    "read_dataset",
]

PIXEL_DATA_TAG = 0x7FE00010
_UNDEFINED_LENGTH = 0xFFFFFFFF
_VIDEO_WORDS = ("MPEG", "H.264", "H.265", "HEVC")
# JPEG Baseline / Extended: Pillow decodes ~3.5x faster than GDCM (same pixels).
_PREFERRED_PLUGIN = {"1.2.840.10008.1.2.4.50": "pillow", "1.2.840.10008.1.2.4.51": "pillow"}


class DicomDecodeError(Exception):
    """A DICOM file could not be decoded; ``str(e)`` is the human-readable reason."""


@dataclass
class DicomPixels:
    """Decoded pixels: ``frames`` is ``(F, H, W, 3) uint8`` RGB."""

    frames: np.ndarray
    is_color: bool


# --------------------------------------------------------------------------- reading


def has_dicm_prefix(path: Path) -> bool:
    """True when the file has the 128-byte preamble followed by ``DICM``."""
    try:
        with path.open("rb") as fp:
            head = fp.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def is_dicom_file(path: Path) -> bool:
    """``DICM`` at offset 128, or a preamble-less data set that parses as DICOM."""
    if has_dicm_prefix(path):
        return True
    try:
        with path.open("rb") as fp:
            head = fp.read(8)
    except OSError:
        return False
    # A raw data set starts with a group 0x0002 or 0x0008 tag (either endianness).
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08"):
        return False
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        return any(k in ds for k in ("SOPClassUID", "SOPInstanceUID", "Modality")) or ("Rows" in ds and "Columns" in ds)
    except Exception:  # noqa: BLE001 - any parse failure means "not DICOM"
        return False


def _ensure_transfer_syntax(ds: Dataset) -> None:
    """Fill a missing (0002,0010) from how the data set was actually encoded."""
    if ds.file_meta.get("TransferSyntaxUID") is not None:
        return
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        return
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def read_dataset(path: Path, *, stop_before_pixels: bool) -> tuple[Dataset, int]:
    """Parse ``path``; return the data set and the file offset where parsing stopped.

    With ``stop_before_pixels`` the offset is the start of the Pixel Data element when
    the file has one, else the end of the file.
    """
    force = not has_dicm_prefix(path)
    try:
        with path.open("rb") as fp:
            ds = pydicom.dcmread(fp, force=force, stop_before_pixels=stop_before_pixels)
            pos = fp.tell()
    except InvalidDicomError as exc:
        raise DicomDecodeError(f"not a valid DICOM file ({_one_line(exc)})") from exc
    except OSError as exc:
        raise DicomDecodeError(f"cannot read file ({exc.strerror or exc})") from exc
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on garbage
        raise DicomDecodeError(f"corrupt DICOM header ({type(exc).__name__}: {_one_line(exc)})") from exc
    _ensure_transfer_syntax(ds)
    return ds, pos


def _check_header_tail(ds: Dataset, file_size: int) -> None:
    """Raise when the last top-level element is cut short (file truncated in the header)."""
    keys = list(ds.keys())
    if not keys:
        raise DicomDecodeError("truncated file (no data elements could be read)")
    elem = ds.get_item(keys[-1])
    if not isinstance(elem, RawDataElement) or elem.length == _UNDEFINED_LENGTH:
        return
    got = len(elem.value) if elem.value is not None else elem.length
    if got < elem.length:
        raise DicomDecodeError(f"truncated file (element {elem.tag} expects {elem.length} bytes, got {got})")
    if elem.value_tell + elem.length < file_size and elem.tag < PIXEL_DATA_TAG:
        # pydicom stops silently when fewer than 8 bytes of a header remain.
        raise DicomDecodeError(f"truncated file (ends inside the element after {elem.tag})")


def load_dataset(path: Path) -> Dataset:
    """Read a DICOM file including pixel data, with explicit truncation checks."""
    file_size = path.stat().st_size
    header, pos = read_dataset(path, stop_before_pixels=True)
    tsyntax = header.file_meta.get("TransferSyntaxUID")
    deflated = tsyntax == DeflatedExplicitVRLittleEndian
    if not deflated and pos >= file_size:
        _check_header_tail(header, file_size)
        raise DicomDecodeError("no pixel data (the DICOM file has no Pixel Data element)")
    try:
        ds, _ = read_dataset(path, stop_before_pixels=False)
    except DicomDecodeError as exc:
        if deflated:
            raise
        raise DicomDecodeError(f"truncated or corrupt pixel data element ({exc})") from exc
    if "PixelData" in ds:
        return ds
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise DicomDecodeError("float pixel data is not supported")
    if deflated:
        raise DicomDecodeError("no pixel data (the DICOM file has no Pixel Data element)")
    raise DicomDecodeError(
        "truncated pixel data (the file ends inside the Pixel Data element"
        + (", before the end of the compressed frames)" if _is_compressed(tsyntax) else ")")
    )


def _is_compressed(tsyntax: Any) -> bool:
    try:
        return bool(UID(str(tsyntax)).is_compressed)
    except Exception:  # noqa: BLE001
        return False


# --------------------------------------------------------------------------- decoding


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int(ds: Dataset, keyword: str, default: int) -> int:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _expected_native_bytes(ds: Dataset, frames: int) -> int:
    rows, cols = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    spp, bits = _int(ds, "SamplesPerPixel", 1), _int(ds, "BitsAllocated", 8)
    if bits == 1:
        return math.ceil(rows * cols * spp * frames / 8)
    pi = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    samples = rows * cols * (2 if pi == "YBR_FULL_422" else spp)
    return samples * (bits // 8) * frames


def _check_native_length(ds: Dataset, frames: int) -> None:
    elem = ds.get_item(PIXEL_DATA_TAG)
    value = elem.value if elem is not None else None
    got = len(value) if isinstance(value, (bytes, bytearray)) else None
    if got is None:
        return
    expected = _expected_native_bytes(ds, frames)
    declared = getattr(elem, "length", None)
    if isinstance(declared, int) and declared != _UNDEFINED_LENGTH and got < declared:
        expected = max(expected, declared)
    if got < expected:
        raise DicomDecodeError(f"truncated pixel data (expected {expected} bytes, got {got})")


def _required(ds: Dataset) -> None:
    missing = [
        k
        for k in ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "PhotometricInterpretation")
        if ds.get(k) in (None, "")
    ]
    if missing:
        raise DicomDecodeError(f"incomplete image header (missing {', '.join(missing)})")
    if _int(ds, "Rows", 0) <= 0 or _int(ds, "Columns", 0) <= 0:
        raise DicomDecodeError("invalid image size (Rows/Columns are zero)")


def _unsupported_syntax_reason(tsyntax: UID) -> str:
    name = tsyntax.name if tsyntax.is_valid else str(tsyntax)
    if any(word in name.upper() for word in _VIDEO_WORDS):
        return (
            f"unsupported compression {name}: video-compressed cine loops cannot be decoded "
            "by pydicom; export the loop as uncompressed or JPEG DICOM"
        )
    if tsyntax.is_private or name == str(tsyntax):
        return f"unsupported transfer syntax {tsyntax} (unknown or private)"
    return f"unsupported compression {name}: no decoder is available for it"


def decode_frames(ds: Dataset) -> DicomPixels:
    """Decode all frames of ``ds`` to ``(F, H, W, 3) uint8`` RGB."""
    _required(ds)
    tsyntax = ds.file_meta.get("TransferSyntaxUID")
    if tsyntax is None:
        raise DicomDecodeError("unknown transfer syntax (no (0002,0010) and encoding unknown)")
    tsyntax = UID(str(tsyntax))
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise DicomDecodeError(_unsupported_syntax_reason(tsyntax)) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a pydicom pixel data plugin"
        raise DicomDecodeError(f"unsupported compression {tsyntax.name}: install {missing}")

    from busviewer.core.dicom_checks import check_pixel_header  # imports this module

    check_pixel_header(ds, tsyntax)  # before any native codec sees the data
    n_frames = max(1, _int(ds, "NumberOfFrames", 1))
    if not tsyntax.is_compressed:
        _check_native_length(ds, n_frames)
    arr: np.ndarray | None = None
    meta: dict[str, Any] = {}
    preferred = _PREFERRED_PLUGIN.get(str(tsyntax))
    if preferred in decoder.available_plugins and _int(ds, "BitsStored", 8) <= 8:
        try:  # much faster than the default (GDCM) for long JPEG cine loops
            # pydicom 3.0 annotates **kwargs as DecodeOptions instead of Unpack[DecodeOptions]
            arr, meta = decoder.as_array(ds, as_rgb=False, decoding_plugin=preferred)  # type: ignore[arg-type]
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 - fall back to trying every plugin
            arr = None
    if arr is None:
        try:
            arr, meta = decoder.as_array(ds, as_rgb=False)  # type: ignore[arg-type]  # as above
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - plugin errors vary; keep their text
            text = _one_line(exc)
            if "12-bit precision" in text and decoder.missing_dependencies:
                # GDCM and Pillow cannot do 12-bit JPEG; only the GPL libjpeg plugin can.
                raise DicomDecodeError(
                    f"unsupported compression {tsyntax.name} with 12-bit samples: install "
                    f"{'; '.join(decoder.missing_dependencies)} (GPL, not bundled) or convert "
                    "the file to uncompressed / JPEG 2000"
                ) from exc
            what = f"{tsyntax.name} pixel data" if tsyntax.is_compressed else "pixel data"
            raise DicomDecodeError(f"cannot decode {what} ({text})") from exc

    spp = int(meta.get("samples_per_pixel", _int(ds, "SamplesPerPixel", 1)))
    pi_raw = meta.get("photometric_interpretation", ds.PhotometricInterpretation)
    pi = str(getattr(pi_raw, "value", pi_raw)).strip().upper()
    if arr.ndim == (2 if spp == 1 else 3):
        arr = arr[np.newaxis]
    if spp == 1:
        if pi == "PALETTE COLOR":
            return DicomPixels(_apply_palette(arr, ds), True)
        grey = _monochrome_to_uint8(arr, ds)
        if pi == "MONOCHROME1":
            np.subtract(255, grey, out=grey)
        return DicomPixels(np.repeat(grey[..., np.newaxis], 3, axis=-1), False)
    if spp == 3:
        return DicomPixels(_colour_to_rgb8(arr, pi, ds), True)
    raise DicomDecodeError(f"unsupported photometric interpretation {pi} ({spp} samples per pixel)")


# --------------------------------------------------------------------------- colour


def _colour_to_rgb8(arr: np.ndarray, pi: str, ds: Dataset) -> np.ndarray:
    """(F, H, W, 3) decoded samples in ``pi`` -> uint8 RGB."""
    bits = _int(ds, "BitsStored", _int(ds, "BitsAllocated", 8))
    if pi in ("YBR_FULL", "YBR_FULL_422", "YBR_ICT"):
        # Decoded data are never subsampled any more, and YBR_ICT uses the same
        # (BT.601 full range) matrix as YBR_FULL.
        if arr.dtype == np.uint8:
            return _ybr_full_to_rgb8(arr)
        arr = convert_color_space(arr, "YBR_FULL", "RGB")
    elif pi == "YBR_RCT":
        arr = _inverse_rct(arr, bits)
    elif pi != "RGB":
        raise DicomDecodeError(f"unsupported photometric interpretation {pi}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    arr = arr.astype(np.int64)
    if bits > 8:
        arr = arr >> (bits - 8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _ybr_full_to_rgb8(arr: np.ndarray) -> np.ndarray:
    """8-bit YBR_FULL -> RGB with Pillow's fixed-point JFIF conversion.

    Same BT.601 full-range matrix as pydicom's ``convert_color_space`` (results differ
    by at most 1) but about 12x faster, which matters for long cine loops.
    """
    out = np.empty(arr.shape, dtype=np.uint8)
    for i, frame in enumerate(arr):
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(frame), "YCbCr").convert("RGB"))
    return out


def _inverse_rct(arr: np.ndarray, bits: int) -> np.ndarray:
    """Inverse JPEG 2000 reversible colour transform (only when the codec did not)."""
    offset = 1 << (max(bits, 1) - 1)
    y = arr[..., 0].astype(np.int64)
    cb = arr[..., 1].astype(np.int64) - offset
    cr = arr[..., 2].astype(np.int64) - offset
    g = y - np.floor_divide(cb + cr, 4)
    out = np.stack([cr + g, g, cb + g], axis=-1)
    return np.clip(out, 0, (1 << bits) - 1).astype(np.uint16 if bits > 8 else np.uint8)


def _lut_to_uint8(lut: np.ndarray) -> np.ndarray:
    """Scale palette entries to 0..255.

    16-bit palettes come in two flavours: 8-bit values shifted left (``v << 8``,
    e.g. OBXXXX1A) and full-range values (``v * 257``, e.g. the ALOKA files).  Both
    map back exactly; anything else is rounded from the 0..65535 range.
    """
    lut = lut.astype(np.int64)
    if lut.size == 0 or lut.max() <= 255:
        return np.clip(lut, 0, 255).astype(np.uint8)
    if np.all((lut & 0xFF) == 0):
        return (lut >> 8).astype(np.uint8)
    return np.clip(np.rint(lut / 257.0), 0, 255).astype(np.uint8)


def _apply_palette(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """(F, H, W) palette indices -> (F, H, W, 3) uint8 RGB."""
    desc = ds.get("RedPaletteColorLookupTableDescriptor")
    if desc is None or len(desc) < 3:
        raise DicomDecodeError("PALETTE COLOR image without a palette (no Red Palette Color LUT Descriptor)")
    n_entries = int(desc[0]) or 65536
    first = int(desc[1])
    index_dtype: type[np.integer] = np.uint8 if first + n_entries <= 256 and arr.dtype.itemsize == 1 else np.uint16
    if first < 0 or first + n_entries > 65536:
        index_dtype = np.int32
    try:
        lut = apply_color_lut(np.arange(first, first + n_entries, dtype=index_dtype), ds)
    except Exception as exc:  # noqa: BLE001
        raise DicomDecodeError(f"invalid palette colour lookup table ({_one_line(exc)})") from exc
    lut8 = _lut_to_uint8(np.asarray(lut).reshape(n_entries, 3))
    out = np.empty(arr.shape + (3,), dtype=np.uint8)
    for i, frame in enumerate(arr):
        idx = np.clip(frame.astype(np.int64) - first, 0, n_entries - 1)
        out[i] = lut8[idx]
    return out


# --------------------------------------------------------------------------- monochrome


def _first(value: Any) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, (list, tuple, MultiValue)):
            value = value[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _window(ds: Dataset) -> tuple[float, float, str] | None:
    """First (center, width, function) from the data set or its shared functional groups."""
    sources: list[Dataset] = [ds]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        voi = shared[0].get("FrameVOILUTSequence")
        if voi:
            sources.append(voi[0])
    for src in sources:
        center, width = _first(src.get("WindowCenter")), _first(src.get("WindowWidth"))
        if center is not None and width is not None and width > 0:
            function = str(src.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
            return center, width, function
    return None


def _apply_window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing straight to 0..255."""
    x = values.astype(np.float64, copy=False)
    if function == "SIGMOID":
        y = 255.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    elif function == "LINEAR_EXACT":
        y = ((x - center) / width + 0.5) * 255.0
    elif width <= 1:
        y = np.where(x > center - 0.5, 255.0, 0.0)
    else:
        y = ((x - (center - 0.5)) / (width - 1.0) + 0.5) * 255.0
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def _has_modality_transform(ds: Dataset) -> bool:
    if "ModalityLUTSequence" in ds:
        return True
    slope = _first(ds.get("RescaleSlope"))
    intercept = _first(ds.get("RescaleIntercept"))
    return (slope is not None and slope != 1.0) or (intercept is not None and intercept != 0.0)


def _monochrome_to_uint8(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """(F, H, W) stored values -> (F, H, W) uint8 display values (before MONOCHROME1 inversion)."""
    bits = _int(ds, "BitsStored", _int(ds, "BitsAllocated", 8))
    signed = _int(ds, "PixelRepresentation", 0) == 1
    if bits <= 8 and not signed and not _has_modality_transform(ds):
        if bits == 8:
            return np.ascontiguousarray(arr, dtype=np.uint8)
        scale = 255.0 / ((1 << max(bits, 1)) - 1)
        return np.clip(np.rint(arr.astype(np.float32) * scale), 0, 255).astype(np.uint8)

    out = np.empty(arr.shape, dtype=np.uint8)
    window = _window(ds)
    voi_seq = ds.get("VOILUTSequence")
    if window is not None:
        for i, frame in enumerate(arr):
            out[i] = _apply_window(apply_modality_lut(frame, ds), *window)
        return out
    if voi_seq:
        lut_bits = int(voi_seq[0].LUTDescriptor[2]) if "LUTDescriptor" in voi_seq[0] else 16
        top = float((1 << max(lut_bits, 1)) - 1)
        for i, frame in enumerate(arr):
            mapped = apply_voi_lut(apply_modality_lut(frame, ds), ds, prefer_lut=True)
            out[i] = np.clip(np.rint(mapped.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
        return out
    lo, hi = math.inf, -math.inf
    for frame in arr:
        mapped = apply_modality_lut(frame, ds)
        lo, hi = min(lo, float(mapped.min())), max(hi, float(mapped.max()))
    span = hi - lo
    for i, frame in enumerate(arr):
        if span <= 0:
            out[i] = 0
            continue
        mapped = apply_modality_lut(frame, ds).astype(np.float64, copy=False)
        out[i] = np.clip(np.rint((mapped - lo) * (255.0 / span)), 0, 255).astype(np.uint8)
    return out
