"""Calibration read from DICOM headers, with sanity checks.

Pixel spacing, frame time and the Sequence of Ultrasound Regions come from untrusted
files: a value that is not finite or lies outside a physical range (e.g. PhysicalDeltaX
overflowing to inf, FrameTime 1e308) is never passed on. The image is then "not
calibrated" for that quantity and :class:`Geometry` says why in ``issues``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

__all__ = [
    "FRAME_TIME_RANGE_MS",
    "SPACING_RANGE_MM",
    "Geometry",
    "UltrasoundRegion",
    "dicom_geometry",
    "valid_frame_time",
    "valid_spacing",
]

#: mm per pixel an ultrasound image can physically have (1 µm .. 10 mm).
SPACING_RANGE_MM: tuple[float, float] = (1e-3, 10.0)
#: Time between frames (10 kHz plane-wave imaging .. one frame per 10 s).
FRAME_TIME_RANGE_MS: tuple[float, float] = (0.1, 10_000.0)

_UNITS_CM = 3
_SPATIAL_2D = 1
_DATA_TISSUE = 1
_MAX_COORD = 1 << 16  # Rows/Columns are 16-bit


@dataclass(frozen=True)
class UltrasoundRegion:
    """One item of the DICOM Sequence of Ultrasound Regions (0018,6011).

    ``physical_delta_x/y`` are mm per pixel when the units are cm (code 3) and the value
    is physically plausible, else None.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    physical_delta_x: float | None
    physical_delta_y: float | None
    units_x: int | None
    units_y: int | None
    spatial_format: int | None
    data_type: int | None

    def contains(self, x: float, y: float) -> bool:
        """True when pixel position (x=column, y=row) lies in the region (bounds inclusive)."""
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1


@dataclass(frozen=True)
class Geometry:
    """Sanity-checked calibration of one image; ``issues`` says what was refused and why."""

    pixel_spacing_mm: tuple[float, float] | None
    frame_time_ms: float | None
    regions: tuple[UltrasoundRegion, ...]
    issues: tuple[str, ...]


def valid_spacing(value: float) -> bool:
    """True for a finite spacing (mm/pixel) inside :data:`SPACING_RANGE_MM`."""
    lo, hi = SPACING_RANGE_MM
    return math.isfinite(value) and lo <= value <= hi


def valid_frame_time(value: float) -> bool:
    """True for a finite frame time (ms) inside :data:`FRAME_TIME_RANGE_MS`."""
    lo, hi = FRAME_TIME_RANGE_MS
    return math.isfinite(value) and lo <= value <= hi


def _get(ds: Dataset, keyword: str) -> Any:
    try:
        return ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed value is just "absent"
        return None


def _opt_int(ds: Dataset, keyword: str) -> int | None:
    value = _get(ds, keyword)
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _opt_float(ds: Dataset, keyword: str) -> float | None:
    value = _get(ds, keyword)
    try:
        if isinstance(value, MultiValue):
            value = value[0] if len(value) else None
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _fmt(value: Any) -> str:
    text = (
        repr(value)
        if not isinstance(value, (list, tuple, MultiValue))
        else "[" + ", ".join(str(v) for v in value) + "]"
    )
    return text if len(text) <= 60 else text[:57] + "..."


def _spacing_pair(value: Any, what: str, issues: list[str]) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        row, col = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError, OverflowError):
        issues.append(f"{what} {_fmt(value)} is not a pair of numbers; not calibrated")
        return None
    if valid_spacing(row) and valid_spacing(col):
        return row, col
    lo, hi = SPACING_RANGE_MM
    issues.append(f"{what} {_fmt(value)} is not a finite spacing between {lo:g} and {hi:g} mm; not calibrated")
    return None


def _region(item: Dataset, index: int, rows: int, cols: int, issues: list[str]) -> UltrasoundRegion | None:
    corners = [
        _opt_int(item, k)
        for k in ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1", "RegionLocationMaxY1")
    ]
    if any(c is None for c in corners):
        return None
    x0, y0, x1, y1 = (int(c) for c in corners)  # type: ignore[arg-type]
    # MaxX1 == Columns is common in real files (an exclusive bound), so it is accepted.
    limit_x, limit_y = cols or _MAX_COORD, rows or _MAX_COORD
    if not (0 <= x0 <= x1 <= limit_x and 0 <= y0 <= y1 <= limit_y):
        issues.append(
            f"ultrasound region {index} ({x0}, {y0})-({x1}, {y1}) lies outside the {cols}x{rows} image; ignored"
        )
        return None
    units_x = _opt_int(item, "PhysicalUnitsXDirection")
    units_y = _opt_int(item, "PhysicalUnitsYDirection")
    deltas: list[float | None] = []
    for axis, units in (("X", units_x), ("Y", units_y)):
        raw = _opt_float(item, f"PhysicalDelta{axis}")
        if units != _UNITS_CM or raw is None:
            deltas.append(None)
            continue
        mm = abs(raw) * 10.0
        if valid_spacing(mm):
            deltas.append(mm)
        else:
            lo, hi = SPACING_RANGE_MM
            issues.append(
                f"ultrasound region {index} PhysicalDelta{axis} {raw!r} cm is not a finite spacing "
                f"between {lo:g} and {hi:g} mm; that region is not calibrated"
            )
            deltas.append(None)
    return UltrasoundRegion(
        x0=x0,
        y0=y0,
        x1=x1,
        y1=y1,
        physical_delta_x=deltas[0],
        physical_delta_y=deltas[1],
        units_x=units_x,
        units_y=units_y,
        spatial_format=_opt_int(item, "RegionSpatialFormat"),
        data_type=_opt_int(item, "RegionDataType"),
    )


def _regions(ds: Dataset, rows: int, cols: int, issues: list[str]) -> tuple[UltrasoundRegion, ...]:
    out: list[UltrasoundRegion] = []
    try:
        items = list(_get(ds, "SequenceOfUltrasoundRegions") or [])
    except TypeError:
        items = []
    for i, item in enumerate(items):
        if isinstance(item, Dataset):
            region = _region(item, i, rows, cols, issues)
            if region is not None:
                out.append(region)
    return tuple(out)


def _pixel_spacing(ds: Dataset, regions: tuple[UltrasoundRegion, ...], issues: list[str]) -> tuple[float, float] | None:
    """(row, col) mm from PixelSpacing, else from the first 2D tissue region in cm."""
    value = _get(ds, "PixelSpacing")
    spacing = _spacing_pair(value, "PixelSpacing", issues)
    if spacing is None and value is None:
        try:
            shared = _get(ds, "SharedFunctionalGroupsSequence")
            measures = shared[0].get("PixelMeasuresSequence") if shared else None
            if measures:
                spacing = _spacing_pair(measures[0].get("PixelSpacing"), "shared PixelSpacing", issues)
        except (TypeError, IndexError, AttributeError):
            spacing = None
    if spacing is not None:
        return spacing
    calibrated = [r for r in regions if r.spatial_format == _SPATIAL_2D and r.physical_delta_x and r.physical_delta_y]
    tissue = [r for r in calibrated if r.data_type == _DATA_TISSUE] or calibrated
    if not tissue:
        return None
    r = tissue[0]
    return (float(r.physical_delta_y), float(r.physical_delta_x))  # type: ignore[arg-type]


def _frame_time_ms(ds: Dataset, issues: list[str]) -> float | None:
    """FrameTime, else mean FrameTimeVector step, else 1000 / (display or cine rate)."""
    lo, hi = FRAME_TIME_RANGE_MS
    refused: list[str] = []
    frame_time = _opt_float(ds, "FrameTime")
    if frame_time is not None and frame_time != 0:  # 0 is a common "not given"
        if valid_frame_time(frame_time):
            return frame_time
        refused.append(f"FrameTime {frame_time!r} ms")
    vector = _get(ds, "FrameTimeVector")
    if vector is not None:
        try:
            steps = [float(v) for v in (vector if isinstance(vector, MultiValue) else [vector])][1:]
        except (TypeError, ValueError, OverflowError):
            steps = []
        steps = [s for s in steps if math.isfinite(s) and s > 0]
        if steps:
            mean = math.fsum(steps) / len(steps)
            if valid_frame_time(mean):
                return mean
            refused.append(f"FrameTimeVector mean step {mean!r} ms")
    for keyword in ("RecommendedDisplayFrameRate", "CineRate"):
        rate = _opt_float(ds, keyword)
        if rate is None or rate == 0:
            continue
        ms = 1000.0 / rate if math.isfinite(rate) else math.inf
        if valid_frame_time(ms):
            return ms
        refused.append(f"{keyword} {rate!r}/s")
    if refused:
        issues.append(
            f"{'; '.join(refused)}: not a finite frame time between {lo:g} and {hi:g} ms; frame time not calibrated"
        )
    return None


def dicom_geometry(ds: Dataset, rows: int, cols: int) -> Geometry:
    """Sanity-checked spacing, frame time and regions of a data set whose frames are
    ``rows`` x ``cols`` pixels."""
    issues: list[str] = []
    regions = _regions(ds, rows, cols, issues)
    spacing = _pixel_spacing(ds, regions, issues)
    frame_time = _frame_time_ms(ds, issues)
    return Geometry(spacing, frame_time, regions, tuple(issues))
