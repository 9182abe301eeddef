"""Image -> network input, as described by a model card.

``bmode``: RGB ``(H, W, 3) uint8`` -> ``(3, S, S) float32``: bilinear antialiased
resize to ``input_size``, scale to [0, 1], normalise with the card's mean/std.

``bse`` (seed 001, B-SE-US): a pair ``(bmode_rgb, strain_rgb)`` -> ``(4, S, S)``: the
grey (ITU-R BT.601 luma) of the B-mode image then the RGB of the strain image, each
resized to ``S x S`` on its own (the two are not co-registered), then normalised.

Resizing is a plain stretch (no letterboxing), so a point ``(x, y)`` of the image maps to
``(x * S / W, y * S / H)`` of the input; Grad-CAM maps back with the inverse stretch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from busviewer.ai.modelcard import ModelCard

#: One model input: an RGB image (``bmode``) or a ``(bmode, strain)`` pair (``bse``).
ImageInput = np.ndarray | tuple[np.ndarray, np.ndarray]
Box = tuple[float, float, float, float]

_LUMA = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32)


def as_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Check and return an ``(H, W, 3) uint8`` image; ``(H, W)``/``(H, W, 1)`` grey is replicated."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{what} must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must have shape (H, W, 3), got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{what} is empty (shape {image.shape})")
    return image


def image_size(image: ImageInput) -> tuple[int, int]:
    """``(height, width)`` of an input (of the B-mode image for a ``bse`` pair)."""
    first = image[0] if isinstance(image, tuple) else image
    return int(first.shape[0]), int(first.shape[1])


def _rgb_to_chw(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3) uint8`` -> ``(3, H, W) float32`` in [0, 1]."""
    arr = np.ascontiguousarray(image)
    if not arr.flags.writeable:  # e.g. np.asarray(PIL image); torch wants writable memory
        arr = arr.copy()
    t = torch.from_numpy(arr).permute(2, 0, 1)
    return t.to(torch.float32).div_(255.0)


def _grey_chw(rgb_chw: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` -> ``(1, H, W)`` BT.601 luma."""
    return torch.tensordot(_LUMA, rgb_chw, dims=([0], [0])).unsqueeze(0)


def resize_chw(t: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, antialiased resize of a ``(C, H, W)`` float tensor to ``(C, size, size)``."""
    if t.shape[-2:] == (size, size):
        return t
    return F.interpolate(
        t.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False, antialias=True
    ).squeeze(0)


def normalise(t: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(t - mean) / std`` per channel, for ``(C, H, W)`` or ``(N, C, H, W)`` tensors."""
    m = torch.as_tensor(mean, dtype=t.dtype, device=t.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=t.dtype, device=t.device).view(-1, 1, 1)
    if t.shape[-3] != m.shape[0]:
        raise ValueError(f"normalisation has {m.shape[0]} channels but the tensor has {t.shape[-3]}")
    return (t - m) / s


def to_unnormalised_tensor(image: ImageInput, input_mode: str, size: int) -> torch.Tensor:
    """The ``(C, size, size)`` tensor in [0, 1] before normalisation (for augmentation)."""
    if input_mode == "bmode":
        if isinstance(image, tuple):
            raise TypeError("input_mode 'bmode' expects one RGB image, got a pair")
        return resize_chw(_rgb_to_chw(as_rgb(image)), size)
    if input_mode == "bse":
        if not (isinstance(image, tuple) and len(image) == 2):
            raise TypeError("input_mode 'bse' expects a (bmode_image, strain_image) pair")
        bmode = _grey_chw(_rgb_to_chw(as_rgb(image[0], "B-mode image")))
        strain = _rgb_to_chw(as_rgb(image[1], "strain image"))
        return torch.cat([resize_chw(bmode, size), resize_chw(strain, size)], dim=0)
    raise ValueError(f"unknown input mode {input_mode!r}")


def preprocess(image: ImageInput, card: ModelCard) -> torch.Tensor:
    """One image (or ``bse`` pair) -> normalised ``(C, S, S)`` float32 tensor for ``card``."""
    t = to_unnormalised_tensor(image, card.input_mode, card.input_size)
    return normalise(t, card.mean, card.std)


def preprocess_batch(images: Sequence[ImageInput], card: ModelCard) -> torch.Tensor:
    """Several inputs -> ``(N, C, S, S)`` float32 tensor."""
    if len(images) == 0:
        return torch.empty((0, card.in_channels, card.input_size, card.input_size))
    return torch.stack([preprocess(im, card) for im in images])


def clamp_box(box: Box, height: int, width: int) -> tuple[int, int, int, int]:
    """Round and clamp ``(x0, y0, x1, y1)`` (x1, y1 exclusive) to the image; reversed corners are swapped.

    Raises ValueError when nothing of the box lies inside the image.
    """
    if len(box) != 4:
        raise ValueError(f"a box is (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(np.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f"box has non-finite coordinates: {box!r}")
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    cx0 = int(min(max(round(x0), 0), width))
    cx1 = int(min(max(round(x1), 0), width))
    cy0 = int(min(max(round(y0), 0), height))
    cy1 = int(min(max(round(y1), 0), height))
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"box {box!r} does not overlap the {width}x{height} image")
    return cx0, cy0, cx1, cy1


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """Copy of ``image[y0:y1, x0:x1]`` with the box clamped to the image (see :func:`clamp_box`)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = clamp_box(box, h, w)
    return image[y0:y1, x0:x1].copy()


def crop_input(image: ImageInput, box: Box) -> ImageInput:
    """:func:`crop` for an image or a ``bse`` pair (the same box is applied to both images)."""
    if isinstance(image, tuple):
        return crop(image[0], box), crop(image[1], box)
    return crop(image, box)
