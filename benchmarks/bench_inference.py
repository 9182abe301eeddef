"""Inference benchmark (issue 11): stable figures on a noisy shared machine.

Run from the repository root::

    .venv/bin/python benchmarks/bench_inference.py [--models shipped,synthetic] [--size 224]
        [--repeats 5] [--threads N] [--compile]

Every figure is the median of ``--repeats`` (>= 5) runs with its min and max; the variants
compared (baseline and candidates) are run interleaved inside each repeat, so a burst of
load from another process hits all of them alike. Printed in one run:

- the machine's measured peak FLOP/s: a 2048x2048 fp32 matmul run in the same interleaved
  rounds as each model's paths, so the two figures see the same load;
- per model: FLOPs per image (``torch.utils.flop_counter``), ms/image and achieved FLOP/s
  (and % of the measured peak) of: the naive path (one image at a time, autograd on; the
  baseline), the batched eager fp32 path NCHW and channels-last (``Predictor.predict``),
  the one-pass predict + Grad-CAM (``Predictor.predict_with_cams``) and, with
  ``--compile``, ``torch.compile`` (inductor); each candidate's largest probability
  difference to eager fp32;
- a 10-image patient, both models: predictions + Grad-CAM of every image the old way
  (predict, then a separate Grad-CAM forward + backward) vs one pass.

Models: ``shipped`` = models/ (ensemble 128 px, VGG-16 64 px); ``synthetic`` = random weights
at ``--size`` (default 224, the earlier benchmark's size). Images: BUSI development copy in
``/work/shared/data/busi/images`` (or ``$BUSVIEWER_BENCH_IMAGES``), else random.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from busviewer.ai.gradcam import gradcam_batch  # noqa: E402
from busviewer.ai.inference import Predictor, predict_naive  # noqa: E402
from busviewer.ai.modelcard import ModelCard  # noqa: E402
from busviewer.ai.preprocess import preprocess  # noqa: E402

DEFAULT_IMAGES_DIR = Path("/work/shared/data/busi/images")
Stat = tuple[float, float, float]  # median, min, max


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
        return images, f"{n} BUSI images from {root}"
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(n)], f"{n} RANDOM 256x256 images"


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, Stat]:
    """Seconds per call of each function: (median, min, max) over ``repeats`` rounds, each
    round running every function once in turn (after one warm-up call each)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: (statistics.median(v), min(v), max(v)) for k, v in times.items()}


PEAK = "peak: 2048^3 fp32 matmul"
_MM = 2048


def matmul(device: torch.device = torch.device("cpu")) -> Callable[[], Any]:
    """The peak-FLOP/s probe: a large fp32 matmul (2 * 2048^3 FLOP per call)."""
    a, b = torch.randn(_MM, _MM, device=device), torch.randn(_MM, _MM, device=device)
    if device.type == "cuda":
        return lambda: (torch.mm(a, b), torch.cuda.synchronize(device))
    return lambda: torch.mm(a, b)


def as_flops(seconds: Stat) -> Stat:
    """Seconds of the matmul probe -> FLOP/s (median, min, max)."""
    flops = 2 * _MM**3
    return flops / seconds[0], flops / seconds[2], flops / seconds[1]


def model_flops(model: torch.nn.Module, size: int) -> float:
    """Forward FLOPs of one image (convolutions and matmuls, as torch counts them)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, size, size))
    return float(counter.get_total_flops())


def _fmt(stat: Stat, scale: float = 1.0, digits: int = 1) -> str:
    med, lo, hi = (v * scale for v in stat)
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def load_models(which: str, size: int) -> dict[str, tuple[torch.nn.Module, ModelCard]]:
    if which == "synthetic":
        from busviewer.ai.networks import build_model

        torch.manual_seed(0)
        return {
            arch: (
                build_model(arch, "bmode", pretrained=False).eval(),
                ModelCard(f"bench-{arch}", 1, arch, "bmode", input_size=size, pretrained_init="random"),
            )
            for arch in ("ensemble", "vgg16")
        }
    from busviewer.ai.registry import ModelRegistry
    from busviewer.core.paths import SHIPPED_MODELS_DIR

    with tempfile.TemporaryDirectory() as user:
        reg = ModelRegistry(user_dir=Path(user), shipped_dir=SHIPPED_MODELS_DIR)
        out = {}
        for arch in ("ensemble", "vgg16"):
            entry = reg.shipped_default(arch)
            if entry is not None:
                out[arch] = reg.load(entry)
        return out


def bench_model(
    arch: str,
    model: torch.nn.Module,
    card: ModelCard,
    images: list[np.ndarray],
    repeats: int,
    batch: int,
    naive_n: int,
    compile_: bool,
    log: Callable[[str], None],
) -> dict:
    """ms/image and FLOP/s of the naive, batched and one-pass paths of one model."""
    flops = model_flops(model, card.input_size)
    eager = Predictor(model, card, "cpu", channels_last=False)
    cl = Predictor(model, card, "cpu", channels_last=True)
    auto = Predictor(model, card, "cpu")  # the default choice, used by the application
    model.to(memory_format=torch.contiguous_format)
    naive_imgs = images[:naive_n]
    fns: dict[str, Callable[[], Any]] = {
        "naive (batch 1, autograd)": lambda: predict_naive(model, card, naive_imgs),
        "eager fp32 NCHW": lambda: eager.predict(images, batch_size=batch),
        "eager fp32 channels-last": lambda: cl.predict(images, batch_size=batch),
        "one pass predict+CAM NCHW": lambda: eager.predict_with_cams(images, batch_size=batch),
        "one pass predict+CAM channels-last": lambda: cl.predict_with_cams(images, batch_size=batch),
    }
    compiled = None
    if compile_:
        compiled = torch.compile(model, backend="inductor")
        x = torch.stack([preprocess(im, card) for im in images])

        def run_compiled() -> torch.Tensor:
            with torch.inference_mode():
                xb = torch.stack([preprocess(im, card) for im in images])
                return torch.softmax(compiled(xb).float() / card.temperature, 1)

        t0 = time.perf_counter()
        run_compiled()
        log(f"  torch.compile (inductor) first call: {time.perf_counter() - t0:.1f} s")
        fns["torch.compile inductor"] = run_compiled
    # One model format per call: channels-last predictors convert the shared model.
    fmt = {
        "eager fp32 NCHW": torch.contiguous_format,
        "naive (batch 1, autograd)": torch.contiguous_format,
        "eager fp32 channels-last": torch.channels_last,
        "one pass predict+CAM NCHW": torch.contiguous_format,
        "one pass predict+CAM channels-last": torch.channels_last,
    }

    def with_format(name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        mf = fmt.get(name, torch.channels_last if auto.channels_last else torch.contiguous_format)
        return lambda: (model.to(memory_format=mf), fn())[1]

    stats = interleaved({PEAK: matmul()} | {k: with_format(k, f) for k, f in fns.items()}, repeats)
    peak_stat = as_flops(stats.pop(PEAK))
    peak = peak_stat[0]
    ref = np.array([[p.probabilities[c] for c in card.classes] for p in eager.predict(images, batch_size=batch)])
    diffs = {
        "eager fp32 channels-last": np.array(
            [
                [p.probabilities[c] for c in card.classes]
                for p in (model.to(memory_format=torch.channels_last), cl.predict(images, batch_size=batch))[1]
            ]
        ),
    }
    for name, pred, mf in (
        ("one pass predict+CAM NCHW", eager, torch.contiguous_format),
        ("one pass predict+CAM channels-last", cl, torch.channels_last),
    ):
        model.to(memory_format=mf)
        diffs[name] = np.array(
            [[p.probabilities[c] for c in card.classes] for p in pred.predict_with_cams(images, batch_size=batch)[0]]
        )
    model.to(memory_format=torch.channels_last if auto.channels_last else torch.contiguous_format)
    if compiled is not None:
        with torch.inference_mode():
            diffs["torch.compile inductor"] = torch.softmax(compiled(x).float() / card.temperature, 1).numpy()
    log(
        f"\n{arch} ({card.name}, input {card.input_size} px): {flops / 1e9:.2f} GFLOP/image forward; "
        f"{len(images)} images, batch {batch}; naive on {len(naive_imgs)} images"
    )
    log(
        f"  measured peak in the same rounds: {peak / 1e9:.1f} GFLOP/s (min {peak_stat[1] / 1e9:.1f}, "
        f"max {peak_stat[2] / 1e9:.1f}); % peak below is of the median"
    )
    log(f"  {'path':<34}{'ms/image median (min-max)':>30}{'GFLOP/s':>10}{'% peak':>8}{'max |dp| vs eager':>19}")
    rows = {}
    for name, st in stats.items():
        n = len(naive_imgs) if name.startswith("naive") else len(images)
        per = tuple(v / n for v in st)
        rate = flops / per[0]
        d = diffs.get(name)
        dp = "" if d is None else f"{float(np.abs(d - ref).max()):.1e}"
        rows[name] = {"ms_per_image": per, "gflops": rate / 1e9, "pct_peak": 100 * rate / peak}
        log(f"  {name:<34}{_fmt(per, 1000):>30}{rate / 1e9:>10.1f}{100 * rate / peak:>7.0f}%{dp:>19}")
    naive = rows["naive (batch 1, autograd)"]["ms_per_image"][0]
    best = min(rows["eager fp32 NCHW"]["ms_per_image"][0], rows["eager fp32 channels-last"]["ms_per_image"][0])
    log(
        f"  batched (best eager layout) vs naive: {naive / best:.2f}x; the application's layout for this "
        f"model: {'channels-last' if auto.channels_last else 'NCHW'}"
    )
    return {"flops": flops, "rows": rows, "speedup": naive / best, "peak": peak_stat}


def bench_patient(
    models: dict[str, tuple[torch.nn.Module, ModelCard]],
    images: list[np.ndarray],
    repeats: int,
    batch: int,
    log: Callable[[str], None],
    device: str = "cpu",
) -> dict[str, Stat]:
    """A patient: both models' predictions + Grad-CAM of every image; before vs one pass.
    (Results come back to the CPU, which waits for a GPU to finish.)"""
    preds = {arch: Predictor(m, c, device) for arch, (m, c) in models.items()}

    def before() -> None:  # predict, then Grad-CAM forward + backward (as before issue 11)
        for p in preds.values():
            p.predict(images, batch_size=batch)
        for m, c in models.values():
            gradcam_batch(m, c, images)

    def one_pass() -> None:
        for p in preds.values():
            p.predict_with_cams(images, batch_size=batch)

    stats = interleaved({"before: predict + separate Grad-CAM": before, "one pass": one_pass}, repeats)
    log(
        f"\n{len(images)}-image patient, both models, predictions + Grad-CAM of every image "
        f"(median of {repeats}, min-max):"
    )
    for name, st in stats.items():
        log(f"  {name:<38}{_fmt(st, 1, 2):>24} s")
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="shipped,synthetic", help="shipped, synthetic or both (comma-separated)")
    ap.add_argument("--size", type=int, default=224, help="synthetic models' input size (default 224)")
    ap.add_argument("--images", type=int, default=16, help="images for the batched measurement (default 16)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--naive-images", type=int, default=4)
    ap.add_argument("--patient-images", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats per figure (>= 5)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (inductor)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]: cuda times only the patient")
    args = ap.parse_args(argv)
    if args.repeats < 5:
        ap.error("--repeats must be >= 5")
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    images, source = load_images(max(args.images, args.patient_images))
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(
        f"busviewer inference benchmark: CPU {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average at start {load[0]:.1f}"
    )
    print(f"images: {source}; every figure: median (min-max) of {args.repeats} interleaved repeats")
    for which in [w.strip() for w in args.models.split(",") if w.strip()]:
        models = load_models(which, args.size)
        if not models:
            print(f"\n[{which}] no models found; skipped")
            continue
        print(f"\n===== {which} models =====")
        if args.device == "cpu":
            for arch, (model, card) in models.items():
                bench_model(
                    arch,
                    model,
                    card,
                    images[: args.images],
                    args.repeats,
                    args.batch_size,
                    args.naive_images,
                    args.compile,
                    print,
                )
        else:
            print(f"device {args.device}: {torch.cuda.get_device_name(torch.device(args.device))}")
        bench_patient(models, images[: args.patient_images], args.repeats, args.batch_size, print, args.device)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"\n(benchmark wall time {time.perf_counter() - t0:.0f} s; load average at end {load[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
