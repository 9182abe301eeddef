"""One pass: predictions and Grad-CAM maps from the same forward, equal to the eager
reference (probabilities within 1e-3, CAM correlation >= 0.99); the maps are kept on disk
with the predictions, so showing one afterwards runs no model; the cache stays bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from busviewer.ai.cam_cache import CamCache
from busviewer.ai.gradcam import gradcam_batch, to_image_heatmap
from busviewer.ai.inference import Predictor
from busviewer.ai.modelcard import ModelCard
from busviewer.ai.networks import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZES = {"vgg16": 64, "ensemble": 96}


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.integers(0, 90, (70 + 3 * i, 90, 3), dtype=np.uint8)
        y, x = 10 + 5 * i, 20 + 4 * i
        img[y : y + 25, x : x + 25] = 230  # a bright square, somewhere else in each image
        out.append(img)
    return out


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[torch.nn.Module, ModelCard]]:
    out = {}
    for seed, (arch, size) in enumerate(SIZES.items()):
        torch.manual_seed(seed)
        out[arch] = (
            build_model(arch, "bmode", pretrained=False).eval(),
            ModelCard(f"t-{arch}", 0, arch, "bmode", input_size=size, pretrained_init="random"),
        )
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("arch", list(SIZES))
@pytest.mark.parametrize("channels_last", [False, True])
def test_one_pass_matches_eager_predict_and_gradcam(models, arch: str, channels_last: bool) -> None:  # type: ignore[no-untyped-def]
    model, card = models[arch]
    images = _images(5)
    predictor = Predictor(model, card, "cpu", channels_last=channels_last)
    eager = predictor.predict(images, batch_size=2)
    preds, maps = predictor.predict_with_cams(images, batch_size=3)
    reference = gradcam_batch(model.to(memory_format=torch.contiguous_format), card, images, batch_size=1)
    assert len(preds) == len(maps) == len(images)
    for e, p, m, ref, im in zip(eager, preds, maps, reference, images):
        for cls in card.classes:
            assert abs(e.probabilities[cls] - p.probabilities[cls]) <= 1e-3
        assert p.label == e.label
        heat = to_image_heatmap(torch.from_numpy(m), *im.shape[:2])
        assert heat.shape == ref.heatmap.shape
        assert _corr(heat, ref.heatmap) >= 0.99
    assert all(param.grad is None for param in model.parameters())  # no parameter gradient written


def test_forward_before_the_cam_layer_records_no_graph(models) -> None:  # type: ignore[no-untyped-def]
    """Only the layers after the Grad-CAM layer are in the backward graph."""
    from busviewer.ai.gradcam import cam_layers, forward_with_cams

    model, card = models["vgg16"]
    seen: list[bool] = []
    first_conv = model.features[0]
    handles = [
        first_conv.register_forward_hook(lambda _m, _i, out: seen.append(out.requires_grad)),
        model.classifier.register_forward_hook(lambda _m, _i, out: seen.append(out.requires_grad)),
    ]
    try:
        x = torch.stack([torch.randn(3, 64, 64) for _ in range(2)])
        forward_with_cams(model, x)
    finally:
        for h in handles:
            h.remove()
    assert seen == [False, True]  # before the CAM layer: no graph; after it: recorded for the backward
    assert "vgg16" in cam_layers(model)


@pytest.fixture(scope="module")
def analysed(models, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from busviewer.ai.analysis import Analyzer
    from busviewer.ai.registry import ModelRegistry
    from busviewer.core.importer import import_paths
    from busviewer.core.store import Store

    tmp_path = tmp_path_factory.mktemp("analysed")
    (tmp_path / "shipped").mkdir()
    registry = ModelRegistry(user_dir=tmp_path / "models", shipped_dir=tmp_path / "shipped")
    for model, card in models.values():
        entry = registry.save(model, card)
        registry.activate(entry.name, entry.version)
    folder = tmp_path / "study" / "P-1"
    folder.mkdir(parents=True)
    images = _images(4, seed=3)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"im{i}.png")
    store = Store(tmp_path / "store.sqlite")
    import_paths(store, [tmp_path / "study"])
    cache = CamCache(tmp_path / "cams")
    analyzer = Analyzer(store, registry, device="cpu", cam_cache=cache)
    analysis = analyzer.analyse_patient("P-1")
    yield analyzer, analysis, store, cache
    store.close()


def test_analysis_stores_the_maps_and_showing_one_runs_no_model(analysed) -> None:  # type: ignore[no-untyped-def]
    from busviewer.ai.gradcam import gradcam

    analyzer, analysis, store, cache = analysed
    records = store.images("P-1")
    assert not analysis.problems and set(analysis.verdicts) == {"vgg16", "ensemble"}
    for _model, card in analyzer._models.values():
        for rec in records:
            assert cache.get(card.sha256, rec.content_hash, 0) is not None
    forwards: list[str] = []
    handles = [
        m.register_forward_hook(lambda *_a, a=arch: forwards.append(a)) for arch, (m, _c) in analyzer._models.items()
    ]
    try:
        shown = {(rec.id, arch): analyzer.gradcam(rec.id, arch) for rec in records for arch in analyzer._models}
    finally:
        for h in handles:
            h.remove()
    assert forwards == []  # toggling / switching model / exporting: stored maps, no model run
    for (image_id, arch), heat in shown.items():
        rec = store.image(image_id)
        model, card = analyzer._models[arch]
        pixels = np.asarray(Image.open(rec.source_path).convert("RGB"))
        assert heat.shape == pixels.shape[:2] and heat.dtype == np.float32
        assert _corr(heat, gradcam(model, card, pixels)) >= 0.99


def test_a_map_not_stored_is_computed_once_then_served(analysed) -> None:  # type: ignore[no-untyped-def]
    analyzer, _analysis, store, cache = analysed
    rec = store.images("P-1")[0]
    for path in cache.root.rglob("*.npy"):
        path.unlink()
    model = analyzer._models["vgg16"][0]
    forwards: list[int] = []
    handle = model.register_forward_hook(lambda *_a: forwards.append(1))
    try:
        first = analyzer.gradcam(rec.id, "vgg16")
        second = analyzer.gradcam(rec.id, "vgg16")
    finally:
        handle.remove()
    assert forwards == [1]
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_cache_is_bounded_least_recently_used_first_and_ignores_bad_files(tmp_path: Path) -> None:
    cache = CamCache(tmp_path / "c", max_bytes=12 * 4096)
    rng = np.random.default_rng(0)
    maps = {f"img{i}": rng.random((4, 4), dtype=np.float32) for i in range(30)}
    for i, (h, m) in enumerate(maps.items()):
        cache.put("sha", h, 0, "conv", m)
        if i >= 1:
            assert cache.get("sha", "img0", 0, "conv") is not None  # kept alive by use
    assert cache.size_bytes() <= cache.max_bytes
    np.testing.assert_array_equal(cache.get("sha", "img0", 0, "conv"), maps["img0"])
    assert cache.get("sha", "img1", 0, "conv") is None  # least recently used: evicted
    np.testing.assert_array_equal(cache.get("sha", "img29", 0, "conv"), maps["img29"])
    assert cache.get("other-model", "img29", 0, "conv") is None  # the model's sha256 is in the key
    assert cache.get("sha", "img29", 1, "conv") is None  # and the frame
    path = cache._path("sha", "img29", 0, "conv")
    path.write_bytes(b"not a numpy file")
    assert cache.get("sha", "img29", 0, "conv") is None and not path.exists()
