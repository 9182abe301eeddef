"""A suggested lesion ROI derived from the active model's Grad-CAM.

The box (:func:`cam_box`): threshold the (fused) heatmap at ``fraction`` of its maximum,
keep the 8-connected region that holds the maximum, take its bounding box and widen each
side by ``margin`` times the box's width/height (clamped to the image). ``fraction`` and
``margin`` come from the model card (``metrics.localisation.box_params``, chosen on the
validation images of the training run, see :mod:`busviewer.training.localisation`), else
:data:`DEFAULT_BOX_PARAMS`.

A suggestion is only a proposal: :func:`accept_suggestion` stores it (possibly moved by
the reader) as the reader's ROI through the store (audited ``add_roi``) and logs where
it came from (``accept_suggested_roi``); :func:`reject_suggestion` logs the rejection.
Nothing here imports torch or Qt at module import (the GUI thread may call
:func:`accept_suggestion`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class BoxParams:
    """How a heatmap becomes a box: threshold ``fraction`` of the maximum, ``margin`` per side."""

    fraction: float
    margin: float
    source: str = "default"

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0 or not 0.0 <= self.margin <= 2.0:
            raise ValueError(f"box params need 0 < fraction < 1 and 0 <= margin <= 2 (got {self})")


#: Used when the model card carries no measured parameters: the most frequent choice of
#: :func:`busviewer.training.localisation.choose_box_params` on the validation patients of
#: 5-fold BUSI runs (ensemble 128 px, VGG-16 64 px, random init; issue 19).
DEFAULT_BOX_PARAMS = BoxParams(fraction=0.5, margin=0.1, source="default")


def box_params_for(card: Any) -> BoxParams:
    """The card's measured box parameters (``metrics.localisation.box_params``), else the default."""
    metrics = getattr(card, "metrics", None)
    loc = metrics.get("localisation") if isinstance(metrics, dict) else None
    bp = loc.get("box_params") if isinstance(loc, dict) else None
    if isinstance(bp, dict):
        try:
            return BoxParams(float(bp["fraction"]), float(bp["margin"]), source="model card")
        except (KeyError, TypeError, ValueError):
            pass
    return DEFAULT_BOX_PARAMS


def peak(heatmap: np.ndarray) -> tuple[int, int]:
    """``(x, y)`` of the heatmap's maximum (the first one in row-major order)."""
    y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return int(x), int(y)


def expand_box(box: tuple[float, float, float, float], margin: float, height: int, width: int) -> Box:
    """``(x0, y0, x1, y1)`` (x1, y1 exclusive) widened by ``margin`` x its size on each side,
    rounded outwards and clamped to the image."""
    x0, y0, x1, y1 = box
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    return (
        max(0, int(np.floor(x0 - dx))),
        max(0, int(np.floor(y0 - dy))),
        min(width, int(np.ceil(x1 + dx))),
        min(height, int(np.ceil(y1 + dy))),
    )


def cam_box(heatmap: np.ndarray, fraction: float, margin: float) -> Box | None:
    """The box around the heatmap's hottest connected region (see the module docstring);
    None for a flat (all-equal or non-finite) map."""
    from scipy import ndimage

    hm = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if hm.ndim != 2 or hm.size == 0:
        raise ValueError(f"a heatmap is (H, W), got shape {hm.shape}")
    lo, hi = float(hm.min()), float(hm.max())
    if hi - lo <= 1e-12:
        return None
    px, py = peak(hm)
    above = hm >= lo + fraction * (hi - lo)
    labels, _ = ndimage.label(above, structure=np.ones((3, 3), dtype=bool))
    ys, xs = np.nonzero(labels == labels[py, px])
    h, w = hm.shape
    return expand_box((float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1), margin, h, w)


@dataclass(frozen=True)
class RoiSuggestion:
    """A proposed lesion rectangle (image pixels, x1/y1 exclusive) and where it came from."""

    image_id: int
    frame: int
    box: Box
    architecture: str
    model: str  # "name:version"
    model_sha256: str
    fraction: float
    margin: float
    params_source: str
    peak: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["box"], d["peak"] = list(self.box), list(self.peak)
        return d


def default_architecture(cards: dict[str, Any], preferred: str | None = None) -> str | None:
    """``preferred`` if loaded, else the first loaded of ensemble, vgg16 (the active model)."""
    if preferred and preferred in cards:
        return preferred
    return next((a for a in ("ensemble", "vgg16") if a in cards), next(iter(cards), None))


def suggest_roi(
    analyzer: Any, image_id: int, frame: int = 0, architecture: str | None = None, prefer: str | None = None
) -> RoiSuggestion | None:
    """Grad-CAM of an active model on one image and the box derived from it; None when the
    map is flat. ``architecture`` names the model (NoActiveModel if it is not loaded);
    otherwise ``prefer`` if loaded, else the ensemble, else VGG-16. Runs torch: call it off
    the GUI thread. ``analyzer`` is a :class:`~busviewer.ai.analysis.Analyzer`."""
    if not getattr(analyzer, "cards", None):
        analyzer.load_models()  # raises NoActiveModel when none is active
    cards = analyzer.cards
    arch = architecture or default_architecture(cards, prefer)
    if arch is None or arch not in cards:
        from busviewer.ai.analysis import NoActiveModel

        raise NoActiveModel(f"no active {arch} model" if arch else "no active model")
    card = cards[arch]
    heatmap = analyzer.gradcam(image_id, arch, frame)
    params = box_params_for(card)
    box = cam_box(heatmap, params.fraction, params.margin)
    if box is None:
        return None
    return RoiSuggestion(
        image_id=int(image_id),
        frame=int(frame),
        box=box,
        architecture=arch,
        model=card.ref,
        model_sha256=card.sha256,
        fraction=params.fraction,
        margin=params.margin,
        params_source=params.source,
        peak=peak(heatmap),
    )


def accept_suggestion(
    store: Any, suggestion: RoiSuggestion, box: tuple[float, float, float, float] | None = None, user: str | None = None
) -> Any:
    """Store the suggestion (or the reader's moved ``box``) as a reader ROI; returns the
    :class:`~busviewer.core.store.RoiRecord`. Audited twice: ``add_roi`` by the store and
    ``accept_suggested_roi`` with the model, the suggested box and the parameters."""
    final = tuple(int(round(v)) for v in (box if box is not None else suggestion.box))
    roi = store.add_roi(suggestion.image_id, final, frame=suggestion.frame, user=user)
    detail = suggestion.to_dict() | {"accepted_box": list(roi.box), "moved": list(roi.box) != list(suggestion.box)}
    store.log("accept_suggested_roi", "roi", roi.id, "suggestion", None, json.dumps(detail), user=user)
    return roi


def reject_suggestion(store: Any, suggestion: RoiSuggestion, user: str | None = None) -> None:
    """Log that the reader rejected the suggestion (audit entry on the image)."""
    store.log(
        "reject_suggested_roi",
        "image",
        suggestion.image_id,
        "suggestion",
        json.dumps(suggestion.to_dict()),
        None,
        user=user,
    )
