"""Inference benchmark: batched prediction, a 10-image patient, batched vs naive.

Run from the repository root::

    python benchmarks/bench_inference.py [--size 224] [--images 16] [--device auto] [--threads N]
    python -m benchmarks.bench_inference ...

Models are built with random weights (speed does not depend on the weights, and nothing
needs downloading). Images come from the BUSI development copy in
``/work/shared/data/busi/images`` (or ``$BUSVIEWER_BENCH_IMAGES``) when present, else
random images (the output says which).

Measured in one run:

- ms/image of the batched path (:class:`~busviewer.ai.inference.Predictor`: batches,
  ``torch.inference_mode``, autocast on CUDA, channels-last where it helps);
- the naive path: one image at a time, autograd on, batch 1, fresh preprocessing per
  image (:func:`~busviewer.ai.inference.predict_naive`), and the speed-up;
- a 10-image patient: ensemble + VGG-16 predictions plus Grad-CAM of every image for both.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from busviewer.ai.device import choose_device, describe_device
from busviewer.ai.gradcam import gradcam_batch
from busviewer.ai.inference import Predictor, predict_naive
from busviewer.ai.modelcard import ModelCard
from busviewer.ai.networks import build_model

DEFAULT_IMAGES_DIR = Path("/work/shared/data/busi/images")


def load_images(n: int, seed: int = 0) -> tuple[list[np.ndarray], str]:
    """``n`` RGB uint8 images and a sentence saying where they came from."""
    from PIL import Image

    root = Path(os.environ.get("BUSVIEWER_BENCH_IMAGES", DEFAULT_IMAGES_DIR))
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")) if root.is_dir() else []
    if files:
        rng = np.random.default_rng(seed)
        pick = [files[i] for i in rng.choice(len(files), size=min(n, len(files)), replace=False)]
        images = [np.asarray(Image.open(p).convert("RGB")) for p in pick]
        while len(images) < n:
            images.append(images[len(images) % len(pick)])
        shapes = sorted({im.shape[:2] for im in images})
        return images, f"{n} BUSI images from {root} (sizes {', '.join(f'{h}x{w}' for h, w in shapes)})"
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(n)]
    return images, f"{n} RANDOM 256x256 images ({root} not found)"


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def run_benchmark(
    size: int = 224,
    n_images: int = 16,
    device: str | None = None,
    threads: int | None = None,
    batch_size: int = 16,
    naive_images: int = 4,
    patient_images: int = 10,
    compare_channels_last: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the benchmark and return the figures (seconds and ms/image)."""
    if threads:
        torch.set_num_threads(threads)
    dev = choose_device(device)
    images, source = load_images(max(n_images, patient_images))
    results: dict[str, Any] = {
        "device": describe_device(dev), "torch": torch.__version__, "size": size, "images": source,
        "batch_size": batch_size, "cpu": platform.processor() or platform.machine(), "models": {},
    }
    log(f"busviewer inference benchmark: {describe_device(dev)}, torch {torch.__version__}, "
        f"input {size}x{size}, batch {batch_size}")
    log(f"images: {source}")
    log("models: random weights (timing only; no ImageNet weights needed)\n")
    torch.manual_seed(0)
    models: dict[str, tuple[torch.nn.Module, ModelCard, Predictor]] = {}
    for arch in ("ensemble", "vgg16"):
        model = build_model(arch, "bmode", pretrained=False).eval()
        card = ModelCard(f"bench-{arch}", 1, arch, "bmode", input_size=size, pretrained_init="random")
        model = model.to(dev)
        batch_imgs = images[:n_images]
        naive_imgs = images[:max(1, min(naive_images, n_images))]
        # Naive first, on the model in its default memory format.
        predict_naive(model, card, naive_imgs[:1])  # warm-up
        t_naive, _ = _timed(lambda: predict_naive(model, card, naive_imgs), dev)
        row: dict[str, Any] = {"naive_ms_per_image": 1000 * t_naive / len(naive_imgs),
                               "naive_images": len(naive_imgs)}
        if compare_channels_last and dev.type == "cpu":
            for cl in (False, True):
                p = Predictor(model, card, dev, channels_last=cl)
                p.predict(batch_imgs[:2], batch_size=2)
                t, _ = _timed(lambda: p.predict(batch_imgs, batch_size=batch_size), dev)
                row[f"batched_ms_per_image_channels_last_{cl}"] = 1000 * t / len(batch_imgs)
                model = model.to(memory_format=torch.contiguous_format)
        predictor = Predictor(model, card, dev)
        predictor.predict(batch_imgs[:2], batch_size=2)  # warm-up
        t_batched, _ = _timed(lambda: predictor.predict(batch_imgs, batch_size=batch_size), dev)
        row.update({
            "batched_ms_per_image": 1000 * t_batched / len(batch_imgs),
            "channels_last": predictor.channels_last,
            "autocast": str(predictor.autocast_dtype).replace("torch.", "") if predictor.autocast_dtype else "off",
        })
        row["speedup"] = row["naive_ms_per_image"] / row["batched_ms_per_image"]
        results["models"][arch] = row
        models[arch] = (model, card, predictor)

    log(f"{'model':<10}{'batched ms/img':>16}{'naive ms/img':>14}{'speed-up':>10}   path")
    for arch, row in results["models"].items():
        log(f"{arch:<10}{row['batched_ms_per_image']:>16.1f}{row['naive_ms_per_image']:>14.1f}"
            f"{row['speedup']:>9.2f}x   inference_mode, batch {batch_size}, channels_last={row['channels_last']}, "
            f"autocast={row['autocast']} (naive: {row['naive_images']} images, eager, batch 1)")
    if compare_channels_last and dev.type == "cpu":
        log("channels-last on CPU (batched ms/img): " + ", ".join(
            f"{arch} NCHW {r['batched_ms_per_image_channels_last_False']:.1f} / "
            f"NHWC {r['batched_ms_per_image_channels_last_True']:.1f}" for arch, r in results["models"].items()))

    # A patient: every image through both models, plus Grad-CAM of every image for both.
    patient = images[:patient_images]
    parts: dict[str, float] = {}
    for arch, (model, card, predictor) in models.items():
        parts[f"{arch} predict"], _ = _timed(lambda: predictor.predict(patient, batch_size=batch_size), dev)
    for arch, (model, card, predictor) in models.items():
        parts[f"{arch} Grad-CAM"], _ = _timed(lambda: gradcam_batch(model, card, patient), dev)
    total = sum(parts.values())
    results["patient"] = {"images": len(patient), "seconds": parts, "total_s": total}
    log(f"\n{len(patient)}-image patient (predictions of both models + Grad-CAM of every image for both):")
    for name, secs in parts.items():
        log(f"  {name:<20}{secs:>8.2f} s   ({1000 * secs / len(patient):.0f} ms/image)")
    log(f"  {'total':<20}{total:>8.2f} s")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=224, help="model input size in pixels (default 224)")
    ap.add_argument("--images", type=int, default=16, help="images for the batched measurement (default 16)")
    ap.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--naive-images", type=int, default=4, help="images for the naive loop (default 4)")
    ap.add_argument("--patient-images", type=int, default=10)
    ap.add_argument("--no-channels-last-compare", action="store_true",
                    help="skip the NCHW vs NHWC comparison on CPU")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    run_benchmark(args.size, args.images, args.device, args.threads, args.batch_size, args.naive_images,
                  args.patient_images, not args.no_channels_last_compare)
    print(f"\n(benchmark wall time {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
