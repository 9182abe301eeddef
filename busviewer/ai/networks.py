"""Classifier networks (seeds 001 and 000).

- ``ensemble``: AlexNet (penultimate 4096 features) + ResNet-18 (512 features),
  concatenated to 4608 features and one linear softmax head. Each branch also keeps
  its own 2-class head for stage-1 fine-tuning (seed 001, Fig. 4 step 2).
- ``vgg16``: VGG-16 with its last classifier layer replaced by a 2-class layer
  (the fine-tuning variant of seed 000).

Variants (recorded in the model card as ``variant``):

- ``classic`` (default): the torchvision networks as the seeds used them.
- ``bn``: trainable from random initialisation. VGG-16 becomes the batch-normalised
  ``vgg16_bn`` with the GAP + FC(512) + FC(2) classifier that seed 000 describes for
  VGG-16 feature extraction (13 conv layers unchanged; 14.7 M instead of 134 M
  parameters). The ensemble keeps AlexNet's 4096-d and ResNet-18's 512-d features and
  the single 4608-d head, with batch normalisation after each of AlexNet's five
  convolutions (torchvision has no ``alexnet_bn``; ResNet-18 already has it).

Input modes: ``bmode`` (3-channel B-mode) and ``bse`` (B-mode grey + strain
elastography RGB stacked as 4 channels, seed 001 B-SE-US); for ``bse`` the first
convolution is widened to 4 inputs.

ImageNet initialisation goes through torchvision's weights API and only uses weights
already in the torch hub cache: nothing is downloaded. When they are missing the
network is randomly initialised and a :class:`PretrainedUnavailable` warning says so.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torchvision import models as tvm

from busviewer.ai.architectures import ARCHITECTURES, INPUT_CHANNELS, VARIANTS

log = logging.getLogger(__name__)

Architecture = Literal["ensemble", "vgg16"]
ALEXNET_FEATURES = 4096
RESNET_FEATURES = 512


class PretrainedUnavailable(UserWarning):
    """ImageNet weights were asked for but are not in the local torch cache."""


def _cached_weights(weights: tvm.WeightsEnum) -> dict[str, torch.Tensor] | None:
    """Return the state dict of torchvision ``weights`` if cached locally, else None."""
    filename = Path(weights.url).name
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not cached.is_file():
        return None
    # torchvision verifies the file hash prefix and loads with weights_only=True.
    return weights.get_state_dict(progress=False, check_hash=True)


def _load_pretrained(module: nn.Module, weights: tvm.WeightsEnum, name: str) -> bool:
    try:
        state = _cached_weights(weights)
    except Exception as exc:  # corrupt cache file, hash mismatch
        warnings.warn(
            f"ImageNet weights for {name} in the torch cache could not be read ({exc}); using random initialisation.",
            PretrainedUnavailable,
            stacklevel=3,
        )
        return False
    if state is None:
        warnings.warn(
            f"ImageNet weights for {name} ({Path(weights.url).name}) are not in the torch "
            f"cache ({Path(torch.hub.get_dir()) / 'checkpoints'}); using random "
            "initialisation. Copy the file there (or set TORCH_HOME) to start from ImageNet.",
            PretrainedUnavailable,
            stacklevel=3,
        )
        return False
    module.load_state_dict(state)
    log.info("%s initialised from ImageNet weights %s", name, weights)
    return True


def _geometry(conv: nn.Conv2d) -> tuple[tuple[int, int], tuple[int, int], str | tuple[int, int]]:
    """``(kernel_size, stride, padding)`` of a 2-D convolution as 2-tuples (torch types
    the attributes as ``tuple[int, ...]``, its constructor wants pairs)."""
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    if isinstance(conv.padding, str):
        return (kh, kw), (sh, sw), conv.padding
    ph, pw = conv.padding
    return (kh, kw), (sh, sw), (ph, pw)


def _widen_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """Return ``conv`` with ``in_channels`` inputs, keeping the learned RGB filters.

    For 4 channels (grey B-mode + RGB strain image) the RGB filters go to the strain
    channels and their sum to the grey channel, all scaled by 1/2 so that activations
    keep their ImageNet scale.
    """
    if in_channels == conv.in_channels:
        return conv
    kernel_size, stride, padding = _geometry(conv)
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        w = conv.weight  # (out, 3, k, k)
        if in_channels == 4 and w.shape[1] == 3:
            new.weight[:, 0:1] = w.sum(dim=1, keepdim=True) * 0.5
            new.weight[:, 1:4] = w * 0.5
        if conv.bias is not None and new.bias is not None:
            new.bias.copy_(conv.bias)
    return new


class AlexNetBranch(nn.Module):
    """AlexNet up to its penultimate 4096-feature layer, plus a 2-class head."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, pretrained: bool = True, batch_norm: bool = False):
        super().__init__()
        net = tvm.alexnet(weights=None)
        self.pretrained = (
            not batch_norm and pretrained and _load_pretrained(net, tvm.AlexNet_Weights.IMAGENET1K_V1, "AlexNet")
        )
        net.features[0] = _widen_first_conv(net.features[0], in_channels)
        self.features = _with_batch_norm(net.features) if batch_norm else net.features
        self.avgpool = net.avgpool
        self.classifier = nn.Sequential(*list(net.classifier.children())[:6])  # -> 4096
        self.fc = nn.Linear(ALEXNET_FEATURES, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))

    @property
    def cam_layer(self) -> nn.Module:
        """Last convolutional layer (target of Grad-CAM)."""
        return [m for m in self.features if isinstance(m, nn.Conv2d)][-1]


def _with_batch_norm(features: nn.Sequential) -> nn.Sequential:
    """``features`` with a BatchNorm2d after every convolution (bias-free convs)."""
    layers: list[nn.Module] = []
    for m in features:
        if isinstance(m, nn.Conv2d):
            layers.append(nn.Conv2d(m.in_channels, m.out_channels, *_geometry(m), bias=False))
            layers.append(nn.BatchNorm2d(m.out_channels))
        else:
            layers.append(m)
    return nn.Sequential(*layers)


class ResNetBranch(nn.Module):
    """ResNet-18 up to its 512-feature global pool, plus a 2-class head."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, pretrained: bool = True):
        super().__init__()
        net = tvm.resnet18(weights=None)
        self.pretrained = pretrained and _load_pretrained(net, tvm.ResNet18_Weights.IMAGENET1K_V1, "ResNet-18")
        net.conv1 = _widen_first_conv(net.conv1, in_channels)
        net.fc = nn.Identity()
        self.body = net
        self.fc = nn.Linear(RESNET_FEATURES, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))

    @property
    def cam_layer(self) -> nn.Module:
        return self.body.layer4[-1].conv2


class EnsembleNet(nn.Module):
    """AlexNet + ResNet-18 features concatenated (4608) into one linear softmax head."""

    architecture = "ensemble"

    def __init__(self, in_channels: int = 3, num_classes: int = 2, pretrained: bool = True, variant: str = "classic"):
        super().__init__()
        self.variant = variant
        self.alexnet = AlexNetBranch(in_channels, num_classes, pretrained, batch_norm=variant == "bn")
        self.resnet = ResNetBranch(in_channels, num_classes, pretrained)
        self.head = nn.Linear(ALEXNET_FEATURES + RESNET_FEATURES, num_classes)

    @property
    def pretrained(self) -> bool:
        return self.alexnet.pretrained and self.resnet.pretrained

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = torch.cat([self.alexnet.embed(x), self.resnet.embed(x)], dim=1)
        return self.head(feats)


class VGG16Net(nn.Module):
    """VGG-16 with a 2-class last layer (fine-tuning variant of seed 000); variant ``bn``:
    ``vgg16_bn`` with the GAP + FC(512) + FC(2) head of seed 000's feature extractor."""

    architecture = "vgg16"
    GAP_HIDDEN = 512

    def __init__(self, in_channels: int = 3, num_classes: int = 2, pretrained: bool = True, variant: str = "classic"):
        super().__init__()
        self.variant = variant
        if variant == "bn":
            net = tvm.vgg16_bn(weights=None)
            self.pretrained = pretrained and _load_pretrained(net, tvm.VGG16_BN_Weights.IMAGENET1K_V1, "VGG-16-BN")
            net.features[0] = _widen_first_conv(net.features[0], in_channels)
            self.features = net.features
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(
                nn.Linear(512, self.GAP_HIDDEN),
                nn.ReLU(inplace=True),
                nn.Dropout(0.5),
                nn.Linear(self.GAP_HIDDEN, num_classes),
            )
            return
        net = tvm.vgg16(weights=None)
        self.pretrained = pretrained and _load_pretrained(net, tvm.VGG16_Weights.IMAGENET1K_V1, "VGG-16")
        net.features[0] = _widen_first_conv(net.features[0], in_channels)
        net.classifier[6] = nn.Linear(4096, num_classes)
        self.features = net.features
        self.avgpool = net.avgpool
        self.classifier = net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    @property
    def cam_layer(self) -> nn.Module:
        """Last convolutional layer (target of Grad-CAM)."""
        return [m for m in self.features if isinstance(m, nn.Conv2d)][-1]


def build_model(
    architecture: str,
    input_mode: str = "bmode",
    num_classes: int = 2,
    pretrained: bool = True,
    variant: str = "classic",
) -> nn.Module:
    """Build a network by name (``ensemble`` or ``vgg16``) for an input mode and variant."""
    if input_mode not in INPUT_CHANNELS:
        raise ValueError(f"unknown input mode {input_mode!r}; expected one of {list(INPUT_CHANNELS)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown network variant {variant!r}; expected one of {VARIANTS}")
    channels = INPUT_CHANNELS[input_mode]
    if architecture == "ensemble":
        return EnsembleNet(channels, num_classes, pretrained, variant)
    if architecture == "vgg16":
        return VGG16Net(channels, num_classes, pretrained, variant)
    raise ValueError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def freeze_alexnet_for_finetune(branch: AlexNetBranch, trainable_last: int = 3) -> None:
    """Seed 001: train only AlexNet's last ``trainable_last`` layers (FC6, FC7, FC8)."""
    set_requires_grad(branch, False)
    linears = [m for m in branch.classifier if isinstance(m, nn.Linear)] + [branch.fc]
    convs = [m for m in branch.features if isinstance(m, nn.Conv2d)]
    layers = convs + linears
    if trainable_last >= len(layers):  # everything, BatchNorm layers of the ``bn`` variant included
        set_requires_grad(branch, True)
        return
    for layer in layers[-trainable_last:] if trainable_last > 0 else []:
        set_requires_grad(layer, True)


RESNET_STAGES = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")


def freeze_resnet_for_finetune(branch: ResNetBranch, frozen_first: int = 4) -> None:
    """Seed 001: freeze ResNet-18's first ``frozen_first`` layers (conv1, bn1, layer1, layer2).

    The layers are counted over torchvision's parameterised children in order
    (conv1, bn1, layer1, layer2, layer3, layer4); the rest and the head are trained.
    """
    set_requires_grad(branch, True)
    for name in RESNET_STAGES[:frozen_first]:
        set_requires_grad(getattr(branch.body, name), False)


def freeze_vgg_for_finetune(net: VGG16Net, frozen_conv_blocks: int = 0) -> None:
    """Fine-tune VGG-16; optionally freeze its first ``frozen_conv_blocks`` conv blocks (0-5)."""
    set_requires_grad(net, True)
    block = 0
    for m in net.features:
        if block >= frozen_conv_blocks:
            break
        set_requires_grad(m, False)
        if isinstance(m, nn.MaxPool2d):
            block += 1
