"""Synthetic ultrasound-like images shared by the training and wizard tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def blob_with_mask(rng: np.random.Generator, malignant: bool, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """:func:`blob_image` and its lesion mask (the blob within one radius of its centre)."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = rng.normal(40, 12, (size, size))
    cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
    r = size / 5 if malignant else size / 12
    amp = 170 if malignant else 60
    img += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return np.clip(img, 0, 255).astype(np.uint8), mask


def blob_image(rng: np.random.Generator, malignant: bool, size: int = 64) -> np.ndarray:
    """Grey speckle-like noise; malignant images carry a bright blob, benign ones a faint spot."""
    return blob_with_mask(rng, malignant, size)[0]


def quadrant_discs(
    n: int, rng: np.random.Generator, height: int = 80, width: int = 112, radius: int = 9
) -> tuple[list[np.ndarray], list[int], list[tuple[float, float] | None]]:
    """Dark noise RGB images; every second one (class 1) adds a bright disc of ``radius`` in a
    random quadrant, kept off the midlines. Returns images, labels and disc centres (x, y)."""
    yy, xx = np.mgrid[0:height, 0:width]
    images, labels, centres = [], [], []
    for i in range(n):
        img = rng.uniform(0, 60, (height, width))
        label = i % 2
        centre = None
        if label:
            qx, qy = rng.integers(0, 2, 2)
            cx = rng.uniform(radius + 2, width / 2 - 8) if qx == 0 else rng.uniform(width / 2 + 8, width - radius - 2)
            cy = (
                rng.uniform(radius + 2, height / 2 - 8) if qy == 0 else rng.uniform(height / 2 + 8, height - radius - 2)
            )
            disc = 230 * np.clip(radius + 1 - np.hypot(xx - cx, yy - cy), 0, 1)
            img = np.maximum(img, disc)
            centre = (cx, cy)
        images.append(np.repeat(img.astype(np.uint8)[:, :, None], 3, axis=2))
        labels.append(label)
        centres.append(centre)
    return images, labels, centres


def labelled_pngs(root: Path, n: int = 12, normal: int = 2, seed: int = 3) -> Path:
    """:func:`quadrant_discs` as PNGs under ``root/images/<label>/`` (names with spaces and
    parentheses, like BUSI) plus ``normal`` extra rows; returns ``root/manifest.csv``
    (``image,label,patient_id``)."""
    import csv

    from PIL import Image

    images, labels, _ = quadrant_discs(n, np.random.default_rng(seed))
    rows = []
    for i, (im, lab) in enumerate(zip(images, labels)):
        label = "malignant" if lab else "benign"
        rows.append((f"images/{label}/{label} ({i}).png", label, f"P{i // 2}", im))
    rows += [(f"images/normal/normal ({i}).png", "normal", f"N{i}", images[0]) for i in range(normal)]
    for rel, _label, _pid, im in rows:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(root / rel)
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("image", "label", "patient_id"), *(r[:3] for r in rows)])
    return root / "manifest.csv"
