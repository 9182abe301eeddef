"""Cine playback while a patient is analysed (issue 11): does the loop keep its frame time?

    .venv/bin/python benchmarks/bench_cine.py [--rounds 3] [--seconds 4]

Builds one patient from pydicom-data's 120-frame YBR JPEG cine (``color3d_jpeg_baseline.dcm``,
frame time 33.3 ms, i.e. 30 fps) and 10 BUSI images, opens it in the real workstation
(``MainWindow`` with the shipped default models, offscreen Qt) and plays the cine. Rounds
alternate two phases of ``--seconds`` each: *idle* (nothing else runs) and *analysing*
(``MainWindow.analyse`` runs again each time it finishes: both models and the Grad-CAM maps
of all 11 images, in the "ai" worker pool, as a reader's Analyse does). Each phase counts the
frames the viewer shows (``ImageViewer.frameChanged``) and the gaps between them; the GUI
thread's longest stall is the longest gap. Prints, per phase kind, the achieved frames per
second as median (min-max) over the rounds, and the median, 95th percentile and largest gap.
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


def _stat(v: list[float], digits: int = 1) -> str:
    return f"{statistics.median(v):.{digits}f} ({min(v):.{digits}f}-{max(v):.{digits}f})"


def _manifest(root: Path, busi: Path, n: int) -> Path:
    import data_store

    cine = Path(data_store.__file__).parent / "data" / "color3d_jpeg_baseline.dcm"
    with (busi / "manifest.csv").open() as fh:
        images = [busi / r["image"] for r in csv.DictReader(fh)][:n]
    rows = ["image,label,patient_id", f"{cine},,CINE-PATIENT"] + [f"{f},,CINE-PATIENT" for f in images]
    path = root / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--images", type=int, default=10, help="BUSI images beside the cine")
    p.add_argument(
        "--busi", type=Path, default=Path(os.environ.get("BUSVIEWER_BUSI", REPO.parent / "shared/data/busi"))
    )
    args = p.parse_args()

    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)
    os.environ["BUSVIEWER_HOME"] = str(root / "home")
    os.environ.pop("BUSVIEWER_SHIPPED_MODELS", None)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from busviewer.core.importer import import_paths
    from busviewer.core.store import Store
    from busviewer.gui.app import create_app
    from busviewer.gui.main_window import MainWindow

    app = create_app()
    store = Store(root / "store.sqlite")
    report = import_paths(store, [_manifest(root, args.busi, args.images)], allow_outside=True)
    if report.added != args.images + 1:
        raise SystemExit(f"import problems: {report.problems[:3]}")
    window = MainWindow(store)
    window.show()

    def pump_until(done, timeout: float) -> None:  # type: ignore[no-untyped-def]
        end = time.perf_counter() + timeout
        while not done():
            if time.perf_counter() > end:
                raise SystemExit("timed out waiting for the workstation")
            app.processEvents()
            time.sleep(0.002)

    window.start()
    pump_until(lambda: window.models_state in ("ready", "none", "error"), 120)
    if window.models_state != "ready":
        raise SystemExit(f"models not ready ({window.models_state}): are the shipped models in models/?")
    window.open_patient("CINE-PATIENT")
    cine = next(r for r in window.records if r.frame_count > 1)
    window.show_image(cine.id)
    pump_until(lambda: window.viewer.frame_count() == cine.frame_count, 60)
    interval = window.viewer.frame_interval_ms()

    stamps: list[float] = []
    window.viewer.frameChanged.connect(lambda _i: stamps.append(time.perf_counter()))
    analysing = {"on": False, "runs": 0}

    def again(_analysis: object) -> None:
        analysing["runs"] += 1
        if analysing["on"]:
            window.analyse()

    window.analysisFinished.connect(again)
    window.viewer.play()
    results: dict[str, list[tuple[float, list[float]]]] = {"idle": [], "analysing": []}
    for _ in range(args.rounds):
        for phase in ("idle", "analysing"):
            analysing["on"] = phase == "analysing"
            if analysing["on"]:
                window.analyse()
            else:  # let a running analysis finish before the idle phase counts
                pump_until(lambda: window._analysis_task is None, 60)
            stamps.clear()
            t0 = time.perf_counter()
            pump_until(lambda t0=t0: time.perf_counter() - t0 >= args.seconds, args.seconds + 30)
            gaps = [1000 * (b - a) for a, b in zip(stamps, stamps[1:])]
            results[phase].append((len(stamps) / (time.perf_counter() - t0), gaps))
    analysing["on"] = False
    pump_until(lambda: window._analysis_task is None, 60)
    window.viewer.stop()

    print(
        f"cine: {cine.frame_count} frames, frame time {interval} ms ({1000 / interval:.1f} fps target); "
        f"{args.rounds} rounds of {args.seconds:.0f} s per phase; {analysing['runs']} patient analyses "
        f"({args.images + 1} images, both shipped models + Grad-CAM) ran during the analysing phases; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for phase, runs in results.items():
        fps = [f for f, _ in runs]
        gaps = sorted(g for _, gs in runs for g in gs)
        p95 = gaps[int(0.95 * (len(gaps) - 1))] if gaps else float("nan")
        print(
            f"  {phase:9s}: {_stat(fps)} fps; frame gap median {statistics.median(gaps):.1f} ms, "
            f"p95 {p95:.1f} ms, max {max(gaps):.1f} ms"
        )
    window.shutdown()
    window.close()
    store.close()
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
