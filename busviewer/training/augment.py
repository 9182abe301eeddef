"""Image transforms: online augmentation for training, the plain pipeline for evaluation.

Both take an ``(H, W, 3) uint8`` array and return a normalised ``(3, S, S) float32``
tensor. The evaluation pipeline is the inference preprocessing of the model card:
resize to ``input_size`` x ``input_size`` (bilinear, antialiased), scale to [0, 1],
normalise with the card's mean/std.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torchvision.transforms import v2

from busviewer.ai.preprocess import normalise, to_unnormalised_tensor
from busviewer.training.config import AugmentConfig

Transform = Callable[[np.ndarray], torch.Tensor]


def _to_image(arr: np.ndarray) -> torch.Tensor:
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()


def _tail(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


class RandomGamma(torch.nn.Module):
    """Gamma correction with gamma uniform in ``[1 - r, 1 + r]`` on a float image in [0, 1]
    (the brightness curve changes that gain and TGC settings make on ultrasound)."""

    def __init__(self, r: float):
        super().__init__()
        self.r = float(r)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        g = 1.0 + (2.0 * float(torch.rand(())) - 1.0) * self.r
        return img.clamp(0.0, 1.0) ** g


class GaussianNoise(torch.nn.Module):
    """Additive Gaussian noise of standard deviation ``sigma`` on a float image in [0, 1]."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = float(sigma)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img + torch.randn_like(img) * self.sigma).clamp(0.0, 1.0)


def eval_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> Transform:
    """Deterministic, identical to inference (:mod:`busviewer.ai.preprocess`): resize to
    ``size`` x ``size`` (bilinear, antialiased, in float) and normalise."""
    mean_t = list(mean)
    std_t = list(std)

    def apply(arr: np.ndarray) -> torch.Tensor:
        return normalise(to_unnormalised_tensor(arr, "bmode", size), mean_t, std_t)

    return apply


def train_transform(size: int, aug: AugmentConfig, mean: Sequence[float], std: Sequence[float]) -> Transform:
    """Random crop / resized crop, horizontal flip (seed 001), brightness/contrast jitter
    and small scale changes (seed 002), rotation, gamma, noise and blur, each switchable in
    :class:`AugmentConfig`."""
    if not aug.enabled:
        return eval_transform(size, mean, std)
    steps: list[v2.Transform] = []
    if aug.crop == "resized":
        steps.append(v2.RandomResizedCrop((size, size), scale=tuple(aug.crop_scale), antialias=True))
    elif aug.crop == "random":
        big = max(size, int(round(size * aug.random_crop_pad)))
        steps += [v2.Resize((big, big), antialias=True), v2.RandomCrop((size, size))]
    else:
        steps.append(v2.Resize((size, size), antialias=True))
    if aug.scale > 0:
        steps.append(v2.RandomAffine(degrees=0.0, scale=(1.0 - aug.scale, 1.0 + aug.scale)))
    if aug.rotation > 0:
        steps.append(v2.RandomRotation(aug.rotation))
    if aug.hflip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if aug.brightness > 0 or aug.contrast > 0:
        steps.append(v2.ColorJitter(brightness=aug.brightness or None, contrast=aug.contrast or None))
    if aug.blur > 0:
        steps.append(v2.RandomApply([v2.GaussianBlur(3, sigma=(0.1, 1.0))], p=aug.blur))
    floats: list[torch.nn.Module] = []
    if aug.gamma > 0:
        floats.append(RandomGamma(aug.gamma))
    if aug.noise > 0:
        floats.append(GaussianNoise(aug.noise))
    tail = _tail(mean, std)
    pipe = v2.Compose([*steps, tail[0], *floats, tail[1]])

    def apply(arr: np.ndarray) -> torch.Tensor:
        return pipe(_to_image(arr))

    return apply
