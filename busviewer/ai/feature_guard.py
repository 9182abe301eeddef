"""Input guard by feature distance: is an image far from what the model was trained on?

At training time (or afterwards with ``busviewer models fit-guard``) the model's pooled
Grad-CAM-layer features of its training images are summarised in the model card
(``feature_guard``): their mean and the ``k`` principal directions they vary along. At
analysis time the same features of each image (they come out of the one forward pass that
gives the probabilities and the Grad-CAM map,
:meth:`~busviewer.ai.inference.Predictor.predict_with_cams`) are measured against them: an
image whose features lie further off that subspace than the threshold is "outside the
model's training data", like a colour Doppler image (:mod:`busviewer.core.input_guard`).

The distance is the reconstruction residual ``|f - mean - P(f - mean)|`` divided by the
training images' mean distance from their mean (so it has no unit). The threshold is a
quantile of *held-out* residuals (each training image measured against components fitted
without its fold), times a margin: fitting and thresholding on the same images would put
the threshold too low and flag new breast images. Defaults and what they catch:
docs/RESULTS.md, ``benchmarks/feature_guard_eval.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Defaults of :func:`fit` (measured with benchmarks/feature_guard_eval.py).
COMPONENTS = 32
QUANTILE = 0.99
MARGIN = 1.0
FOLDS = 5


class FeatureGuardError(ValueError):
    """A card's ``feature_guard`` section is malformed, or the features do not fit it."""


@dataclass(frozen=True)
class FeatureGuard:
    """The training images' feature summary of one model (see the module docstring)."""

    mean: np.ndarray  # (C,)
    components: np.ndarray  # (k, C), orthonormal rows
    scale: float
    threshold: float
    quantile: float
    margin: float
    n_images: int
    layer: str

    def distance(self, features: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """The residual distance of each row of ``features`` (``(N, C)`` or a list of ``(C,)``)."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim == 1:
            f = f[None]
        if f.ndim != 2 or f.shape[1] != self.mean.shape[0]:
            raise FeatureGuardError(f"features of shape {f.shape}; the guard was fitted on {self.mean.shape[0]}")
        return _residual(f, self.mean, self.components, self.scale)

    def outside(self, distance: float) -> bool:
        return not math.isfinite(distance) or distance > self.threshold

    def to_card(self) -> dict[str, Any]:
        """The card's ``feature_guard`` section (JSON; 6 significant digits)."""

        def short(values: np.ndarray) -> list[float]:
            return [float(f"{v:.6g}") for v in values]

        return {
            "method": "PCA residual of pooled Grad-CAM-layer features",
            "layer": self.layer,
            "n_images": self.n_images,
            "quantile": self.quantile,
            "margin": self.margin,
            "threshold": float(f"{self.threshold:.6g}"),
            "scale": float(f"{self.scale:.6g}"),
            "mean": short(self.mean),
            "components": [short(row) for row in self.components],
        }

    @classmethod
    def from_card(cls, data: Mapping[str, Any] | None) -> FeatureGuard | None:
        """The guard of a card's ``feature_guard`` section (None: the card has none)."""
        if data is None:
            return None
        try:
            mean = np.asarray(data["mean"], dtype=np.float64)
            comps = np.asarray(data["components"], dtype=np.float64)
            guard = cls(
                mean,
                comps,
                float(data["scale"]),
                float(data["threshold"]),
                float(data.get("quantile", QUANTILE)),
                float(data.get("margin", MARGIN)),
                int(data.get("n_images", 0)),
                str(data.get("layer", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureGuardError(f"feature_guard is malformed ({exc})") from None
        ok = (
            mean.ndim == 1
            and mean.size > 0
            and comps.ndim == 2
            and comps.shape[1] == mean.size
            and bool(np.isfinite(mean).all() and np.isfinite(comps).all())
            and all(math.isfinite(v) and v > 0 for v in (guard.scale, guard.threshold))
        )
        if not ok:
            raise FeatureGuardError("feature_guard needs a finite mean, components (k x C), scale and threshold > 0")
        return guard


def _residual(f: np.ndarray, mean: np.ndarray, components: np.ndarray, scale: float) -> np.ndarray:
    centred = f - mean
    return np.linalg.norm(centred - (centred @ components.T) @ components, axis=1) / scale


def _components(f: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    mean = f.mean(axis=0)
    centred = f - mean
    _u, _s, vt = np.linalg.svd(centred, full_matrices=False)
    scale = float(np.linalg.norm(centred, axis=1).mean()) or 1.0
    return mean, vt[: min(k, vt.shape[0])], scale


def fit(
    features: np.ndarray | Sequence[np.ndarray],
    layer: str,
    components: int = COMPONENTS,
    quantile: float = QUANTILE,
    margin: float = MARGIN,
    folds: int = FOLDS,
    seed: int = 0,
) -> FeatureGuard:
    """Summarise the training images' features (``(N, C)``; N >= 4 x folds)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 4 * folds:
        raise FeatureGuardError(f"need the features of at least {4 * folds} training images (got shape {f.shape})")
    if not np.isfinite(f).all():
        raise FeatureGuardError("training features hold NaN/inf")
    held_out = np.empty(f.shape[0])
    for part in np.array_split(np.random.default_rng(seed).permutation(f.shape[0]), folds):
        rest = np.delete(f, part, axis=0)
        held_out[part] = _residual(f[part], *_components(rest, components))
    mean, comps, scale = _components(f, components)
    threshold = float(np.quantile(held_out, quantile)) * margin
    return FeatureGuard(mean, comps, scale, threshold, quantile, margin, int(f.shape[0]), layer)


def outside_reason(distance: float, guard: FeatureGuard, model: str) -> str:
    """The reader's text for an image the guard flags."""
    return f"far from the images {model} was trained on (feature distance {distance:.3f}, limit {guard.threshold:.3f})"


__all__ = ["FeatureGuard", "FeatureGuardError", "fit", "outside_reason"]
