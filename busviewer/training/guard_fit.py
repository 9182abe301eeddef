"""Fit the feature-distance input guard of a model (:mod:`busviewer.ai.feature_guard`).

Run at the end of training on the final model's training images (the card then carries
the guard), or later for an existing model (``busviewer models fit-guard``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from busviewer.ai import feature_guard
from busviewer.ai.gradcam import DEFAULT_CAM_LAYER

log = logging.getLogger(__name__)

#: Fewer training images than this give no guard (the held-out threshold would be noise).
MIN_IMAGES = 40


def guard_features(
    model: Any, card: Any, images: Iterable[np.ndarray], batch_size: int = 16, device: str | None = None
) -> np.ndarray:
    """The pooled Grad-CAM-layer features of ``images`` (``(N, C)``), as the analysis sees them."""
    from busviewer.ai.inference import Predictor

    predictor = Predictor(model, card, device=device) if device else Predictor(model, card)
    out: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    for img in images:
        batch.append(img)
        if len(batch) == batch_size:
            predictor.predict_with_cams(batch, batch_size=batch_size, features_out=out)
            batch = []
    if batch:
        predictor.predict_with_cams(batch, batch_size=batch_size, features_out=out)
    return np.stack(out) if out else np.zeros((0, 0), np.float32)


def fit_guard(model: Any, card: Any, images: Iterable[np.ndarray], device: str | None = None) -> dict[str, Any]:
    """The card's ``feature_guard`` section for ``model`` fitted on ``images``."""
    feats = guard_features(model, card, images, device=device)
    if feats.shape[0] < MIN_IMAGES:
        raise feature_guard.FeatureGuardError(
            f"the feature guard needs at least {MIN_IMAGES} training images (got {feats.shape[0]})"
        )
    return feature_guard.fit(feats, layer=DEFAULT_CAM_LAYER).to_card()


def fit_guard_from_samples(
    model: Any, card: Any, samples: Sequence[Any], read: Callable[[Any], np.ndarray] | None = None
) -> dict[str, Any] | None:
    """:func:`fit_guard` on training samples (None, logged, when there are too few)."""
    from busviewer.training.data import read_sample_pixels

    if len(samples) < MIN_IMAGES:
        log.info("no feature guard: %d training images (fewer than %d)", len(samples), MIN_IMAGES)
        return None
    reader = read or read_sample_pixels
    return fit_guard(model, card, (reader(s) for s in samples))


__all__ = ["MIN_IMAGES", "fit_guard", "fit_guard_from_samples", "guard_features"]
