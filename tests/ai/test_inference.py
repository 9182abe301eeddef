from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from busviewer.ai.inference import (
    Prediction,
    PredictionCancelled,
    Predictor,
    hash_image,
    predict_naive,
)
from busviewer.ai.modelcard import ModelCard
from busviewer.ai.networks import build_model

SIZE = 64
SHA = "cd" * 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models() -> dict[tuple[str, str], tuple[torch.nn.Module, ModelCard]]:
    out = {}
    torch.manual_seed(0)
    for arch in ("ensemble", "vgg16"):
        for mode in ("bmode", "bse"):
            model = build_model(arch, mode, pretrained=False).eval()
            card = ModelCard(f"t-{arch}-{mode}", 3, arch, mode, input_size=SIZE, sha256=SHA, pretrained_init="random")
            out[arch, mode] = (model, card)
    return out


def _images(n: int, mode: str, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    imgs = []
    for i in range(n):
        b = rng.integers(0, 256, (40 + 3 * i, 70 - i, 3), dtype=np.uint8)
        imgs.append((b, rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)) if mode == "bse" else b)
    return imgs


@pytest.mark.parametrize("arch", ["ensemble", "vgg16"])
@pytest.mark.parametrize("mode", ["bmode", "bse"])
def test_predictions_are_probabilities(models, arch: str, mode: str) -> None:
    model, card = models[arch, mode]
    predictor = Predictor(model, card, device="cpu")
    imgs = _images(3, mode)
    hashes = [hash_image(im) for im in imgs]
    preds = predictor.predict(imgs, batch_size=2, image_hashes=hashes)
    assert len(preds) == 3
    for p, h in zip(preds, hashes):
        assert isinstance(p, Prediction)
        assert list(p.probabilities) == ["benign", "malignant"]
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert all(0.0 <= v <= 1.0 for v in p.probabilities.values())
        assert p.label == max(p.probabilities, key=p.probabilities.get)
        assert p.malignant_probability == p.probabilities["malignant"]
        assert (p.model_name, p.model_version, p.model_sha256) == (card.name, 3, SHA)
        assert p.image_hash == h and p.model_ref == f"{card.name}:3"
    # the raw batched path: (N, K) softmax
    x = torch.randn(2, card.in_channels, SIZE, SIZE)
    probs = predictor.probabilities(x)
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(1), torch.ones(2))


@pytest.mark.parametrize("arch", ["ensemble", "vgg16"])
def test_batch_1_equals_batch_16_and_naive_loop(models, arch: str) -> None:
    model, card = models[arch, "bmode"]
    predictor = Predictor(model, card, device="cpu")
    imgs = _images(17, "bmode", seed=1)  # one full batch of 16 + a remainder
    one = predictor.predict(imgs, batch_size=1)
    sixteen = predictor.predict(imgs, batch_size=16)
    for a, b in zip(one, sixteen):
        for k in card.classes:
            assert abs(a.probabilities[k] - b.probabilities[k]) < 1e-5
        assert a.label == b.label
    naive = predict_naive(model, card, imgs[:2])
    for a, ref in zip(one, naive):
        np.testing.assert_allclose([a.probabilities[k] for k in card.classes], ref, atol=1e-5)


def test_predict_rois(models) -> None:
    model, card = models["ensemble", "bmode"]
    predictor = Predictor(model, card, device="cpu")
    img = _images(1, "bmode", seed=2)[0]
    boxes = [(5, 5, 30, 25), (-10, -10, 200, 200), (30, 25, 5, 5)]
    preds = predictor.predict_rois(img, boxes, image_hash="h")
    h, w = img.shape[:2]
    assert [p.box for p in preds] == [(5, 5, 30, 25), (0, 0, w, h), (5, 5, 30, 25)]
    full = predictor.predict([img])[0]
    assert preds[1].probabilities == pytest.approx(full.probabilities, abs=1e-6)
    assert preds[0].probabilities == pytest.approx(preds[2].probabilities, abs=1e-6)
    assert all(p.image_hash == "h" for p in preds)
    pair_preds = Predictor(*models["vgg16", "bse"], device="cpu").predict_rois(_images(1, "bse")[0], [(0, 0, 20, 20)])
    assert pair_preds[0].box == (0, 0, 20, 20)


def test_progress_and_cancel(models) -> None:
    model, card = models["ensemble", "bmode"]
    predictor = Predictor(model, card, device="cpu")
    events = []
    predictor.predict(_images(5, "bmode"), batch_size=2, progress=events.append)
    assert [(e.done, e.total) for e in events] == [(2, 5), (4, 5), (5, 5)]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(PredictionCancelled):
        predictor.predict(_images(2, "bmode"), cancel=cancel)
    with pytest.raises(ValueError):
        predictor.predict(_images(2, "bmode"), image_hashes=["only-one"])
    assert predictor.predict([]) == []


def test_hash_image() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    assert hash_image(a) == hash_image(a.copy()) != hash_image(np.zeros((4, 4, 3), np.uint8) + 1)
    assert hash_image(a) != hash_image(np.zeros((2, 8, 3), np.uint8))  # shape is part of it
    assert len(hash_image((a, a))) == 64
