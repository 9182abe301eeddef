"""Header consistency checks run before any native codec sees DICOM pixel data.

GDCM aborts the whole process (``terminate called after throwing gdcm::Exception``) when
the header disagrees with the codestream: a JPEG 2000 file whose Photometric
Interpretation or Samples per Pixel differ from the codestream's component count, or a
JPEG Lossless file with Bits Stored below Bits Allocated 8, or Bits Allocated 32/64.
:func:`check_pixel_header` refuses such files with a :class:`DicomDecodeError` naming the
inconsistency, using only the header and the first bytes of the first compressed frame
(the JPEG SOF / JPEG 2000 SIZ marker).  Decoding still runs in a separate process
(:mod:`busviewer.core.decode_pool`) for whatever these checks cannot foresee.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID

from busviewer.core.dicom_decode import DicomDecodeError

__all__ = [
    "MAX_DECODED_BYTES",
    "Codestream",
    "check_pixel_header",
    "first_fragment",
    "parse_codestream",
    "set_enabled",
]

#: Refuse images whose decoded RGB frames would exceed this (a header claiming 65535 x 65535
#: x 1000 frames would otherwise exhaust memory before the codec notices the data is short).
MAX_DECODED_BYTES = 4 * 1024**3

_MONO = frozenset({"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR"})
_COLOUR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT"})

_JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
_JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
_JPEG_LOSSLESS = frozenset({"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"})
_JPEG_LS = frozenset({"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
_J2K = frozenset(
    {
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.92",
        "1.2.840.10008.1.2.4.93",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
    }
)
_RLE = "1.2.840.10008.1.2.5"

# Bits Allocated each family may use (PS3.5 8.2, and what the installed codecs accept).
_ALLOWED_BITS: dict[str, frozenset[int]] = {
    "jpeg-baseline": frozenset({8}),
    "jpeg": frozenset({8, 16}),
    "jpeg-ls": frozenset({8, 16}),
    "j2k": frozenset({8, 16, 32}),
    "rle": frozenset({8, 16, 32}),
    "native": frozenset({1, 8, 16, 32, 64}),
}
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})
_HEAD_BYTES = 64 * 1024  # the SOF / SIZ marker sits in the first bytes of a frame
_enabled = True


def set_enabled(on: bool) -> None:
    """Switch the checks off or on for this process.

    Only for measuring the process isolation alone (tests, ``benchmarks/fuzz_decode.py
    --no-header-checks``): with the checks off, GDCM's aborts reach the decoder process.
    """
    global _enabled
    _enabled = bool(on)


@dataclass(frozen=True)
class Codestream:
    """What a compressed frame's own header says: components, precision, size (0 = unknown)."""

    kind: str  # "jpeg" | "j2k"
    components: int
    precision: int
    rows: int
    columns: int


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _family(tsyntax: str, compressed: bool) -> str | None:
    if tsyntax == _JPEG_BASELINE:
        return "jpeg-baseline"
    if tsyntax == _JPEG_EXTENDED or tsyntax in _JPEG_LOSSLESS:
        return "jpeg"
    if tsyntax in _JPEG_LS:
        return "jpeg-ls"
    if tsyntax in _J2K:
        return "j2k"
    if tsyntax == _RLE:
        return "rle"
    return None if compressed else "native"


def first_fragment(pixel_data: Any, limit: int = _HEAD_BYTES) -> bytes | None:
    """The first ``limit`` bytes of the first fragment of encapsulated pixel data."""
    if not isinstance(pixel_data, (bytes, bytearray)):
        return None
    pos = 0
    for _ in range(2):  # item 1 is the Basic Offset Table, item 2 the first fragment
        if len(pixel_data) < pos + 8:
            return None
        group, elem, length = struct.unpack_from("<HHI", pixel_data, pos)
        if (group, elem) != (0xFFFE, 0xE000):
            return None
        start = pos + 8
        pos = start + length
    return bytes(pixel_data[start : start + min(length, limit)])


def _jpeg_sof(data: bytes) -> Codestream | None:
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _SOF and pos + 10 <= len(data):
            precision, rows, cols, comps = struct.unpack_from(">BHHB", data, pos + 4)
            return Codestream("jpeg", comps, precision, rows, cols)
        if marker == 0xDA or length < 2:  # start of scan before any SOF
            return None
        pos += 2 + length
    return None


def _j2k_siz(data: bytes) -> Codestream | None:
    start = data.find(b"\xff\x4f\xff\x51")  # SOC then SIZ (also finds it inside a JP2 'jp2c' box)
    if start < 0 or start + 42 > len(data):
        return None
    (xsiz, ysiz, xosiz, yosiz) = struct.unpack_from(">IIII", data, start + 8)
    (csiz,) = struct.unpack_from(">H", data, start + 40)
    precision = (data[start + 42] & 0x7F) + 1 if start + 42 < len(data) else 0
    return Codestream("j2k", csiz, precision, max(0, ysiz - yosiz), max(0, xsiz - xosiz))


def parse_codestream(kind: str, data: bytes) -> Codestream | None:
    """The frame header of a JPEG (``kind`` "jpeg") or JPEG 2000 ("j2k") codestream."""
    try:
        return _jpeg_sof(data) if kind == "jpeg" else _j2k_siz(data)
    except struct.error:
        return None


def _check_codestream(ds: Dataset, family: str, spp: int, bits: int, rows: int, cols: int) -> None:
    kind = "j2k" if family == "j2k" else "jpeg"
    head = first_fragment(ds.get("PixelData"))
    if head is None:
        return
    cs = parse_codestream(kind, head)
    name = "JPEG 2000" if kind == "j2k" else "JPEG"
    if cs is None:
        raise DicomDecodeError(f"corrupt {name} pixel data (no valid {name} frame header in the first frame)")
    if cs.components != spp:
        raise DicomDecodeError(
            f"inconsistent header: Samples per Pixel is {spp} but the {name} codestream has "
            f"{cs.components} component(s)"
        )
    if cs.precision > bits:
        raise DicomDecodeError(
            f"inconsistent header: Bits Allocated is {bits} but the {name} codestream has {cs.precision}-bit samples"
        )
    if (cs.rows and cs.rows != rows) or (cs.columns and cs.columns != cols):
        raise DicomDecodeError(
            f"inconsistent header: the image is {cols}x{rows} but the {name} codestream is {cs.columns}x{cs.rows}"
        )


def check_pixel_header(ds: Dataset, tsyntax: UID) -> None:
    """Raise :class:`DicomDecodeError` unless the pixel description is self-consistent.

    Checks Photometric Interpretation against Samples per Pixel, Bits Stored <= Bits
    Allocated, the bit depths the transfer syntax allows, the decoded size, and for JPEG /
    JPEG 2000 the first frame's codestream header against the data set.
    """
    if not _enabled:
        return
    pi = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    spp, bits, stored = _int(ds, "SamplesPerPixel"), _int(ds, "BitsAllocated"), _int(ds, "BitsStored")
    rows, cols = _int(ds, "Rows") or 0, _int(ds, "Columns") or 0
    frames = _int(ds, "NumberOfFrames") or 1
    if pi not in _MONO | _COLOUR:
        raise DicomDecodeError(f"unsupported photometric interpretation {pi or '(empty)'}")
    want = 1 if pi in _MONO else 3
    if spp != want:
        raise DicomDecodeError(
            f"inconsistent header: Photometric Interpretation {pi} needs Samples per Pixel {want}, the file says {spp}"
        )
    compressed = bool(tsyntax.is_compressed)
    family = _family(str(tsyntax), compressed)
    if bits is None or family is None:
        return  # missing fields / unknown syntax: reported by the decoder with its own reason
    if bits not in _ALLOWED_BITS[family]:
        allowed = ", ".join(str(b) for b in sorted(_ALLOWED_BITS[family]))
        name = tsyntax.name if tsyntax.is_valid else str(tsyntax)
        raise DicomDecodeError(f"invalid header: Bits Allocated {bits} is not allowed for {name} (allowed: {allowed})")
    if stored is not None and not 1 <= stored <= bits:
        raise DicomDecodeError(f"invalid header: Bits Stored {stored} must be between 1 and Bits Allocated {bits}")
    if pi == "PALETTE COLOR" and bits not in (8, 16):
        raise DicomDecodeError(f"invalid header: PALETTE COLOR needs Bits Allocated 8 or 16, not {bits}")
    if family in ("jpeg", "jpeg-baseline") and bits == 8 and stored is not None and stored != 8:
        raise DicomDecodeError(
            f"invalid header: JPEG pixel data with Bits Allocated 8 must have Bits Stored 8, not {stored}"
        )
    if frames < 1:
        raise DicomDecodeError(f"invalid header: Number of Frames is {frames}")
    if frames * rows * cols * 3 > MAX_DECODED_BYTES:
        raise DicomDecodeError(
            f"image too large to decode ({frames} frame(s) of {cols}x{rows}; limit "
            f"{MAX_DECODED_BYTES // 1024**3} GiB decoded)"
        )
    if family in ("jpeg", "jpeg-baseline", "jpeg-ls", "j2k"):
        _check_codestream(ds, family, want, bits, rows, cols)
