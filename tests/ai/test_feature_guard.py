"""The feature-distance input guard (issue 14): fitted on a model's training images and
kept in its card; an image far from them is flagged "outside the model's training data"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import quadrant_discs

from busviewer.ai import feature_guard as fg


def _subspace(n: int, seed: int, dims: int = 64, rank: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(rank, dims))
    return rng.normal(size=(n, rank)) @ basis + 5.0 + 0.01 * rng.normal(size=(n, dims))


def test_fit_flags_features_off_the_training_subspace() -> None:
    guard = fg.fit(_subspace(200, 0), layer="cam", components=8)
    inside = guard.distance(_subspace(100, 1))
    assert sum(guard.outside(float(d)) for d in inside) <= 3  # held-out: about 1 % by construction
    off = _subspace(20, 2) + np.random.default_rng(3).normal(0, 1.0, (20, 64))
    assert all(guard.outside(float(d)) for d in guard.distance(off))
    assert guard.outside(float("nan"))


def test_card_section_round_trip_and_malformed_sections() -> None:
    guard = fg.fit(_subspace(60, 0), layer="cam", components=4)
    section = json.loads(json.dumps(guard.to_card()))
    back = fg.FeatureGuard.from_card(section)
    assert back is not None and back.components.shape == (4, 64) and back.n_images == 60
    probe = _subspace(5, 7)
    assert np.allclose(back.distance(probe), guard.distance(probe), rtol=1e-4)
    assert fg.FeatureGuard.from_card(None) is None
    for broken in (
        {**section, "mean": section["mean"][:-1]},
        {**section, "threshold": -1},
        {**section, "scale": float("nan")},
        {k: v for k, v in section.items() if k != "components"},
    ):
        with pytest.raises(fg.FeatureGuardError):
            fg.FeatureGuard.from_card(broken)
    with pytest.raises(fg.FeatureGuardError):
        back.distance(np.zeros((1, 10)))
    with pytest.raises(fg.FeatureGuardError, match="at least 20"):
        fg.fit(_subspace(10, 0), layer="cam")


def _png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def test_registered_model_guard_flags_an_odd_image_in_the_analysis(blob_ensemble, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Fitted through the CLI on the model's training-like images (sealed into the card);
    the analysis flags a flat striped image, not held-out images like the training ones."""
    from busviewer import cli
    from busviewer.ai.analysis import Analyzer
    from busviewer.ai.registry import ModelRegistry
    from busviewer.ai.results import guard_analysis
    from busviewer.core.importer import import_paths
    from busviewer.core.store import Store

    model, card = blob_ensemble
    registry = ModelRegistry()  # the test's data directory, as the CLI's
    entry = registry.save(model, card)
    registry.activate(entry.name, entry.version)

    train, labels, _ = quadrant_discs(60, np.random.default_rng(11))
    rows = ["image,label,patient_id"]
    for i, (img, y) in enumerate(zip(train, labels)):
        _png(tmp_path / "train" / f"t{i}.png", img)
        rows.append(f"t{i}.png,{'malignant' if y else 'benign'},T{i}")
    (tmp_path / "train" / "manifest.csv").write_text("\n".join(rows) + "\n")
    status = cli.main(["models", "fit-guard", entry.ref, "--manifest", str(tmp_path / "train" / "manifest.csv")])
    assert status == 0
    guarded = ModelRegistry().verify(entry.ref)
    section = guarded.card.feature_guard
    assert section is not None and section["n_images"] == 60 and guarded.card.integrity != entry.card.integrity

    held_out, _, _ = quadrant_discs(4, np.random.default_rng(12))
    stripes = np.zeros((80, 112, 3), np.uint8)
    stripes[::4] = 255  # a flat pattern no training image looks like
    patient = tmp_path / "study" / "P-1"
    for i, img in enumerate(held_out):
        _png(patient / f"a{i}.png", img)
    _png(patient / "z_odd.png", stripes)
    store = Store(tmp_path / "store.sqlite")
    import_paths(store, [tmp_path / "study"])
    analyzer = Analyzer(store, ModelRegistry(), device="cpu")
    analysis = guard_analysis(store, analyzer.analyse_patient("P-1"))
    odd = next(r.id for r in store.images("P-1") if r.name == "z_odd.png")
    assert set(analysis.outside) == {odd}, analysis.outside
    assert "far from the images" in analysis.outside[odd] and "feature distance" in analysis.outside[odd]
    verdict = analysis.verdicts["ensemble"]
    assert odd not in verdict.malignant_images + verdict.benign_images  # it does not vote
    store.close()


def test_training_fits_the_guard_on_its_training_samples(blob_ensemble) -> None:  # type: ignore[no-untyped-def]
    """What registration does at the end of a run: too few samples give no guard; enough give
    a valid card section over the model's features."""
    from types import SimpleNamespace

    from busviewer.training.guard_fit import MIN_IMAGES, fit_guard_from_samples

    model, card = blob_ensemble
    images, _, _ = quadrant_discs(MIN_IMAGES, np.random.default_rng(5))
    samples = [SimpleNamespace(pixels=img) for img in images]
    assert fit_guard_from_samples(model, card, samples[:-1], read=lambda s: s.pixels) is None
    section = fit_guard_from_samples(model, card, samples, read=lambda s: s.pixels)
    guard = fg.FeatureGuard.from_card(section)
    assert guard is not None and guard.n_images == MIN_IMAGES and guard.mean.shape == (768,)
