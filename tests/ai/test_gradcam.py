"""Grad-CAM: exactness against a hand-written reference, model-state hygiene, and
localisation on a synthetic task learned in the test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from synthetic import quadrant_discs
from torch import nn

from busviewer.ai.gradcam import cam_layers, gradcam, gradcam_batch, gradcam_detailed
from busviewer.ai.modelcard import ModelCard
from busviewer.ai.networks import build_model, set_requires_grad
from busviewer.ai.preprocess import preprocess

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rand_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def vgg() -> tuple[nn.Module, ModelCard]:
    torch.manual_seed(0)
    return build_model("vgg16", "bmode", pretrained=False).eval(), ModelCard(
        "v", 1, "vgg16", "bmode", input_size=64, pretrained_init="random"
    )


@pytest.fixture(scope="module")
def ensemble() -> tuple[nn.Module, ModelCard]:
    torch.manual_seed(1)
    return build_model("ensemble", "bmode", pretrained=False).eval(), ModelCard(
        "e", 1, "ensemble", "bmode", input_size=96, pretrained_init="random"
    )


# -- reference implementations (independent of hooks) ---------------------------------------


def _ref_vgg(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    feats = model.features
    with torch.enable_grad():
        a = feats[:29](x).detach().requires_grad_(True)  # output of features[28] (cam_layer)
        rest = feats[29:]
        h = rest[0](a.clone())  # ReLU(inplace) would otherwise overwrite `a`
        h = rest[1:](h)
        logits = model.classifier(torch.flatten(model.avgpool(h), 1))
        (g,) = torch.autograd.grad(logits[0, target], a)
    return F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1))[0].detach()


def _ref_ensemble(model: nn.Module, x: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed 001 fused map computed by running the branches by hand."""
    alex, res = model.alexnet, model.resnet
    with torch.enable_grad():
        a1 = alex.features[:11](x).detach().requires_grad_(True)  # alexnet.features[10] output
        h1 = alex.features[11:](a1.clone())
        e1 = alex.classifier(torch.flatten(alex.avgpool(h1), 1))
        body = res.body
        h = body.layer3(body.layer2(body.layer1(body.maxpool(body.relu(body.bn1(body.conv1(x)))))))
        blk = body.layer4[0](h)
        last = body.layer4[1]
        identity = blk
        out = last.relu(last.bn1(last.conv1(blk)))
        a2 = last.conv2(out).detach().requires_grad_(True)  # resnet cam_layer output
        out = last.relu(last.bn2(a2) + identity)
        e2 = torch.flatten(body.avgpool(out), 1)
        logits = model.head(torch.cat([e1, e2], 1))
        g1, g2 = torch.autograd.grad(logits[0, target], [a1, a2])
    m1 = (g1.mean(dim=(2, 3), keepdim=True) * a1).sum(1, keepdim=True)
    m2 = (g2.mean(dim=(2, 3), keepdim=True) * a2).sum(1, keepdim=True)
    m1 = F.interpolate(m1, size=m2.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    return F.relu(m1 + m2)[0, 0].detach(), logits.detach()


def test_vgg_matches_reference(vgg) -> None:
    model, card = vgg
    img = _rand_image(np.random.default_rng(0), 50, 70)
    res = gradcam_detailed(model, card, img, target_class="malignant")
    ref = _ref_vgg(model, preprocess(img, card)[None], 1)
    assert res.feature_map.shape == tuple(ref.shape) == (4, 4)
    np.testing.assert_allclose(res.feature_map, ref.numpy(), rtol=1e-4, atol=1e-6 * float(ref.abs().max()))
    assert res.branch_heatmaps == {}
    assert res.target_class == 1 and res.target_label == "malignant"


def test_ensemble_fused_map_matches_seed_001_reference(ensemble) -> None:
    model, card = ensemble
    img = _rand_image(np.random.default_rng(1), 90, 60)
    res = gradcam_detailed(model, card, img)  # target = predicted class
    x = preprocess(img, card)[None]
    with torch.no_grad():
        logits = model(x)
    target = int(logits.argmax())
    ref, ref_logits = _ref_ensemble(model, x, target)
    torch.testing.assert_close(ref_logits, logits)  # the hand-written forward is the model's
    assert res.target_class == target
    assert res.branch_feature_maps["alexnet"].shape == (5, 5)
    assert res.branch_feature_maps["resnet"].shape == (3, 3)
    np.testing.assert_allclose(res.feature_map, ref.numpy(), rtol=1e-4, atol=1e-5 * max(float(ref.max()), 1e-12))
    assert set(res.branch_heatmaps) == {"alexnet", "resnet"}
    for hm in [res.heatmap, *res.branch_heatmaps.values()]:
        assert hm.shape == (90, 60) and hm.dtype == np.float32
        assert hm.min() >= 0.0 and hm.max() <= 1.0
    assert abs(sum(res.probabilities.values()) - 1.0) < 1e-5


@pytest.mark.parametrize("arch", ["ensemble", "vgg16"])
def test_heatmap_format_and_bse_pairs(arch: str, vgg, ensemble) -> None:
    torch.manual_seed(2)
    model = build_model(arch, "bse", pretrained=False).eval()
    card = ModelCard("b", 1, arch, "bse", input_size=64, pretrained_init="random")
    rng = np.random.default_rng(2)
    pair = (_rand_image(rng, 40, 56), _rand_image(rng, 70, 30))
    hm = gradcam(model, card, pair, target_class=0)
    assert hm.shape == (40, 56) and hm.dtype == np.float32  # B-mode image coordinates
    assert hm.min() >= 0.0 and hm.max() <= 1.0


def test_model_state_is_restored(ensemble) -> None:
    model, card = ensemble
    set_requires_grad(model, False)
    model.train()
    model.resnet.body.bn1.eval()  # a mixed train/eval state must survive
    flags = {name: m.training for name, m in model.named_modules()}
    inplace = {name: m.inplace for name, m in model.named_modules() if hasattr(m, "inplace")}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    img = _rand_image(np.random.default_rng(3), 64, 64)
    with torch.inference_mode():  # e.g. called from inside a prediction worker
        a = gradcam(model, card, img, target_class=1)
    b = gradcam(model, card, img, target_class=1)
    np.testing.assert_allclose(a, b, atol=1e-6)
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
        assert not m._backward_hooks and not getattr(m, "_backward_pre_hooks", {})
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert {name: m.inplace for name, m in model.named_modules() if hasattr(m, "inplace")} == inplace
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics untouched
    model.eval()


def test_grads_not_accumulated_on_trainable_params(vgg) -> None:
    model, card = vgg
    set_requires_grad(model, True)
    gradcam(model, card, _rand_image(np.random.default_rng(4), 64, 64))
    assert all(p.grad is None for p in model.parameters())
    assert len(cam_layers(model)) == 1


def test_output_layer_is_the_activation_after_the_last_conv(vgg, ensemble) -> None:
    model, card = vgg
    assert cam_layers(model, "output") == {"vgg16": model.features[29]}  # ReLU after features[28]
    ens, _ = ensemble
    layers = cam_layers(ens, "output")
    assert layers["alexnet"] is ens.alexnet.features[11] and layers["resnet"] is ens.resnet.body.layer4
    bn = build_model("vgg16", "bmode", pretrained=False, variant="bn")
    relu = cam_layers(bn, "output")["vgg16"]
    i = list(bn.features).index(relu)
    assert isinstance(bn.features[i - 1], nn.BatchNorm2d) and bn.features[i - 2] is bn.cam_layer
    with pytest.raises(ValueError, match="unknown Grad-CAM layer"):
        cam_layers(model, "fc")
    # the map is Grad-CAM of the ReLU output, computed by hand
    img = _rand_image(np.random.default_rng(6), 64, 64)
    res = gradcam_detailed(model, card, img, target_class=1, layer="output")
    x = preprocess(img, card)[None]
    with torch.enable_grad():
        a = model.features[:30](x).detach().requires_grad_(True)
        logits = model.classifier(torch.flatten(model.avgpool(model.features[30:](a.clone())), 1))
        (g,) = torch.autograd.grad(logits[0, 1], a)
    ref = F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1))[0].detach()
    np.testing.assert_allclose(res.feature_map, ref.numpy(), rtol=1e-4, atol=1e-6 * float(ref.abs().max()))
    conv = gradcam_detailed(model, card, img, target_class=1, layer="conv")
    assert not np.allclose(conv.feature_map, res.feature_map)  # a different layer, a different map


def test_batched_equals_single(ensemble) -> None:
    model, card = ensemble
    rng = np.random.default_rng(5)
    imgs = [_rand_image(rng, 64, 80) for _ in range(3)]
    batch = gradcam_batch(model, card, imgs, target_classes=[0, 1, None], batch_size=3)
    for img, t, r in zip(imgs, [0, 1, None], batch):
        single = gradcam_detailed(model, card, img, target_class=t)
        np.testing.assert_allclose(r.heatmap, single.heatmap, atol=1e-4)
        assert r.target_class == single.target_class


# -- localisation on a learned synthetic task -----------------------------------------------

H, W = 80, 112  # non-square on purpose: the map must be stretched back correctly (tests/synthetic.py)
RADIUS = 9


def _synthetic(n: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int], list]:
    return quadrant_discs(n, rng, H, W, RADIUS)


def _localisation(maps: list[np.ndarray], centres: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(fraction with argmax in the blob's quadrant, fraction hotter at the blob than at its
    point-mirror, median argmax-to-blob distance in pixels)."""
    quad = mirror = 0
    dists = []
    for hm, (cx, cy) in zip(maps, centres):
        y, x = np.unravel_index(int(np.argmax(hm)), hm.shape)
        quad += (x < W / 2) == (cx < W / 2) and (y < H / 2) == (cy < H / 2)
        mirror += hm[int(cy), int(cx)] > hm[int(H - 1 - cy), int(W - 1 - cx)]
        dists.append(float(np.hypot(x - cx, y - cy)))
    return quad / len(maps), mirror / len(maps), float(np.median(dists))


def _passes(score: tuple[float, float, float]) -> bool:
    quad, mirror, median = score
    return quad >= 0.8 and mirror >= 0.8 and median <= 28.0


@pytest.mark.slow
def test_ensemble_gradcam_localises_learned_blob(blob_ensemble) -> None:
    model, card = blob_ensemble
    test_images, test_labels, test_centres = _synthetic(24, np.random.default_rng(1))
    with torch.no_grad():
        pred = model(torch.stack([preprocess(im, card) for im in test_images])).argmax(1)
    accuracy = float((pred == torch.tensor(test_labels)).float().mean())
    assert accuracy >= 0.9, f"synthetic task not learned (accuracy {accuracy:.2f})"

    pos = [i for i, lab in enumerate(test_labels) if lab == 1]
    results = gradcam_batch(model, card, [test_images[i] for i in pos], ["malignant"] * len(pos))
    centres = [test_centres[i] for i in pos]
    for r in results:
        assert r.heatmap.shape == (H, W)
    fused = _localisation([r.heatmap for r in results], centres)
    assert _passes(fused), f"fused Grad-CAM does not localise the blob: {fused}"
    resnet = _localisation([r.branch_heatmaps["resnet"] for r in results], centres)
    assert resnet[1] >= 0.7, f"ResNet branch map does not favour the blob: {resnet}"
    # Class-discriminative: explaining "benign" must not point at the (malignant) blob.
    benign = gradcam_batch(model, card, [test_images[i] for i in pos], ["benign"] * len(pos))
    assert _localisation([r.heatmap for r in benign], centres)[1] <= 0.25
    # The criterion is not trivially met: uniform, random and transposed maps fail it.
    ctrl = np.random.default_rng(7)
    assert not _passes(_localisation([np.ones((H, W), np.float32)] * len(pos), centres))
    assert not _passes(_localisation([ctrl.random((H, W)) for _ in pos], centres))
    flipped = [np.ascontiguousarray(r.heatmap[::-1, ::-1]) for r in results]
    assert not _passes(_localisation(flipped, centres))
