"""What the image viewer's info line and cursor read-out say about the image (plain Python)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from busviewer.gui.calipers import _get, region_at, region_centre


def info_text(title: str, frames: np.ndarray, regions: Sequence[Any], spacing: tuple[float, float] | None) -> str:
    """The info line under the image: title, size, frame count, whether it is calibrated."""
    h, w = frames.shape[1:3]
    n = frames.shape[0]
    parts = [title, f"{w}×{h} px"]
    if n > 1:
        parts.append(f"{n} frames")
    calibrated = any(region_at([r], *region_centre(r)) for r in regions) or bool(spacing)
    parts.append("calibrated" if calibrated else "not calibrated")
    return " · ".join(p for p in parts if p)


def pixel_text(
    frames: np.ndarray,
    frame: int,
    regions: Sequence[Any],
    spacing: tuple[float, float] | None,
    x: float,
    y: float,
) -> str:
    """Cursor read-out at image point (x, y): pixel coordinates, grey value, and the physical
    pixel size when known ("" outside the image)."""
    h, w = frames.shape[1:3]
    ix, iy = int(math.floor(x)), int(math.floor(y))
    if not (0 <= ix < w and 0 <= iy < h):
        return ""
    rgb = frames[frame, iy, ix]
    value = f"{int(rgb[0])}" if rgb[0] == rgb[1] == rgb[2] else f"RGB {int(rgb[0])},{int(rgb[1])},{int(rgb[2])}"
    text = f"x {ix}  y {iy}  ·  {value}"
    region = region_at(regions, x, y)
    if region is not None:
        dx, dy = (float(_get(region, k)) * 1000 for k in ("physical_delta_x", "physical_delta_y"))
        text += f"  ·  {dx:.0f}×{dy:.0f} µm/px"
    elif spacing:
        text += f"  ·  {spacing[1] * 1000:.0f}×{spacing[0] * 1000:.0f} µm/px"
    return text
