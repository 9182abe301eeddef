"""Lesion masks (the BUSI layout) and lesion-crop samples made from them.

A mask is found in a masks directory by the image's label folder and file stem:
``<masks>/<label>/<stem>_mask.png`` where ``<label>`` is the image's parent folder name
(``images/benign/benign (12).png`` -> ``masks/benign/benign (12)_mask.png``), else its
manifest label; ``<masks>/<stem>_mask.png`` is tried last. White (> 127) is lesion; several
lesions are one mask. Images without a mask (BUSI's normal images) are skipped and counted.

Boxes are ``(x0, y0, x1, y1)`` in pixels with x1/y1 exclusive; points are continuous
image coordinates (a pixel's centre is at ``i + 0.5``).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from busviewer.ai.roi_suggest import expand_box
from busviewer.training.data import Sample, SampleSet

MASK_SUFFIX = "_mask"
OPTIONS_FILE = "masks.json"


@dataclass(frozen=True)
class MaskOptions:
    """Mask-based settings of a training run or evaluation (saved as ``masks.json``).

    ``masks_dir``: measure Grad-CAM localisation against these masks. ``crops_dir``: train
    and evaluate on lesion crops (the mask's box widened by ``crop_margin`` x its size per
    side); images without a mask are dropped. ``cam_layer``: the Grad-CAM layer measured
    (:data:`busviewer.ai.gradcam.CAM_LAYERS`; None = the default).
    """

    masks_dir: str | None = None
    crops_dir: str | None = None
    crop_margin: float = 0.2
    cam_layer: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.crop_margin <= 2.0:
            raise ValueError(f"crop margin must be in [0, 2] (got {self.crop_margin})")
        for d in (self.masks_dir, self.crops_dir):
            if d is not None and not Path(d).is_dir():
                raise FileNotFoundError(f"masks directory {d} not found")
        if self.cam_layer is not None:
            from busviewer.ai.gradcam import CAM_LAYERS

            if self.cam_layer not in CAM_LAYERS:
                raise ValueError(f"unknown Grad-CAM layer {self.cam_layer!r}; expected one of {CAM_LAYERS}")

    @property
    def active(self) -> bool:
        return bool(self.masks_dir or self.crops_dir)

    def save(self, run_dir: Path) -> None:
        (Path(run_dir) / OPTIONS_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, run_dir: Path) -> MaskOptions | None:
        path = Path(run_dir) / OPTIONS_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def find_mask(masks_dir: str | Path, sample: Sample) -> Path | None:
    """The mask file of a sample (see the module docstring), or None."""
    root = Path(masks_dir)
    path = Path(sample.path)
    name = f"{path.stem}{MASK_SUFFIX}.png"
    for folder in dict.fromkeys((path.parent.name, sample.original_label, "")):
        candidate = root / folder / name if folder else root / name
        if candidate.is_file():
            return candidate
    return None


def read_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A mask as ``(H, W) bool``; resized (nearest) to ``shape`` = (H, W) when given."""
    from PIL import Image

    with Image.open(path) as im:
        grey = im.convert("L")
        if shape is not None and (grey.height, grey.width) != tuple(shape):
            grey = grey.resize((int(shape[1]), int(shape[0])), Image.Resampling.NEAREST)
        return np.asarray(grey) > 127


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image file (header only for PNG/JPEG)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.height), int(im.width)
    except (UnidentifiedImageError, OSError):
        from busviewer.core.imageio import read_image

        frames = read_image(path).frames
        return int(frames.shape[1]), int(frames.shape[2])


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box of the lesion pixels, or None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def mask_centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """Centre of mass ``(x, y)`` of the lesion pixels (pixel centres), or None."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return float(xs.mean()) + 0.5, float(ys.mean()) + 0.5


def sample_mask(masks_dir: str | Path, sample: Sample) -> np.ndarray | None:
    """The sample's mask in the sample's own pixels (the image, or its ROI crop); None if
    there is no mask file or the lesion lies outside the ROI."""
    path = find_mask(masks_dir, sample)
    if path is None:
        return None
    shape = image_size(sample.path)
    mask = read_mask(path, shape)
    if sample.roi is not None:
        x0, y0, x1, y1 = (int(v) for v in sample.roi)
        mask = mask[max(0, y0) : y1, max(0, x0) : x1]
    return mask if mask.any() else None


def lesion_crop_box(mask: np.ndarray, margin: float) -> tuple[int, int, int, int] | None:
    """The mask's box widened by ``margin`` x its size on each side, clamped to the mask."""
    box = mask_box(mask)
    if box is None:
        return None
    h, w = mask.shape
    return expand_box(tuple(float(v) for v in box), margin, h, w)  # type: ignore[arg-type]


def crop_samples(sset: SampleSet, masks_dir: str | Path, margin: float) -> SampleSet:
    """Lesion-crop samples: each sample's ROI becomes its mask's box plus ``margin``
    (in image pixels); samples without a mask (or with an empty one) are dropped and
    counted as ``no_mask`` in ``dropped``."""
    out: list[Sample] = []
    dropped: Counter[str] = Counter(sset.dropped)
    for s in sset.samples:
        path = find_mask(masks_dir, s)
        box = None
        if path is not None:
            box = lesion_crop_box(read_mask(path, image_size(s.path)), margin)
        if box is None:
            dropped["no_mask"] += 1
            continue
        out.append(dataclasses.replace(s, roi=box))
    source = f"{sset.source} (lesion crops from {masks_dir}, margin {margin:g})"
    return SampleSet(out, source=source, dropped=dict(dropped))


def masks_coverage(samples: Sequence[Sample], masks_dir: str | Path) -> dict[str, Any]:
    """How many samples have a mask (for data summaries)."""
    found = sum(1 for s in samples if find_mask(masks_dir, s) is not None)
    return {"with_mask": found, "without_mask": len(samples) - found}
