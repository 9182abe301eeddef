"""Input guard: is an image the kind the models were trained for? (numpy only; no Qt, no torch)

The models were trained on greyscale B-mode breast ultrasound (BUSI). Before their
output is shown as a call, each image is checked:

- colour Doppler / colour-dominant content: the share of strongly coloured pixels
  (chroma ``max(R,G,B) - min(R,G,B) > 40``) inside the central image area (the top 10%
  and bottom 5% rows and the side 5% columns, where header bars and annotation live, are
  left out), after a 5x5 morphological opening that removes thin text, markers and
  lines. Outside when that share is at least ``COLOUR_LIMIT`` (2%). Measured on the data
  at hand (``benchmarks/input_guard_colour.py``): the 623 BUSI images at most 0.81% (one
  image with a small Doppler spot), pydicom-data's power Doppler (US1_*) 3.1% and colour
  Doppler echo (color-p*) 9.4%, its grey B-mode images with coloured overlays 0.00%.
- photometric content: a DICOM photometric interpretation that is not greyscale,
  RGB/YBR or palette colour (e.g. ARGB, CMYK, HSV), or pixels that are not 2-D grey or
  3-channel colour.

An image outside gets "outside the model's training data" instead of a call; the reader
may override that per image (stored with their name, see ``busviewer.core.store.flags``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

OUTSIDE_TEXT = "outside the model's training data"
COLOUR_LIMIT = 0.02
CHROMA_MIN = 40
OPENING = 5
B_MODE_PHOTOMETRIC = frozenset(
    {
        "MONOCHROME1",
        "MONOCHROME2",
        "RGB",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_PARTIAL_420",
        "YBR_PARTIAL_422",
        "YBR_ICT",
        "YBR_RCT",
        "PALETTE COLOR",
    }
)
_MAX_SIDE = 512  # larger images are checked on a strided copy (the share barely changes)


@dataclass(frozen=True)
class GuardResult:
    """``outside``: not the kind of image the models were trained for; ``reason`` says why
    (also for an image inside: what was measured)."""

    outside: bool
    reason: str
    colour_share: float = 0.0


def _opened(mask: np.ndarray, k: int = OPENING) -> np.ndarray:
    p = k // 2
    eroded = sliding_window_view(np.pad(mask, p), (k, k)).min(axis=(-1, -2))
    return sliding_window_view(np.pad(eroded, p), (k, k)).max(axis=(-1, -2))


def colour_share(pixels: np.ndarray) -> float:
    """Share of the central image area covered by solid colour (see the module docstring)."""
    if pixels.ndim == 2 or pixels.shape[-1] == 1:
        return 0.0
    step = max(1, int(np.ceil(max(pixels.shape[:2]) / _MAX_SIDE)))
    a = pixels[::step, ::step, :3].astype(np.int16)
    chroma = a.max(axis=-1) - a.min(axis=-1)
    h, w = chroma.shape
    centre = chroma[int(h * 0.10) : int(np.ceil(h * 0.95)), int(w * 0.05) : int(np.ceil(w * 0.95))] > CHROMA_MIN
    if centre.size == 0:
        return 0.0
    return float(_opened(centre.astype(np.uint8)).mean())


def assess_pixels(pixels: np.ndarray, photometric: str | None = None) -> GuardResult:
    """Check one frame (``(H, W)`` or ``(H, W, 3)``) and the file's photometric interpretation."""
    pi = (photometric or "").strip().upper()
    if pi and pi not in B_MODE_PHOTOMETRIC:
        return GuardResult(True, f"{OUTSIDE_TEXT}: photometric interpretation {pi} is not greyscale B-mode")
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[-1] not in (1, 3)):
        return GuardResult(True, f"{OUTSIDE_TEXT}: pixel layout {tuple(pixels.shape)} is not a B-mode image")
    share = colour_share(pixels)
    if share >= COLOUR_LIMIT:
        return GuardResult(
            True,
            f"{OUTSIDE_TEXT}: colour Doppler or colour-coded image ({share:.0%} of the "
            "image area is colour; the models saw greyscale B-mode only)",
            share,
        )
    return GuardResult(False, f"greyscale B-mode content (colour {share:.1%} of the image area)", share)


def assess_file(path: object, photometric: str | None = None) -> GuardResult:
    """Read frame 0 of ``path`` and check it; an unreadable file raises ImageReadError."""
    from busviewer.core.imageio import read_image

    return assess_pixels(read_image(path).frame(0), photometric)  # type: ignore[arg-type]


__all__ = ["COLOUR_LIMIT", "OUTSIDE_TEXT", "GuardResult", "assess_file", "assess_pixels", "colour_share"]
