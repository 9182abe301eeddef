"""Shipped models: file sizes, load time (cold and warm) and the recorded regression.

For every shipped model in the folder (default: models/ of this checkout) prints its shard
files and sizes, the compression recorded in its card, the load time of a first load in a
fresh process ("cold": imports done, file cache as it is) and of later loads in the same
process ("warm", best of 3), both including the sha256 check of every shard, and, with
--check ROOT (the folder of the manifest given to `busviewer models ship --check-data`,
e.g. ../shared/data/busi), the largest difference to the probabilities recorded at ship
time.

    .venv/bin/python benchmarks/bench_shipped.py [--models DIR] [--check ROOT] [--threads N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REPEATS = 3


def _load_once(models: str, ref: str, threads: int) -> float:
    import torch

    from busviewer.ai.registry import ModelRegistry

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as user:
        reg = ModelRegistry(user_dir=Path(user), shipped_dir=Path(models))
        t0 = time.perf_counter()
        reg.load(ref)
        return time.perf_counter() - t0


def _cold(models: Path, ref: str, threads: int) -> float:
    """First load in a fresh process (torch and busviewer imported before the clock starts)."""
    code = "\n".join(
        [
            "import sys, tempfile, time",
            f"sys.path.insert(0, {str(REPO)!r})",
            "import torch",
            "from pathlib import Path",
            "from busviewer.ai import inference, shards",
            "from busviewer.ai.registry import ModelRegistry",
            f"torch.set_num_threads({threads})",
            "with tempfile.TemporaryDirectory() as user:",
            f"    reg = ModelRegistry(user_dir=Path(user), shipped_dir=Path({str(models)!r}))",
            "    t0 = time.perf_counter()",
            f"    reg.load({ref!r})",
            "    print(time.perf_counter() - t0)",
        ]
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, default=None, help="shipped models folder (default: models/)")
    p.add_argument("--check", type=Path, help="folder the regression images' paths are relative to")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args()
    import torch

    from busviewer.ai.registry import ModelRegistry
    from busviewer.core.paths import SHIPPED_MODELS_DIR

    torch.set_num_threads(args.threads)
    models = args.models or SHIPPED_MODELS_DIR
    with tempfile.TemporaryDirectory() as user:
        entries = [e for e in ModelRegistry(user_dir=Path(user), shipped_dir=models).list() if e.location == "shipped"]
    if not entries:
        print(f"no shipped models in {models}")
        return 1
    print(f"{models}: {len(entries)} shipped model(s); torch threads {args.threads}")
    for e in entries:
        info = e.card.shipping or {}
        comp = info.get("compression", {})
        shards = info.get("shards", [])
        total = sum(s["bytes"] for s in shards)
        print(f"\n{e.ref} ({e.architecture}, {e.card.variant}, input {e.card.input_size})")
        for s in shards:
            print(f"  {s['file']}  {s['bytes'] / 1e6:.1f} MB")
        print(f"  total {total / 1e6:.1f} MB ({comp.get('used')}; float32 {comp.get('fp32_bytes', 0) / 1e6:.1f} MB)")
        eff = comp.get("effect")
        if eff:
            print(
                f"  compression vs float32 on {eff['images']} images: AUC {eff['auc_fp32']} -> {eff['auc_shipped']} "
                f"(change {eff['auc_change']}), max probability change {eff['max_probability_change']:.2e}, "
                f"mean {eff['mean_probability_change']:.2e}, calls changed {eff['calls_changed']}"
            )
        cold = _cold(models, e.ref, args.threads)
        warm = min(_load_once(str(models), e.ref, args.threads) for _ in range(REPEATS))
        print(f"  load (sha256 of every shard, de-quantise, build): cold {cold:.2f} s, warm {warm:.2f} s")
        if args.check is not None and (info.get("regression") or {}).get("images"):
            from busviewer.ai.shipping import regression_check

            with tempfile.TemporaryDirectory() as user:
                model, card = ModelRegistry(user_dir=Path(user), shipped_dir=models).load(e.ref)
            diff = regression_check(model, card, args.check)
            print(
                f"  regression: {len(info['regression']['images'])} images, largest difference {diff:.1e} "
                f"(tolerance {info['regression']['tolerance']})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
