"""Fixtures of the AI tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one thread (restored afterwards): on a shared 2-core
    machine, OpenMP threads waiting on each other make small batches up to 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def blob_ensemble():  # type: ignore[no-untyped-def]
    """An ensemble (input 128) trained in the test to tell images with a bright disc
    (``synthetic.quadrant_discs``, class 1 = malignant) from plain noise; eval mode, frozen."""
    import numpy as np
    import torch.nn.functional as F
    from synthetic import quadrant_discs
    from torch import nn

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model, freeze_resnet_for_finetune, set_requires_grad
    from busviewer.ai.preprocess import preprocess

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        card = ModelCard("blob", 1, "ensemble", "bmode", input_size=128, pretrained_init="random")
        model = build_model("ensemble", "bmode", pretrained=False)
        # Keep it cheap on 2 CPU cores: AlexNet stays a fixed random feature extractor and
        # ResNet-18's first four layers are frozen (as in seed 001's fine-tuning); ResNet's
        # layer3/layer4 and the joint head learn the task.
        set_requires_grad(model.alexnet, False)
        freeze_resnet_for_finetune(model.resnet, 4)
        steps, batch = 8, 12
        images, labels, _ = quadrant_discs(steps * batch, rng)
        x = torch.stack([preprocess(im, card) for im in images])
        y = torch.tensor(labels)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)
        model.train()
        for s in range(steps):
            sl = slice(s * batch, (s + 1) * batch)
            loss = F.cross_entropy(model(x[sl]), y[sl])
            opt.zero_grad()
            loss.backward()
            opt.step()
        # Recalibrate BatchNorm statistics for the trained weights (few steps, momentum lag).
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        with torch.no_grad():
            model(x[:32])
        model.eval()
        set_requires_grad(model, False)
    finally:
        torch.set_num_threads(before)
    return model, card
