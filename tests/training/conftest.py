"""Tiny synthetic breast-ultrasound-like data for the training tests.

Malignant images carry a bright blob, benign ones a faint small spot; 64x64 PNGs, a
handful of patients with 1-3 images each, file names with spaces and parentheses like
BUSI, a few "normal" images, and one patient whose images carry conflicting labels.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import blob_image

warnings.filterwarnings("ignore", message=".*ImageNet weights.*")


def make_image(rng: np.random.Generator, malignant: bool, size: int = 64) -> np.ndarray:
    grey = blob_image(rng, malignant, size)
    return np.repeat(grey[..., None], 3, axis=2)


def make_manifest(root: Path, n_patients: int = 16, seed: int = 0, size: int = 64, normal: int = 3) -> Path:
    """Write PNGs and ``manifest.csv`` (image,label,patient_id) under ``root``."""
    rng = np.random.default_rng(seed)
    rows = []
    (root / "images").mkdir(parents=True, exist_ok=True)
    k = 0
    for p in range(n_patients):
        pid = f"P{p:03d}"
        malignant = p % 2 == 1
        for _ in range(int(rng.integers(1, 4))):
            k += 1
            label = "malignant" if malignant else "benign"
            name = f"images/{label} ({k}).png"
            Image.fromarray(make_image(rng, malignant, size)).save(root / name)
            rows.append((name, label, pid))
    # one patient with conflicting labels (a lesion filed under both classes)
    for label in ("benign", "malignant"):
        k += 1
        name = f"images/{label} ({k}).png"
        Image.fromarray(make_image(rng, label == "malignant", size)).save(root / name)
        rows.append((name, label, "PMIX"))
    for i in range(normal):
        k += 1
        name = f"images/normal ({k}).png"
        Image.fromarray(make_image(rng, False, size)).save(root / name)
        rows.append((name, "normal", f"N{i:02d}"))
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", "patient_id"])
        w.writerows(rows)
    return manifest


@pytest.fixture(scope="session")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_manifest(tmp_path_factory.mktemp("synthetic"))


def _fast_config(manifest: Path, run_dir: Path, **kw):  # type: ignore[no-untyped-def]
    """A few-second training config (tiny images, few steps, mostly frozen ensemble)."""
    from busviewer.training.config import TrainConfig

    base = dict(
        architecture="ensemble",
        data=str(manifest),
        input_size=64,
        epochs=2,
        patience=2,
        batch_size=8,
        eval_batch_size=32,
        max_steps_per_epoch=2,
        pretrained=False,
        alexnet_trainable_last=1,
        resnet_frozen_first=6,
        device="cpu",
        seed=0,
        val_fraction=0.2,
        test_fraction=0.2,
        run_dir=str(run_dir),
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def fast_config():  # type: ignore[no-untyped-def]
    """Factory ``fast_config(manifest, run_dir, **overrides) -> TrainConfig``."""
    return _fast_config


@pytest.fixture
def registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    from busviewer.ai.registry import ModelRegistry

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    return ModelRegistry(shipped_dir=shipped)  # user models: the test's isolated BUSVIEWER_HOME
