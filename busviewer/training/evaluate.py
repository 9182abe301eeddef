"""Batched prediction and the evaluation report of a model on labelled samples."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from busviewer.training.augment import eval_transform
from busviewer.training.data import CLASSES, ImageCache, ImageDataset, Sample
from busviewer.training.metrics import evaluate_predictions


def torch_dataset(dataset: ImageDataset) -> Dataset[tuple[Any, int, int]]:
    """``dataset`` typed as the map-style torch dataset it is by protocol (data.py does not import torch)."""
    return cast("Dataset[tuple[Any, int, int]]", dataset)


def make_loader(
    dataset: ImageDataset,
    batch_size: int,
    num_workers: int = 0,
    sampler: Any = None,
    device: torch.device | None = None,
) -> DataLoader:
    return DataLoader(
        torch_dataset(dataset),
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=bool(device is not None and device.type == "cuda"),
        persistent_workers=num_workers > 0,
        drop_last=False,
    )


@torch.no_grad()
def predict_loader(
    module: nn.Module,
    loader: DataLoader,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    check_cancel: Callable[[], None] | None = None,
    class_weight: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Malignant probabilities, labels and the mean cross-entropy loss (weighted by
    ``class_weight`` like ``nn.CrossEntropyLoss(weight=...)``, i.e. divided by the summed
    weights of the targets).

    ``module`` is put in eval mode and left there (callers restore the training mode)."""
    module.eval()
    probs: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    loss_sum = 0.0
    n = 0.0
    w = class_weight.to(device) if class_weight is not None else None
    for x, y, _ in loader:
        if check_cancel is not None:
            check_cancel()
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = module(x)
        logits = logits.float()
        loss_sum += float(nn.functional.cross_entropy(logits, y, weight=w, reduction="sum").item())
        n += float(w[y].sum().item()) if w is not None else int(y.numel())
        probs.append(torch.softmax(logits, dim=1)[:, 1].cpu().numpy())
        labels.append(y.cpu().numpy())
    if n == 0:
        return np.zeros(0), np.zeros(0, dtype=int), float("nan")
    return np.concatenate(probs), np.concatenate(labels).astype(int), loss_sum / n


def predict_samples(
    model: nn.Module,
    samples: Sequence[Sample],
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    cache: ImageCache | None = None,
    amp_dtype: torch.dtype | None = None,
    check_cancel: Callable[[], None] | None = None,
    num_workers: int = 0,
) -> np.ndarray:
    """Malignant probability of each sample (the card's preprocessing: resize, normalise)."""
    device = torch.device(device)
    ds = ImageDataset(samples, eval_transform(input_size, mean, std), cache or ImageCache())
    probs, _, _ = predict_loader(
        model, make_loader(ds, batch_size, num_workers, device=device), device, amp_dtype, check_cancel
    )
    return probs


def evaluate_samples(
    model: nn.Module,
    samples: Sequence[Sample],
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    threshold: float = 0.5,
    cache: ImageCache | None = None,
    amp_dtype: torch.dtype | None = None,
    check_cancel: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Image-wise and patient-wise metrics and the per-sample malignant probabilities."""
    if not samples:
        raise ValueError("no samples to evaluate")
    probs = predict_samples(model, samples, input_size, mean, std, device, batch_size, cache, amp_dtype, check_cancel)
    report = evaluate_predictions([s.patient for s in samples], [s.label for s in samples], probs.tolist(), threshold)
    return report, probs


def write_predictions(
    path: str | Path, samples: Sequence[Sample], probs: Sequence[float], threshold: float = 0.5
) -> None:
    """One CSV row per image: path, frame, patient, truth, malignant probability, prediction."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "frame", "patient_id", "label", "label_source", "p_malignant", "predicted"])
        for s, p in zip(samples, probs, strict=True):
            w.writerow(
                [
                    str(s.path),
                    s.frame,
                    s.patient,
                    CLASSES[s.label],
                    s.label_source,
                    f"{float(p):.6f}",
                    CLASSES[int(float(p) >= threshold)],
                ]
            )
