"""Batched prediction with a loaded model.

:class:`Predictor` holds a model, its card and a device. ``predict`` preprocesses the
images as the card says, runs them in batches under ``torch.inference_mode()`` (with
autocast on CUDA and channels-last memory format where it helps) and returns one
:class:`Prediction` per image, each recording the model's name, version and sha256.

Every probability is calibrated: the logits are divided by the card's temperature
(``card.temperature``, 1.0 for older cards) before the softmax, so what is shown, stored
and exported is the calibrated probability. A binary benign/malignant model's ``label`` is
the call at the predictor's operating point (malignant if the malignant probability is
``>=`` ``card.threshold(operating_point)``; 0.5 for older cards); other models use argmax.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import torch
from torch import nn

from busviewer.ai.device import choose_device
from busviewer.ai.modelcard import ModelCard
from busviewer.ai.preprocess import Box, ImageInput, crop_input, preprocess
from busviewer.core.operating import DEFAULT_OPERATING_POINT, check_operating_point

MALIGNANT = "malignant"


class CancelToken(Protocol):
    def is_set(self) -> bool: ...


class PredictionCancelled(RuntimeError):
    """``cancel.is_set()`` became true during :meth:`Predictor.predict`."""


@dataclass(frozen=True)
class PredictProgress:
    """Progress event: ``done`` of ``total`` images predicted."""

    done: int
    total: int


@dataclass(frozen=True)
class Prediction:
    """The model output for one image (decision support, not a diagnosis)."""

    probabilities: dict[str, float]
    label: str
    malignant_probability: float
    model_name: str
    model_version: int
    model_sha256: str
    image_hash: str | None = None
    box: tuple[int, int, int, int] | None = field(default=None)

    @property
    def model_ref(self) -> str:
        return f"{self.model_name}:{self.model_version}"


def hash_image(image: ImageInput) -> str:
    """sha256 of the pixel data (shape and dtype included) of an image or ``bse`` pair."""
    h = hashlib.sha256()
    for arr in image if isinstance(image, tuple) else (image,):
        a = np.ascontiguousarray(arr)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class Predictor:
    """A loaded model ready for inference.

    ``channels_last``: None chooses automatically (on for CUDA and CPU, where oneDNN
    convolutions of both shipped models are faster in NHWC: ``benchmarks/bench_inference.py``
    measures it, docs/RESULTS.md, issue 11). ``autocast``: use bf16/fp16 autocast on CUDA (never on CPU/MPS).
    ``operating_point``: whose threshold makes the image label (changeable later).
    """

    def __init__(
        self,
        model: nn.Module,
        card: ModelCard,
        device: str | torch.device | None = None,
        channels_last: bool | None = None,
        autocast: bool = True,
        operating_point: str = DEFAULT_OPERATING_POINT,
    ):
        self.card = card
        self.operating_point = check_operating_point(operating_point)
        self.temperature = card.temperature
        self.device = choose_device(device) if not isinstance(device, torch.device) else device
        if channels_last is None:
            channels_last = self.device.type in ("cuda", "cpu")
        self.channels_last = bool(channels_last)
        self.autocast_dtype = _autocast_dtype(self.device) if autocast else None
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.eval()
        self.malignant_index: int | None = card.classes.index(MALIGNANT) if MALIGNANT in card.classes else None

    # -- core -------------------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        """The malignant threshold of the operating point in force."""
        return self.card.threshold(self.operating_point)

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """Calibrated softmax probabilities ``(N, K)`` (float32, CPU), ``softmax(logits / T)``,
        for a preprocessed ``(N, C, S, S)`` batch."""
        x = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        amp = (
            torch.autocast(device_type="cuda", dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else nullcontext()
        )
        with torch.inference_mode(), amp:
            logits = self.model(x)
        return torch.softmax(logits.float() / self.temperature, dim=1).cpu()

    def _make(
        self, probs: torch.Tensor, image_hash: str | None, box: tuple[int, int, int, int] | None = None
    ) -> Prediction:
        p = [float(v) for v in probs.tolist()]
        mal = p[self.malignant_index] if self.malignant_index is not None else float("nan")
        if self.malignant_index is not None and self.card.num_classes == 2:
            label = self.card.classes[self.malignant_index if mal >= self.threshold else 1 - self.malignant_index]
        else:
            label = self.card.classes[int(np.argmax(p))]
        return Prediction(
            probabilities=dict(zip(self.card.classes, p)),
            label=label,
            malignant_probability=mal,
            model_name=self.card.name,
            model_version=self.card.version,
            model_sha256=self.card.sha256,
            image_hash=image_hash,
            box=box,
        )

    def predict(
        self,
        images: Sequence[ImageInput],
        batch_size: int = 16,
        image_hashes: Sequence[str | None] | None = None,
        progress: Callable[[PredictProgress], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> list[Prediction]:
        """Predict every image (an RGB ``(H, W, 3) uint8`` array, or a pair for ``bse``).

        ``image_hashes`` (same length as ``images``) are copied into the predictions.
        ``progress`` gets a :class:`PredictProgress` after each batch; ``cancel`` is checked
        before each batch and raises :class:`PredictionCancelled`.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if image_hashes is not None and len(image_hashes) != len(images):
            raise ValueError(f"{len(image_hashes)} image hashes for {len(images)} images")
        out: list[Prediction] = []
        total = len(images)
        for start in range(0, total, batch_size):
            if cancel is not None and cancel.is_set():
                raise PredictionCancelled(f"prediction cancelled after {start} of {total} images")
            chunk = images[start : start + batch_size]
            batch = torch.stack([preprocess(im, self.card) for im in chunk])
            probs = self.probabilities(batch)
            for i, row in enumerate(probs):
                h = image_hashes[start + i] if image_hashes is not None else None
                out.append(self._make(row, h))
            if progress is not None:
                progress(PredictProgress(len(out), total))
        return out

    def predict_with_cams(
        self,
        images: Sequence[ImageInput],
        batch_size: int = 16,
        layer: str | None = None,
        cancel: CancelToken | None = None,
        features_out: list[np.ndarray] | None = None,
    ) -> tuple[list[Prediction], list[np.ndarray]]:
        """Predictions and Grad-CAM maps from one forward pass per batch.

        ``features_out``: if given, each image's pooled CAM-layer features (``(C,)`` float32)
        are appended to it (:mod:`busviewer.ai.feature_guard` measures them).

        Each map is the predicted class's ``(h, w) float32`` map after ReLU at feature
        resolution (fused for the ensemble; :func:`busviewer.ai.gradcam.to_image_heatmap`
        puts it in image coordinates). fp32 even on CUDA (no autocast), the memory format
        of :meth:`predict`; the probabilities equal :meth:`predict`'s up to float rounding.
        """
        from busviewer.ai.gradcam import forward_with_cams

        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        preds: list[Prediction] = []
        maps: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            if cancel is not None and cancel.is_set():
                raise PredictionCancelled(f"prediction cancelled after {start} of {len(images)} images")
            batch = torch.stack([preprocess(im, self.card) for im in images[start : start + batch_size]])
            out = forward_with_cams(self.model, batch, layer, channels_last=self.channels_last)
            probs = torch.softmax(out.logits / self.temperature, dim=1)
            preds += [self._make(row, None) for row in probs]
            maps += [m.numpy() for m in out.maps]
            if features_out is not None:
                features_out += [f.numpy() for f in out.features]
        return preds, maps

    def predict_rois(
        self, image: ImageInput, boxes: Sequence[Box], batch_size: int = 16, image_hash: str | None = None
    ) -> list[Prediction]:
        """Predict crops ``(x0, y0, x1, y1)`` of one image (clamped to it; seed 001: cropped
        lesions classify better). For a ``bse`` pair the same box is cut from both images.
        Each prediction records its clamped box.
        """
        from busviewer.ai.preprocess import clamp_box, image_size

        h, w = image_size(image)
        clamped = [clamp_box(b, h, w) for b in boxes]
        crops = [crop_input(image, b) for b in clamped]
        preds = self.predict(crops, batch_size=batch_size, image_hashes=[image_hash] * len(crops))
        return [replace(p, box=b) for p, b in zip(preds, clamped)]


def predict_naive(model: nn.Module, card: ModelCard, images: Sequence[ImageInput]) -> list[list[float]]:
    """Reference/baseline path: one image at a time, autograd on, no batching (benchmarks only)."""
    model.eval()
    out = []
    for im in images:
        x = preprocess(im, card).unsqueeze(0)
        logits = model(x)
        out.append(torch.softmax(logits, dim=1)[0].tolist())
    return out
