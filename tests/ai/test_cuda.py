"""CUDA checks (marker ``cuda``; skipped without a CUDA GPU; ``benchmarks/gpu_check.sh`` runs
them): the one pass on the GPU gives the CPU's probabilities and Grad-CAM maps, autocast
prediction stays close to fp32, and an analysis on CUDA stores maps that are served later."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from busviewer.ai.inference import Predictor
from busviewer.ai.modelcard import ModelCard
from busviewer.ai.networks import build_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh)"),
]
SIZES = {"vgg16": 64, "ensemble": 128}


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (90 + i, 120, 3), dtype=np.uint8) for i in range(n)]


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a @ b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


@pytest.mark.parametrize("arch", list(SIZES))
def test_one_pass_on_cuda_matches_cpu(arch: str) -> None:
    torch.manual_seed(0)
    card = ModelCard(f"c-{arch}", 0, arch, "bmode", input_size=SIZES[arch], pretrained_init="random")
    model = build_model(arch, "bmode", pretrained=False).eval()
    images = _images(6)
    cpu_preds, cpu_maps = Predictor(model, card, "cpu").predict_with_cams(images)
    gpu_preds, gpu_maps = Predictor(model, card, "cuda").predict_with_cams(images)
    for a, b, ma, mb in zip(cpu_preds, gpu_preds, cpu_maps, gpu_maps):
        assert abs(a.malignant_probability - b.malignant_probability) <= 1e-3
        assert ma.shape == mb.shape and _corr(ma, mb) >= 0.99
    amp = Predictor(model, card, "cuda").predict(images)  # autocast bf16/fp16
    assert max(abs(a.malignant_probability - b.malignant_probability) for a, b in zip(cpu_preds, amp)) <= 2e-2


def test_analysis_on_cuda_stores_maps_served_without_the_gpu(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from busviewer.ai.analysis import Analyzer
    from busviewer.ai.cam_cache import CamCache
    from busviewer.ai.registry import ModelRegistry
    from busviewer.core.importer import import_paths
    from busviewer.core.store import Store

    (tmp_path / "shipped").mkdir()
    registry = ModelRegistry(user_dir=tmp_path / "models", shipped_dir=tmp_path / "shipped")
    torch.manual_seed(1)
    entry = registry.save(
        build_model("vgg16", "bmode", pretrained=False).eval(),
        ModelCard("c-vgg", 0, "vgg16", "bmode", input_size=64, pretrained_init="random"),
    )
    registry.activate(entry.name, entry.version)
    for i, img in enumerate(_images(3)):
        (tmp_path / "study" / "P").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "study" / "P" / f"{i}.png")
    store = Store(tmp_path / "s.sqlite")
    import_paths(store, [tmp_path / "study"])
    cache = CamCache(tmp_path / "cams")
    gpu = Analyzer(store, registry, device="cuda", cam_cache=cache)
    gpu.analyse_patient("P")
    cpu = Analyzer(store, registry, device="cpu", cam_cache=cache)
    cpu.load_models()
    model = cpu._models["vgg16"][0]
    calls: list[int] = []
    handle = model.register_forward_hook(lambda *_a: calls.append(1))
    try:
        maps = [cpu.gradcam(rec.id, "vgg16") for rec in store.images("P")]
    finally:
        handle.remove()
    assert calls == [] and all(m.shape == (90 + i, 120) for i, m in enumerate(maps))
    store.close()
