from __future__ import annotations

import numpy as np
import pytest
import torch

from busviewer.ai.modelcard import ModelCard
from busviewer.ai.preprocess import clamp_box, crop, crop_input, preprocess, preprocess_batch


def _card(mode: str = "bmode", size: int = 64) -> ModelCard:
    return ModelCard("p", 1, "vgg16", mode, input_size=size, pretrained_init="random")


def test_bmode_shape_and_normalisation() -> None:
    card = _card()
    img = np.full((30, 50, 3), (255, 128, 0), dtype=np.uint8)
    t = preprocess(img, card)
    assert t.shape == (3, 64, 64) and t.dtype == torch.float32
    expected = [(v / 255 - m) / s for v, m, s in zip((255, 128, 0), card.mean, card.std)]
    np.testing.assert_allclose(t.mean(dim=(1, 2)).numpy(), expected, atol=1e-5)


def test_resize_is_antialiased_bilinear() -> None:
    # A fine checkerboard shrunk 8x averages to grey with antialiasing (plain bilinear aliases).
    img = ((np.indices((256, 256)).sum(0) % 2) * 255).astype(np.uint8)
    t = preprocess(img, _card(size=32))  # grey 2-D input is accepted and replicated
    unnorm = t[0] * 0.229 + 0.485
    assert float(unnorm.std()) < 0.02 and abs(float(unnorm.mean()) - 0.5) < 0.02


def test_bse_pair_is_grey_plus_strain_rgb() -> None:
    card = _card("bse", 32)
    bmode = np.full((40, 60, 3), 100, dtype=np.uint8)
    bmode[..., 0] = 200
    strain = np.zeros((20, 20, 3), dtype=np.uint8)
    strain[..., 2] = 255
    t = preprocess((bmode, strain), card)
    assert t.shape == (4, 32, 32)
    grey = (0.299 * 200 + 0.587 * 100 + 0.114 * 100) / 255
    raw = t * torch.tensor(card.std).view(-1, 1, 1) + torch.tensor(card.mean).view(-1, 1, 1)
    np.testing.assert_allclose(raw.mean(dim=(1, 2)).numpy(), [grey, 0, 0, 1], atol=1e-5)
    with pytest.raises(TypeError, match="pair"):
        preprocess(bmode, card)
    with pytest.raises(TypeError, match="one RGB image"):
        preprocess((bmode, strain), _card("bmode"))


def test_batch_and_errors() -> None:
    card = _card()
    imgs = [np.zeros((10, 12, 3), np.uint8), np.ones((70, 20, 3), np.uint8)]
    assert preprocess_batch(imgs, card).shape == (2, 3, 64, 64)
    assert preprocess_batch([], card).shape == (0, 3, 64, 64)
    with pytest.raises(TypeError, match="uint8"):
        preprocess(np.zeros((10, 10, 3), np.float32), card)
    with pytest.raises(ValueError, match="shape"):
        preprocess(np.zeros((10, 10, 4), np.uint8), card)


def test_crop_clamps() -> None:
    img = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    out = crop(img, (5, 2, 9, 6))
    assert out.shape == (4, 4, 3) and np.array_equal(out, img[2:6, 5:9])
    assert crop(img, (-5, -5, 100, 100)).shape == (10, 20, 3)
    assert np.array_equal(crop(img, (9, 6, 5, 2)), out)  # reversed corners
    out[:] = 0
    assert img[2, 5, 0] != 0 or img[2, 5, 1] != 0  # a copy, not a view
    assert clamp_box((2.4, 1.6, 7.5, 30), 10, 20) == (2, 2, 8, 10)
    with pytest.raises(ValueError, match="overlap"):
        crop(img, (25, 0, 30, 5))
    with pytest.raises(ValueError):
        crop(img, (3, 3, 3, 8))
    a, b = crop_input((img, img.copy()), (0, 0, 4, 4))
    assert a.shape == b.shape == (4, 4, 3)
