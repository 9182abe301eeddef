"""Synthetic ultrasound-like images shared by the training and wizard tests."""

from __future__ import annotations

import numpy as np


def blob_image(rng: np.random.Generator, malignant: bool, size: int = 64) -> np.ndarray:
    """Grey speckle-like noise; malignant images carry a bright blob, benign ones a faint spot."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = rng.normal(40, 12, (size, size))
    cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
    r = size / 5 if malignant else size / 12
    amp = 170 if malignant else 60
    img += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return np.clip(img, 0, 255).astype(np.uint8)
