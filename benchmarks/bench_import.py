"""Import speed: the BUSI manifest and the 120-frame YBR JPEG cine file.

Prints wall time (best of 3) for a full import into a fresh store, and, as the baseline
measured in the same run, the time to only hash and decode the same files (no store).
The ratio is the store's overhead.

Then the cost of decoder isolation (``busviewer.core.decode_pool``): per image, decoding
in this process vs in a warm decoder process (best of 3; the decoder's one-off start is
shown apart). Compressed DICOM is isolated by default; the PNG row shows what isolating
every file (``BUSVIEWER_DECODE_ISOLATION=all``) would cost.

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

from busviewer.core.decode_pool import DecoderPool  # noqa: E402
from busviewer.core.imageio import read_image, read_image_here, sha256_file  # noqa: E402
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


def _best_per_image(read, files: list[Path]) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for f in files:
            read(f)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best / len(files)


def isolation_cost(sets: list[tuple[str, list[Path]]]) -> None:
    """Print ms/image in-process vs in a warm decoder process for each set of files."""
    with DecoderPool(workers=1) as pool:
        t0 = time.perf_counter()
        pool.read(sets[0][1][0])  # starts the decoder
        start = time.perf_counter() - t0
        print(f"\ndecoder isolation (decoder start {1000 * start:.0f} ms, once per decoder)")
        print(f"{'files':<34} {'n':>4} {'in-process ms':>14} {'decoder ms':>11} {'cost ms':>8} {'cost %':>7}")
        for name, files in sets:
            here = _best_per_image(read_image_here, files)
            isolated = _best_per_image(pool.read, files)
            print(f"{name:<34} {len(files):>4} {here:>14.1f} {isolated:>11.1f} {isolated - here:>8.1f} "
                  f"{100 * (isolated - here) / here:>6.0f}%")


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
    sets: list[tuple[str, list[Path]]] = []
    try:
        import data_store

        data = Path(data_store.__file__).parent / "data"
        sets.append(("120-frame YBR JPEG cine", [data / "color3d_jpeg_baseline.dcm"]))
        sets.append(("JPEG 2000 / JPEG-LL / RLE stills", [data / n for n in (
            "US1_J2KR.dcm", "US1_J2KI.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "OBXXXX1A_rle.dcm")]))
    except ImportError:
        pass
    if manifest.is_file():
        sets.append(("BUSI PNG (not isolated by default)", files[:50]))
    if sets:
        isolation_cost(sets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
