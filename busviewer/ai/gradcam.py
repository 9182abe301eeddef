"""Grad-CAM heatmaps in image coordinates (seed 001 fused map for the ensemble).

For a target class c with score y_c (the pre-softmax logit) and a hooked convolution
output A (K maps), Grad-CAM is ``sum_k alpha_k A_k`` with ``alpha_k`` the spatial mean of
``dy_c/dA_k``.

- ``vgg16``: the map of ``model.cam_layer`` (last convolution), then ReLU.
- ``ensemble`` (seed 001): one map per branch from the last convolution of AlexNet
  (``model.alexnet.cam_layer``) and of ResNet-18 (``model.resnet.cam_layer``), both
  driven by the *ensemble* logit; AlexNet's map is resized to ResNet's map size, the two
  are added, then ReLU. The per-branch maps (ReLU of each) are returned as well.

Layers (``layer``, :data:`CAM_LAYERS`; default :data:`DEFAULT_CAM_LAYER`):

- ``conv``: the last convolution of each network, before anything follows it -- AlexNet's
  and VGG's last ``Conv2d`` and ResNet-18's ``layer4[-1].conv2`` (before its BatchNorm
  and the residual add). This is seed 001's choice.
- ``output``: the activated output of the same stage -- the ReLU after AlexNet's and
  VGG's last convolution, and ResNet-18's block output ``layer4`` (after the residual
  add and ReLU), which is what the classifier pools.

Maps are min-max normalised to [0, 1] and resized (bilinear) to the original image size;
preprocessing stretches the image to the square input, so the inverse stretch puts the
map back in image coordinates. For ``bse`` pairs the map is in B-mode image coordinates.

The model is left as found: hooks are removed, per-module train/eval flags and the
device are restored, no parameter ``.grad`` is written (gradients are taken with
``torch.autograd.grad`` w.r.t. the hooked activations only), and it works when every
parameter has ``requires_grad=False`` (the hooked activations are made to require grad,
so the graph starts at the Grad-CAM layers and nothing before them is recorded).

torchcam was considered: its extractors fuse several layers by normalising each map and
then combining them, whereas seed 001 adds the raw weighted maps (AlexNet's resized to
ResNet's) before one ReLU, and its hooks would write parameter gradients. A small
hook-based implementation states the seed's formula directly, so torchcam is not a
dependency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from busviewer.ai.modelcard import ModelCard
from busviewer.ai.preprocess import ImageInput, image_size, preprocess


@dataclass(frozen=True)
class GradCamResult:
    """Grad-CAM of one image.

    ``heatmap``: ``(H, W) float32`` in [0, 1], image coordinates (the fused map for the
    ensemble). ``branch_heatmaps``: per-branch maps for the ensemble (``alexnet``,
    ``resnet``), same format; empty for VGG-16. ``feature_map``: the (fused) map after
    ReLU at feature resolution, unnormalised. ``branch_feature_maps``: each branch's
    linear combination before ReLU at its own resolution.
    """

    heatmap: np.ndarray
    target_class: int
    target_label: str
    probabilities: dict[str, float]
    branch_heatmaps: dict[str, np.ndarray] = field(default_factory=dict)
    feature_map: np.ndarray | None = None
    branch_feature_maps: dict[str, np.ndarray] = field(default_factory=dict)


#: Grad-CAM layer choices (see the module docstring).
CAM_LAYERS: tuple[str, ...] = ("conv", "output")
#: The layer used when none is given.
DEFAULT_CAM_LAYER = "conv"


def _activation_after_last_conv(features: nn.Module) -> nn.Module:
    """The first ReLU after the last ``Conv2d`` of a ``features`` sequence."""
    mods = list(features.children())
    last = max(i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d))
    for m in mods[last + 1 :]:
        if isinstance(m, nn.ReLU):
            return m
    raise TypeError("no ReLU follows the last convolution")


def cam_layers(model: nn.Module, layer: str | None = None) -> dict[str, nn.Module]:
    """The layers Grad-CAM hooks: ``{"alexnet", "resnet"}`` for the ensemble, ``{"vgg16"}`` for
    VGG; ``layer`` is one of :data:`CAM_LAYERS` (None: :data:`DEFAULT_CAM_LAYER`)."""
    layer = layer or DEFAULT_CAM_LAYER
    if layer not in CAM_LAYERS:
        raise ValueError(f"unknown Grad-CAM layer {layer!r}; expected one of {CAM_LAYERS}")
    from busviewer.ai.networks import EnsembleNet, VGG16Net

    if isinstance(model, EnsembleNet):
        if layer == "output":
            return {"alexnet": _activation_after_last_conv(model.alexnet.features), "resnet": model.resnet.body.layer4}
        return {"alexnet": model.alexnet.cam_layer, "resnet": model.resnet.cam_layer}
    if isinstance(model, VGG16Net):
        name = str(getattr(model, "architecture", "vgg16"))
        return {name: _activation_after_last_conv(model.features) if layer == "output" else model.cam_layer}
    raise TypeError(f"{type(model).__name__} has no Grad-CAM layer (expected EnsembleNet or VGG16Net)")


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    return torch.device("cpu")


@contextmanager
def _cam_mode(model: nn.Module, device: torch.device | None) -> Iterator[torch.device]:
    """eval mode, grad enabled, fp32, optionally on another device; everything restored after."""
    flags = [(m, m.training) for m in model.modules()]
    home = _model_device(model)
    target = home if device is None else torch.device(device)
    moved = target != home
    try:
        model.eval()
        if moved:
            model.to(target)
        no_amp: Any
        try:
            no_amp = torch.autocast(device_type=target.type, enabled=False)
        except RuntimeError:  # device type without autocast support
            no_amp = nullcontext()
        with torch.inference_mode(False), torch.enable_grad(), no_amp:
            yield target
    finally:
        if moved:
            model.to(home)
        for m, training in flags:
            m.training = training


def _resolve_target(card: ModelCard, target: int | str | None) -> int | None:
    return None if target is None else card.class_index(target)


def _branch_roots(model: nn.Module) -> list[nn.Module]:
    """The modules each of whose forward starts a branch that leads to a Grad-CAM layer."""
    m: Any = model  # submodules are looked up by name
    if hasattr(m, "alexnet") and hasattr(m, "resnet"):
        return [m.alexnet.features, m.resnet.body]
    return [m.features] if hasattr(m, "features") else []


def _raw_cams(
    model: nn.Module, x: torch.Tensor, targets: Sequence[int | None], layer: str | None = None
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """One forward + a partial backward; returns ``(logits, chosen targets, {layer: sum_k
    alpha_k A_k}, features)``; ``features`` ``(N, C)``: each CAM layer's activations averaged
    over space, concatenated in layer order (what the feature-distance input guard measures).

    Autograd records only what follows each Grad-CAM layer: every branch starts with grad
    disabled and the layer's hook enables it, so the layers before it run as in inference
    (no saved activations) and the backward stops at the hooked activations.
    """
    layers = cam_layers(model, layer)
    acts: dict[str, torch.Tensor] = {}

    def hook_for(name: str) -> Callable[[nn.Module, object, torch.Tensor], torch.Tensor]:
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
            # The activation becomes a leaf that requires grad, so the graph starts here
            # whatever the parameters' requires_grad (nothing before it is recorded).
            # A copy goes downstream so an in-place ReLU cannot overwrite what we keep.
            torch.set_grad_enabled(True)
            leaf = output.detach().requires_grad_(True)
            acts[name] = leaf
            return leaf.clone()

        return hook

    def branch_start(_module: nn.Module, _inputs: object) -> None:
        torch.set_grad_enabled(False)

    handles = [mod.register_forward_hook(hook_for(name)) for name, mod in layers.items()]
    handles += [root.register_forward_pre_hook(branch_start) for root in _branch_roots(model)]
    try:
        with torch.set_grad_enabled(False):  # restores the caller's grad mode afterwards
            logits = model(x.detach())
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in layers if n not in acts]
    if missing:
        raise RuntimeError(f"Grad-CAM layer(s) {missing} were not reached in the forward pass")
    chosen = torch.tensor(
        [int(logits[i].argmax()) if t is None else t for i, t in enumerate(targets)], device=logits.device
    )
    score = logits.gather(1, chosen[:, None]).sum()  # samples are independent in eval mode
    names = list(layers)
    grads = torch.autograd.grad(score, [acts[n] for n in names])
    cams = {}
    pooled = []
    for name, g in zip(names, grads):
        a = acts[name].detach().float()
        weights = g.detach().float().mean(dim=(2, 3), keepdim=True)
        cams[name] = (weights * a).sum(dim=1)  # (N, h, w)
        pooled.append(a.mean(dim=(2, 3)))
    return logits.detach().float(), chosen, cams, torch.cat(pooled, dim=1)


@dataclass(frozen=True)
class CamPass:
    """Logits and Grad-CAM maps of a batch from one forward pass (:func:`forward_with_cams`).

    ``maps``: ``(N, h, w)`` float32 CPU, the (fused, for the ensemble) map after ReLU at
    feature resolution, for the predicted class; :func:`to_image_heatmap` puts one in
    image coordinates.
    """

    logits: torch.Tensor
    targets: list[int]
    maps: torch.Tensor
    #: ``(N, C)`` float32 CPU: the CAM layers' activations averaged over space (concatenated).
    features: torch.Tensor


def forward_with_cams(
    model: nn.Module, x: torch.Tensor, layer: str | None = None, channels_last: bool = False
) -> CamPass:
    """Logits and the predicted class's Grad-CAM map of every sample of a preprocessed
    batch ``x``, from one forward pass (no second, gradient-free forward is needed for the
    probabilities). Runs where the model is, in fp32, model state restored."""
    with _cam_mode(model, None) as dev:
        x = x.to(dev)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits, chosen, cams, features = _raw_cams(model, x, [None] * x.shape[0], layer)
        if "alexnet" in cams:
            fused = _fuse_ensemble(cams["alexnet"], cams["resnet"])
        else:
            (only,) = cams.values()
            fused = F.relu(only)
    return CamPass(
        logits.cpu(), [int(c) for c in chosen], fused.detach().float().cpu().contiguous(), features.cpu().contiguous()
    )


def _fuse_ensemble(alex: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
    """Seed 001: AlexNet map resized to ResNet's size, added, ReLU."""
    alex_r = F.interpolate(alex[:, None], size=res.shape[-2:], mode="bilinear", align_corners=False, antialias=True)[
        :, 0
    ]
    return F.relu(alex_r + res)


def to_image_heatmap(cam: torch.Tensor, height: int, width: int) -> np.ndarray:
    """``(h, w)`` non-negative map -> ``(height, width) float32`` in [0, 1] (bilinear, min-max)."""
    up = F.interpolate(cam[None, None].float().cpu(), size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    up = up - up.min()
    top = float(up.max())
    if not np.isfinite(top) or top <= 1e-12:
        return np.zeros((height, width), dtype=np.float32)
    return (up / top).clamp_(0.0, 1.0).numpy().astype(np.float32, copy=False)


def gradcam_batch(
    model: nn.Module,
    card: ModelCard,
    images: Sequence[ImageInput],
    target_classes: Sequence[int | str | None] | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 4,
    layer: str | None = None,
) -> list[GradCamResult]:
    """Grad-CAM for several images (batched; each sample's map is independent).

    ``target_classes``: per image a class index or name, or None for the predicted class.
    ``device``: None runs where the model is. ``layer``: one of :data:`CAM_LAYERS`.
    """
    if target_classes is not None and len(target_classes) != len(images):
        raise ValueError(f"{len(target_classes)} target classes for {len(images)} images")
    targets = [_resolve_target(card, t) for t in (target_classes or [None] * len(images))]
    results: list[GradCamResult] = []
    with _cam_mode(model, None if device is None else torch.device(device)) as dev:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            x = torch.stack([preprocess(im, card) for im in chunk]).to(dev)
            logits, chosen, cams, _features = _raw_cams(model, x, targets[start : start + batch_size], layer)
            probs = torch.softmax(logits, dim=1).cpu()
            if "alexnet" in cams:
                fused = _fuse_ensemble(cams["alexnet"], cams["resnet"])
            else:
                (only,) = cams.values()
                fused = F.relu(only)
            for i, im in enumerate(chunk):
                h, w = image_size(im)
                branch_maps = {}
                if "alexnet" in cams:
                    branch_maps = {n: to_image_heatmap(F.relu(c[i]), h, w) for n, c in cams.items()}
                t = int(chosen[i])
                results.append(
                    GradCamResult(
                        heatmap=to_image_heatmap(fused[i], h, w),
                        target_class=t,
                        target_label=card.classes[t],
                        probabilities=dict(zip(card.classes, (float(v) for v in probs[i]))),
                        branch_heatmaps=branch_maps,
                        feature_map=fused[i].cpu().numpy().astype(np.float32),
                        branch_feature_maps={n: c[i].cpu().numpy().astype(np.float32) for n, c in cams.items()},
                    )
                )
    return results


def gradcam_detailed(
    model: nn.Module,
    card: ModelCard,
    image: ImageInput,
    target_class: int | str | None = None,
    device: str | torch.device | None = None,
    layer: str | None = None,
) -> GradCamResult:
    """Grad-CAM of one image with per-branch maps and the target/probabilities."""
    return gradcam_batch(model, card, [image], [target_class], device=device, batch_size=1, layer=layer)[0]


def gradcam(
    model: nn.Module,
    card: ModelCard,
    image: ImageInput,
    target_class: int | str | None = None,
    device: str | torch.device | None = None,
    layer: str | None = None,
) -> np.ndarray:
    """Grad-CAM heatmap ``(H, W) float32`` in [0, 1] in image coordinates (fused for the ensemble).

    ``target_class`` None explains the predicted class.
    """
    return gradcam_detailed(model, card, image, target_class, device, layer).heatmap
