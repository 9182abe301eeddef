"""Does Grad-CAM point at the lesion? Measured against lesion masks, image by image.

Per image (map and mask at a common size: the map is resized, bilinear, to the mask):

- pointing game: the map's maximum lies inside the mask (a flat map scores 0);
- energy inside: ``sum(map * mask) / sum(map)`` for the map clipped at 0, next to the
  mask's area share ``mean(mask)`` (what a uniform map would get);
- peak near border: the maximum lies within 10% of the image size of an edge (burned-in
  text and calipers sit there in BUSI);
- CAM box (:func:`busviewer.ai.roi_suggest.cam_box`): its IoU with the mask's box,
  whether it contains the lesion centre (the mask's centroid) and its share of the image
  (a box covering the image would always contain the centre).

The map is the heatmap as the reader sees it (min-max normalised, image coordinates).

:func:`choose_box_params` picks the box's threshold fraction and margin on validation
images: the largest mean IoU among the settings whose box contains the lesion centre in
at least ``centre_target`` of the images (if none does, the most centre hits, then IoU).

No Qt, no torch: the Grad-CAM side is :mod:`busviewer.training.cam_eval`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from busviewer.ai.roi_suggest import BoxParams, cam_box, peak
from busviewer.training.masks import mask_box, mask_centroid

#: Candidate settings searched by :func:`choose_box_params`.
FRACTIONS: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MARGINS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
CENTRE_TARGET = 0.9
BORDER = 0.1


def resize_map(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` float map -> ``shape`` (bilinear); unchanged if already that size."""
    cam = np.asarray(cam, dtype=np.float32)
    if cam.shape == tuple(shape):
        return cam
    from PIL import Image

    out = Image.fromarray(cam, mode="F").resize((int(shape[1]), int(shape[0])), Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.float32)


def _flat(cam: np.ndarray) -> bool:
    return not np.isfinite(cam).all() or float(cam.max() - cam.min()) <= 1e-12


def pointing_hit(cam: np.ndarray, mask: np.ndarray) -> bool:
    """The map's maximum (at the mask's size) lies inside the mask; False for a flat map."""
    cam = resize_map(cam, mask.shape)
    if _flat(cam):
        return False
    x, y = peak(cam)
    return bool(mask[y, x])


def energy_share(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of the (non-negative) map's sum inside the mask; NaN for an all-zero map."""
    cam = np.clip(np.nan_to_num(resize_map(cam, mask.shape)), 0.0, None)
    total = float(cam.sum())
    return float(cam[mask].sum()) / total if total > 0 else math.nan


def area_share(mask: np.ndarray) -> float:
    return float(np.asarray(mask, dtype=bool).mean())


def box_iou(a: Sequence[float] | None, b: Sequence[float] | None) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 if either is None)."""
    if a is None or b is None:
        return 0.0
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_contains(box: Sequence[float] | None, point: tuple[float, float] | None) -> bool:
    if box is None or point is None:
        return False
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


def near_border(xy: tuple[int, int], shape: tuple[int, int], border: float = BORDER) -> bool:
    """Is pixel ``(x, y)`` within ``border`` x the image size of an edge?"""
    h, w = shape
    x, y = xy
    return x + 0.5 < border * w or x + 0.5 > (1 - border) * w or y + 0.5 < border * h or y + 0.5 > (1 - border) * h


@dataclass(frozen=True)
class ImageScore:
    """Localisation of one image's map against its mask (see the module docstring)."""

    key: str
    hit: bool
    energy: float
    area: float
    near_border: bool
    box: tuple[int, int, int, int] | None
    iou: float
    centre_in: bool
    box_area: float  # share of the image (0 without a box)


def score_image(cam: np.ndarray, mask: np.ndarray, params: BoxParams, key: str = "") -> ImageScore:
    mask = np.asarray(mask, dtype=bool)
    cam = resize_map(cam, mask.shape)
    box = None if _flat(cam) else cam_box(cam, params.fraction, params.margin)
    return ImageScore(
        key=key,
        hit=pointing_hit(cam, mask),
        energy=energy_share(cam, mask),
        area=area_share(mask),
        near_border=not _flat(cam) and near_border(peak(cam), mask.shape),
        box=box,
        iou=box_iou(box, mask_box(mask)),
        centre_in=box_contains(box, mask_centroid(mask)),
        box_area=0.0 if box is None else (box[2] - box[0]) * (box[3] - box[1]) / mask.size,
    )


def _mean(values: Sequence[float]) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(vals)) if vals else None


def summarise(scores: Sequence[ImageScore]) -> dict[str, Any]:
    """Image-wise means: pointing game, energy inside, area share, their ratio (of the
    means), border peaks, box IoU, centre hits and the box's share of the image."""
    energy, area = _mean([s.energy for s in scores]), _mean([s.area for s in scores])
    return {
        "images": len(scores),
        "pointing_game": _mean([float(s.hit) for s in scores]),
        "energy_inside": energy,
        "mask_area_share": area,
        "energy_to_area": (energy / area) if energy is not None and area else None,
        "peak_near_border": _mean([float(s.near_border) for s in scores]),
        "box_iou": _mean([s.iou for s in scores]),
        "box_contains_centre": _mean([float(s.centre_in) for s in scores]),
        "box_area_share": _mean([s.box_area for s in scores]),
    }


SUMMARY_KEYS: tuple[str, ...] = (
    "pointing_game",
    "energy_inside",
    "mask_area_share",
    "energy_to_area",
    "peak_near_border",
    "box_iou",
    "box_contains_centre",
    "box_area_share",
)


def choose_box_params(
    cams: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    fractions: Sequence[float] = FRACTIONS,
    margins: Sequence[float] = MARGINS,
    centre_target: float = CENTRE_TARGET,
) -> tuple[BoxParams, list[dict[str, float]]]:
    """The (fraction, margin) with the best mean IoU among those reaching ``centre_target``
    centre hits (else the most centre hits, then IoU); also every setting's figures."""
    if not cams:
        raise ValueError("no images to choose the box parameters on")
    prepared = []
    for cam, mask in zip(cams, masks, strict=True):
        mask = np.asarray(mask, dtype=bool)
        cam = resize_map(cam, mask.shape)
        prepared.append((cam, mask_box(mask), mask_centroid(mask), _flat(cam)))
    table: list[dict[str, float]] = []
    for f in fractions:
        for m in margins:
            ious, hits = [], []
            for cam, mbox, centre, flat in prepared:
                box = None if flat else cam_box(cam, f, m)
                ious.append(box_iou(box, mbox))
                hits.append(float(box_contains(box, centre)))
            table.append(
                {
                    "fraction": f,
                    "margin": m,
                    "box_iou": float(np.mean(ious)),
                    "box_contains_centre": float(np.mean(hits)),
                }
            )
    reaching = [r for r in table if r["box_contains_centre"] >= centre_target]
    if reaching:
        best = max(reaching, key=lambda r: (r["box_iou"], r["box_contains_centre"]))
    else:
        best = max(table, key=lambda r: (r["box_contains_centre"], r["box_iou"]))
    return BoxParams(best["fraction"], best["margin"], source="validation"), table


def mean_sd_localisation(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample SD over folds of each summary figure."""
    out: dict[str, Any] = {}
    for k in SUMMARY_KEYS:
        vals = [float(r[k]) for r in reports if r.get(k) is not None and math.isfinite(float(r[k]))]
        out[k] = {
            "mean": float(np.mean(vals)) if vals else None,
            "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
            "n": len(vals),
        }
    return out


def score_rows(scores: Sequence[ImageScore]) -> list[dict[str, Any]]:
    """One plain dict per image (for CSV files)."""
    return [asdict(s) for s in scores]


def format_localisation(loc: dict[str, Any], title: str = "") -> str:
    """A few lines for the terminal: one model's localisation (or its CV mean ± SD)."""

    def f(v: Any) -> str:
        if isinstance(v, dict):
            m, sd = v.get("mean"), v.get("sd")
            return "–" if m is None else f"{m:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")
        return "–" if v is None else f"{float(v):.3f}"

    lines = [title] if title else []
    lines.append(
        f"  pointing game {f(loc.get('pointing_game'))} · energy inside lesion {f(loc.get('energy_inside'))}"
        f" (mask area {f(loc.get('mask_area_share'))}, ratio {f(loc.get('energy_to_area'))})"
    )
    lines.append(
        f"  CAM box: IoU {f(loc.get('box_iou'))}"
        f" · contains the lesion centre {f(loc.get('box_contains_centre'))}"
        f" · box area {f(loc.get('box_area_share'))} · peaks near the border {f(loc.get('peak_near_border'))}"
    )
    return "\n".join(lines)
