"""Import speed: the BUSI manifest and the 120-frame YBR JPEG cine file.

Prints wall time (best of 3) for a full import into a fresh store, and, as the baseline
measured in the same run, the time to only hash and decode the same files (no store).
The ratio is the store's overhead.

    .venv/bin/python benchmarks/bench_import.py [--busi DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from busviewer.core.imageio import read_image, sha256_file  # noqa: E402
from busviewer.core.importer import import_paths  # noqa: E402
from busviewer.core.store import Store  # noqa: E402


REPEATS = 3  # best of: the first pass also pays for cold file caches and lazy imports


def _decode_only(files: list[Path]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for f in files:
            sha256_file(f)
            read_image(f)
        best = min(best, time.perf_counter() - t0)
    return best


def _import(paths: list[Path]) -> tuple[float, int]:
    best, added = float("inf"), 0
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "bench.sqlite")
            t0 = time.perf_counter()
            report = import_paths(store, paths)
            best = min(best, time.perf_counter() - t0)
            store.close()
        if report.problems:
            raise SystemExit(f"import problems: {report.problems[:3]}")
        added = report.added
    return best, added


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busi", type=Path, default=Path(os.environ.get("BUSVIEWER_BUSI", REPO.parent / "shared/data/busi")))
    args = parser.parse_args()
    rows = []
    manifest = args.busi / "manifest.csv"
    if manifest.is_file():
        with manifest.open() as fh:
            files = [args.busi / r["image"] for r in csv.DictReader(fh)]
        base = _decode_only(files)
        took, n = _import([manifest])
        rows.append(("BUSI manifest", n, took, base))
    else:
        print(f"BUSI not found at {args.busi}; skipped", file=sys.stderr)
    try:
        import data_store

        cine = Path(data_store.__file__).parent / "data" / "color3d_jpeg_baseline.dcm"
        base = _decode_only([cine])
        took, n = _import([cine])
        rows.append(("120-frame YBR_FULL_422 JPEG", n, took, base))
    except ImportError:
        print("pydicom-data not installed; 120-frame file skipped", file=sys.stderr)
    print(f"{'input':<30} {'images':>6} {'import s':>9} {'ms/image':>9} {'decode-only s':>14} {'import/decode':>14}")
    for name, n, took, base in rows:
        print(f"{name:<30} {n:>6} {took:>9.2f} {1000 * took / max(n, 1):>9.1f} {base:>14.2f} {took / base:>14.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
