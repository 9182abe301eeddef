"""Import speed: the BUSI manifest and the 120-frame YBR JPEG cine file.

Prints the wall time of a full import into a fresh store and, as the baseline, the time
to only hash and decode the same files (no store): each the median (min-max) of
``--repeats`` (>= 5) runs, baseline and import interleaved in every round so that load
from other processes hits both alike. The ratio of the medians is the store's overhead.

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
import statistics
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

REPEATS = 3  # best of, for the isolation figures


def _decode_only(files: list[Path]) -> float:
    t0 = time.perf_counter()
    for f in files:
        sha256_file(f)
        read_image(f)
    return time.perf_counter() - t0


def _import(paths: list[Path]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite")  # opening (schema creation) is not timed
        t0 = time.perf_counter()
        report = import_paths(store, paths)
        took = time.perf_counter() - t0
        store.close()
    if report.problems:
        raise SystemExit(f"import problems: {report.problems[:3]}")
    return took, report.added


def interleaved(files: list[Path], paths: list[Path], repeats: int) -> tuple[list[float], list[float], int]:
    """Decode-only and import times, alternating, after one warm-up of each (file cache, imports)."""
    _decode_only(files)
    _, added = _import(paths)
    base, full = [], []
    for _ in range(repeats):
        base.append(_decode_only(files))
        full.append(_import(paths)[0])
    return base, full, added


def _stat(v: list[float]) -> str:
    return f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"


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
            print(
                f"{name:<34} {len(files):>4} {here:>14.1f} {isolated:>11.1f} {isolated - here:>8.1f} "
                f"{100 * (isolated - here) / here:>6.0f}%"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--busi", type=Path, default=Path(os.environ.get("BUSVIEWER_BUSI", REPO.parent / "shared/data/busi"))
    )
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (>= 5)")
    parser.add_argument("--no-isolation", action="store_true", help="skip the decoder-isolation figures")
    args = parser.parse_args()
    if args.repeats < 5:
        parser.error("--repeats must be >= 5")
    print(f"load average at start {os.getloadavg()[0]:.1f}; median (min-max) of {args.repeats} interleaved rounds")
    rows = []
    manifest = args.busi / "manifest.csv"
    if manifest.is_file():
        with manifest.open() as fh:
            files = [args.busi / r["image"] for r in csv.DictReader(fh)]
        base, took, n = interleaved(files, [manifest], args.repeats)
        rows.append(("BUSI manifest", n, took, base))
    else:
        print(f"BUSI not found at {args.busi}; skipped", file=sys.stderr)
    try:
        import data_store

        cine = Path(data_store.__file__).parent / "data" / "color3d_jpeg_baseline.dcm"
        base, took, n = interleaved([cine], [cine], args.repeats)
        rows.append(("120-frame YBR_FULL_422 JPEG", n, took, base))
    except ImportError:
        print("pydicom-data not installed; 120-frame file skipped", file=sys.stderr)
    print(f"{'input':<30} {'images':>6} {'import s':>18} {'ms/image':>9} {'decode-only s':>18} {'import/decode':>14}")
    for name, n, took, base in rows:
        med = statistics.median(took)
        print(
            f"{name:<30} {n:>6} {_stat(took):>18} {1000 * med / max(n, 1):>9.1f} {_stat(base):>18} "
            f"{med / statistics.median(base):>14.2f}"
        )
    if args.no_isolation:
        return 0
    sets: list[tuple[str, list[Path]]] = []
    try:
        import data_store

        data = Path(data_store.__file__).parent / "data"
        sets.append(("120-frame YBR JPEG cine", [data / "color3d_jpeg_baseline.dcm"]))
        sets.append(
            (
                "JPEG 2000 / JPEG-LL / RLE stills",
                [
                    data / n
                    for n in ("US1_J2KR.dcm", "US1_J2KI.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "OBXXXX1A_rle.dcm")
                ],
            )
        )
    except ImportError:
        pass
    if manifest.is_file():
        sets.append(("BUSI PNG (not isolated by default)", files[:50]))
    if sets:
        isolation_cost(sets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
