"""Fuzz the image reader: mutated ultrasound DICOM files and BUSI PNGs, read by the real
``busviewer.core.imageio.read_image`` in caller processes that are watched from here.

Seeds: the ultrasound files of pydicom-data (found through pydicom's data manager, never
copied into the repository) and BUSI images. Mutations (deterministic from ``--seed``):
byte flips (header-biased), truncation, and structured edits (DICOM attributes such as
Photometric Interpretation, Samples per Pixel, Bits Allocated/Stored, Rows, Number of
Frames, the transfer syntax, PixelSpacing / FrameTime / region PhysicalDelta set to inf,
NaN or out-of-range values; PNG IHDR fields with a correct CRC).

Each caller process reads mutants one at a time; its answers are counted per outcome:

* ``ok``                 decoded, frames (F, H, W, 3) uint8, geometry finite and in range
* ``error: <kind>``      ImageReadError naming the file (kind from its reason)
* failures: ``caller died`` (the reading process itself died), ``hang`` (no answer in
  ``--hang-s``), ``non-finite geometry accepted``, ``bad result``, ``other exception``,
  ``error not naming the file``.

    .venv/bin/python benchmarks/fuzz_decode.py -n 10000 --workers 2 [--busi DIR] [--no-header-checks]

Exit status 0 when no failure occurred.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import multiprocessing as mp
import os
import random
import shutil
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FAILURES = (
    "caller died",
    "hang",
    "non-finite geometry accepted",
    "bad result",
    "other exception",
    "error not naming the file",
)
_BIG_SEED_BYTES = 2_000_000  # seeds larger than this (the 120-frame cine) are drawn rarely
_BIG_SEED_SHARE = 0.01


# --------------------------------------------------------------------------- seeds


def ultrasound_seeds() -> list[Path]:
    """pydicom-data's ultrasound files (Modality US), via pydicom's data manager."""
    import pydicom
    from pydicom.data.data_manager import DataTypes, external_data_sources

    source = external_data_sources().get("pydicom-data")  # the installed package; no download
    if source is None:
        return []
    out = []
    for name in sorted(set(source.get_paths("*", DataTypes.DATASET))):
        p = Path(name)
        if p.suffix.lower() != ".dcm":
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - pydicom's deliberately broken test files
            continue
        if str(ds.get("Modality", "")).strip() == "US" and p.stat().st_size > 1024:
            out.append(p)
    return out


def busi_seeds(folder: Path, count: int, rng: random.Random) -> list[Path]:
    files = sorted(folder.rglob("*.png")) if folder.is_dir() else []
    files = [f for f in files if "_mask" not in f.name]
    return rng.sample(files, min(count, len(files)))


# --------------------------------------------------------------------------- mutations


def _flip(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    head = min(len(buf), 4096)
    for _ in range(rng.randint(1, 24)):
        pos = rng.randrange(head) if rng.random() < 0.6 else rng.randrange(len(buf))
        buf[pos] = rng.choice((buf[pos] ^ (1 << rng.randrange(8)), rng.randrange(256), 0x00, 0xFF))
    return bytes(buf)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 4:
        return data[:1]
    cut = rng.randrange(1, len(data)) if rng.random() < 0.5 else rng.randrange(max(1, len(data) - 4096), len(data))
    return data[:cut]


_TSYNTAXES = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.100",
    "1.2.3.4.5",
)
_BAD_FLOATS = ("inf", "-inf", "nan", "1e308", "-1e308", "0", "-1", "1e-30", "1e30")


def _dicom_edits(ds: Any, rng: random.Random) -> list[str]:
    from pydicom.dataset import Dataset

    rows, cols = int(ds.get("Rows", 64) or 64), int(ds.get("Columns", 64) or 64)
    choices: dict[str, Callable[[], Any]] = {
        "PhotometricInterpretation": lambda: rng.choice(
            (
                "MONOCHROME1",
                "MONOCHROME2",
                "RGB",
                "YBR_FULL",
                "YBR_FULL_422",
                "PALETTE COLOR",
                "YBR_RCT",
                "YBR_ICT",
                "",
                "XYZ",
            )
        ),
        "SamplesPerPixel": lambda: rng.choice((0, 1, 2, 3, 4, 65535)),
        "BitsAllocated": lambda: rng.choice((0, 1, 8, 12, 16, 24, 32, 64, 65535)),
        "BitsStored": lambda: rng.choice((0, 1, 2, 7, 8, 12, 16, 17, 32, 64)),
        "HighBit": lambda: rng.choice((0, 7, 11, 15, 31, 63)),
        "PixelRepresentation": lambda: rng.choice((0, 1, 2)),
        "Rows": lambda: rng.choice((0, 1, 2, rows - 1, rows + 1, rows * 2, 65535)),
        "Columns": lambda: rng.choice((0, 1, 2, cols - 1, cols + 1, cols * 2, 65535)),
        "NumberOfFrames": lambda: rng.choice(("0", "-1", "1", "2", "3", "1000000", "2147483647")),
        "PlanarConfiguration": lambda: rng.choice((0, 1, 2)),
        "PixelSpacing": lambda: [rng.choice(_BAD_FLOATS), rng.choice(_BAD_FLOATS + ("0.2",))],
        "FrameTime": lambda: rng.choice(_BAD_FLOATS + ("1e-300",)),
        "FrameTimeVector": lambda: [rng.choice(_BAD_FLOATS) for _ in range(3)],
        "RecommendedDisplayFrameRate": lambda: rng.choice(("0", "-5", "99999999", "1")),
        "CineRate": lambda: rng.choice(("0", "-5", "99999999", "1")),
        "RescaleSlope": lambda: rng.choice(_BAD_FLOATS),
        "WindowWidth": lambda: rng.choice(_BAD_FLOATS),
    }
    done: list[str] = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        if kind < 0.12:
            ds.file_meta.TransferSyntaxUID = rng.choice(_TSYNTAXES)
            done.append("TransferSyntaxUID")
        elif kind < 0.30 and "SequenceOfUltrasoundRegions" in ds and len(ds.SequenceOfUltrasoundRegions):
            item: Dataset = rng.choice(list(ds.SequenceOfUltrasoundRegions))
            key = rng.choice(("PhysicalDeltaX", "PhysicalDeltaY", "RegionLocationMaxX1", "RegionLocationMinY0"))
            if key.startswith("Physical"):
                item.PhysicalUnitsXDirection = 3
                item.PhysicalUnitsYDirection = 3
                setattr(item, key, rng.choice((math.inf, -math.inf, math.nan, 1e308, 0.0, -1e300, 1e-300)))
            else:
                setattr(item, key, rng.choice((0, 65535, 4294967295)))
            done.append(key)
        elif kind < 0.36 and "RedPaletteColorLookupTableDescriptor" in ds:
            ds.RedPaletteColorLookupTableDescriptor = [
                rng.choice((0, 1, 256, 65535)),
                rng.choice((0, 255, 65535)),
                rng.choice((8, 16, 0)),
            ]
            done.append("RedPaletteColorLookupTableDescriptor")
        else:
            key = rng.choice(sorted(choices))
            setattr(ds, key, choices[key]())
            done.append(key)
    return done


def mutate_dicom(seed: Path, data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One DICOM mutant: ``(bytes, description)``."""
    kind = rng.random()
    if kind < 0.30:
        return _flip(data, rng), "byte flips"
    if kind < 0.45:
        return _truncate(data, rng), "truncation"
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        edits = _dicom_edits(ds, rng)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=False)
        blob = out.getvalue()
    except Exception:  # noqa: BLE001 - an edit pydicom refuses to write: flip bytes instead
        return _flip(data, rng), "byte flips"
    if rng.random() < 0.15:
        blob = _flip(blob, rng)
        edits.append("+flips")
    return blob, "header: " + ",".join(edits)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def mutate_png(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One PNG mutant: byte flips, truncation, or an IHDR edit with a valid CRC."""
    kind = rng.random()
    if kind < 0.35 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return _flip(data, rng), "byte flips"
    if kind < 0.6:
        return _truncate(data, rng), "truncation"
    width, height, depth, colour, comp, filt, inter = struct.unpack(">IIBBBBB", data[16:29])
    field_ = rng.choice(("width", "height", "depth", "colour", "interlace", "size"))
    if field_ == "width":
        width = rng.choice((0, 1, width + 1, 65535, 2**31 - 1))
    elif field_ == "height":
        height = rng.choice((0, 1, height + 1, 65535, 2**31 - 1))
    elif field_ == "depth":
        depth = rng.choice((1, 2, 4, 8, 16, 3, 0))
    elif field_ == "colour":
        colour = rng.choice((0, 2, 3, 4, 6, 1, 7))
    elif field_ == "interlace":
        inter = rng.choice((0, 1, 2))
    else:
        width, height = width * 4, height * 4
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, comp, filt, inter)
    return data[:8] + _png_chunk(b"IHDR", ihdr) + data[33:], f"IHDR {field_}"


# --------------------------------------------------------------------------- callers


def _classify_error(reason: str) -> str:
    r = reason.lower()
    for words, kind in (
        (("decoder crashed",), "decoder crashed"),
        (("decoder did not finish", "did not start"), "decoder timed out"),
        (("inconsistent header", "invalid header"), "header inconsistency refused"),
        (("too large",), "too large"),
        (("truncated",), "truncated"),
        (("not a dicom", "no dicom header", "not a valid dicom", "not a recognised"), "not an image"),
        (("corrupt",), "corrupt"),
        (("unsupported",), "unsupported"),
        (("cannot decode", "cannot read"), "cannot decode"),
        (("no pixel data",), "no pixel data"),
    ):
        if any(w in r for w in words):
            return kind
    return "other reason"


def _check_result(img: Any) -> str | None:
    """None when a decoded image is well-formed, else what is wrong."""
    import numpy as np

    from busviewer.core.geometry import valid_frame_time, valid_spacing

    f = img.frames
    if not (isinstance(f, np.ndarray) and f.dtype == np.uint8 and f.ndim == 4 and f.shape[-1] == 3 and f.shape[0] >= 1):
        return "bad result"
    if img.frame_time_ms is not None and not valid_frame_time(img.frame_time_ms):
        return "non-finite geometry accepted"
    if img.pixel_spacing_mm is not None and not all(valid_spacing(v) for v in img.pixel_spacing_mm):
        return "non-finite geometry accepted"
    for r in img.regions:
        for v in (r.physical_delta_x, r.physical_delta_y):
            if v is not None and not valid_spacing(v):
                return "non-finite geometry accepted"
    return None


def _caller_main(conn: Connection, header_checks: bool, isolation: str) -> None:
    """A caller process: reads each path it is sent with the real reader, answers the outcome."""
    os.environ["BUSVIEWER_DECODE_ISOLATION"] = isolation
    import logging
    import warnings

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    from busviewer.core import decode_pool
    from busviewer.core.imageio import ImageReadError, read_image

    decode_pool.configure_default_pool(workers=1, header_checks=header_checks)
    conn.send(("ready", "", ""))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        path = msg
        try:
            img = read_image(path)
            problem = _check_result(img)
            conn.send(("failure", problem, "") if problem else ("ok", "ok", ""))
        except ImageReadError as exc:
            if not str(exc).startswith(str(path)):
                conn.send(("failure", "error not naming the file", str(exc)[:300]))
            else:
                conn.send(("error", _classify_error(exc.reason), exc.reason[:300]))
        except Exception as exc:  # noqa: BLE001 - counted as a failure
            conn.send(("failure", f"other exception ({type(exc).__name__})", str(exc)[:300]))


@dataclass
class _Caller:
    process: Any
    conn: Connection
    job: tuple[int, Path, str] | None = None
    started: float = 0.0


@dataclass
class FuzzResult:
    """Counts per outcome; ``failures`` counts the bad ones (see the module docstring)."""

    mutants: int = 0
    outcomes: Counter = field(default_factory=Counter)
    by_mutation: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # one example reason per error kind
    elapsed_s: float = 0.0

    @property
    def failures(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k.startswith(FAILURES))

    def report(self) -> str:
        lines = [f"{self.mutants} mutants in {self.elapsed_s:.0f} s ({self.mutants / max(self.elapsed_s, 1e-9):.1f}/s)"]
        for key, n in sorted(self.outcomes.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {n:>7}  {key}")
        for k in FAILURES:
            if not any(key.startswith(k) for key in self.outcomes):
                lines.append(f"  {0:>7}  {k}")
        if self.examples:
            lines.append("failure examples: " + "; ".join(f"{k}: {v}" for k, v in self.examples.items()))
        lines += [f"  e.g. {k}: {v}" for k, v in sorted(self.reasons.items())]
        return "\n".join(lines)


def _start_caller(ctx: Any, header_checks: bool, isolation: str) -> _Caller:
    parent, child = ctx.Pipe()
    # Not daemonic: a daemonic process may not start the decoder processes it needs.
    proc = ctx.Process(target=_caller_main, args=(child, header_checks, isolation), daemon=False)
    proc.start()
    child.close()
    if not parent.poll(600) or parent.recv()[0] != "ready":
        proc.kill()
        raise RuntimeError("fuzz caller process did not start")
    return _Caller(proc, parent)


def _stop(caller: _Caller) -> None:
    if caller.process.is_alive():
        caller.process.kill()
    caller.process.join(timeout=10)
    caller.conn.close()


def run_fuzz(
    n: int,
    seed: int = 0,
    workers: int = 1,
    busi: Path | None = None,
    busi_count: int = 20,
    hang_s: float = 600.0,
    header_checks: bool = True,
    isolation: str = "native",
    include_large: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> FuzzResult:
    """Make ``n`` mutants and read them in ``workers`` watched caller processes."""
    rng = random.Random(seed)
    dicoms = ultrasound_seeds()
    if not include_large:
        dicoms = [p for p in dicoms if p.stat().st_size <= _BIG_SEED_BYTES]
    pngs = busi_seeds(busi, busi_count, rng) if busi is not None else []
    small = [p for p in dicoms if p.stat().st_size <= _BIG_SEED_BYTES]
    large = [p for p in dicoms if p.stat().st_size > _BIG_SEED_BYTES]
    if not small and not pngs:
        raise RuntimeError("no seed files: install pydicom-data or give --busi")
    cache: dict[Path, bytes] = {}
    result = FuzzResult()
    ctx = mp.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="bv-fuzz-"))
    callers = [_start_caller(ctx, header_checks, isolation) for _ in range(max(1, workers))]
    started = time.perf_counter()
    next_index = 0

    def make(i: int) -> tuple[Path, str]:
        r = random.Random(f"{seed}:{i}")
        use_png = pngs and (not small or r.random() < 0.3)
        if use_png:
            src = r.choice(pngs)
        elif large and r.random() < _BIG_SEED_SHARE:
            src = r.choice(large)
        else:
            src = r.choice(small)
        data = cache.setdefault(src, src.read_bytes())
        blob, what = mutate_png(data, r) if use_png else mutate_dicom(src, data, r)
        out = tmp / f"m{i:06d}{'.png' if use_png else '.dcm'}"
        out.write_bytes(blob)
        return out, f"{src.name}: {what}"

    def record(key: str, job: tuple[int, Path, str]) -> None:
        result.outcomes[key] += 1
        result.by_mutation[job[2].split(":")[1].split(",")[0].strip()] += 1
        if key.startswith(FAILURES) and key not in result.examples:
            keep = tmp.parent / f"bv-fuzz-failure-{seed}-{job[0]}{job[1].suffix}"
            shutil.copyfile(job[1], keep)
            result.examples[key] = f"{job[2]} (kept as {keep})"

    try:
        while result.mutants < n:
            for c in callers:
                if c.job is None and next_index < n:
                    path, what = make(next_index)
                    c.job, c.started = (next_index, path, what), time.monotonic()
                    next_index += 1
                    c.conn.send(str(path))
            busy = [c for c in callers if c.job is not None]
            ready = wait([c.conn for c in busy] + [c.process.sentinel for c in busy], timeout=1.0)
            for i, c in enumerate(callers):
                if c.job is None:
                    continue
                job = c.job
                outcome: str | None = None
                if c.conn in ready or c.process.sentinel in ready:
                    try:
                        kind, detail, reason = c.conn.recv()
                        outcome = detail if kind == "failure" else ("ok" if kind == "ok" else f"error: {detail}")
                        if reason:
                            result.reasons.setdefault(outcome, reason[:160])
                    except (EOFError, OSError):
                        outcome = "caller died"
                elif time.monotonic() - c.started > hang_s:
                    outcome = "hang"
                if outcome is None:
                    continue
                record(outcome, job)
                job[1].unlink(missing_ok=True)
                result.mutants += 1
                c.job = None
                if outcome in ("caller died", "hang"):
                    _stop(c)
                    callers[i] = _start_caller(ctx, header_checks, isolation)
                if progress is not None:
                    progress(result.mutants, n)
    finally:
        for c in callers:
            with contextlib.suppress(OSError):
                c.conn.send(None)
            c.process.join(timeout=10)
            _stop(c)
        shutil.rmtree(tmp, ignore_errors=True)
        result.elapsed_s = time.perf_counter() - started
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--mutants", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="caller processes (each with its own decoder)")
    parser.add_argument(
        "--busi", type=Path, default=Path(os.environ.get("BUSVIEWER_BUSI", REPO.parent / "shared/data/busi")) / "images"
    )
    parser.add_argument("--busi-count", type=int, default=20, help="BUSI images used as seeds")
    parser.add_argument("--hang-s", type=float, default=600.0, help="a caller silent this long is a hang")
    parser.add_argument(
        "--no-header-checks",
        action="store_true",
        help="switch off the header checks in the decoders (measures the process isolation alone)",
    )
    parser.add_argument(
        "--isolation",
        choices=("native", "all", "off"),
        default="native",
        help="which files the callers decode in decoder processes",
    )
    parser.add_argument("--no-large", action="store_true", help="leave out the 120-frame cine seed")
    args = parser.parse_args()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 30 or done == total:
            last[0] = time.monotonic()
            print(f"  {done}/{total}", file=sys.stderr, flush=True)

    result = run_fuzz(
        args.mutants,
        args.seed,
        args.workers,
        args.busi,
        args.busi_count,
        args.hang_s,
        not args.no_header_checks,
        args.isolation,
        not args.no_large,
        progress,
    )
    print(result.report())
    print("mutations: " + ", ".join(f"{k} {v}" for k, v in result.by_mutation.most_common(12)))
    return 1 if result.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
