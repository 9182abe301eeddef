"""Application-level figures (issue 11): launch time and a real 10-image patient.

    .venv/bin/python benchmarks/bench_app.py launch [--runs 5] [--baseline CHECKOUT]
    .venv/bin/python benchmarks/bench_app.py patient [--repeats 5] [--threads N]

``launch``: starts ``busviewer gui`` offscreen (``QT_QPA_PLATFORM=offscreen``) ``--runs``
times in a fresh data directory (first run: empty store, later runs: the store exists) and
times process start -> the "window shown" log line (logged when the window's first paint is
done) and -> "viewer ready" (the image viewer, built after that paint); median (min-max).
The workstation process is stopped after that.

``patient``: in a fresh process, imports 10 BUSI images (BUSVIEWER_BUSI or
../shared/data/busi) as one patient into a new store, loads the shipped default models
(models/) with :class:`~busviewer.ai.analysis.Analyzer` as the GUI does, and times
``analyse_patient`` (decode + both models' predictions and Grad-CAM maps, stored) and then
showing every stored map of both models (``Analyzer.gradcam``); median (min-max) of
``--repeats``. Prints the peak RSS of the process (``ru_maxrss``) at the end; ``--gui``
first creates the (offscreen) QApplication and imports the main window's modules, so the
figure includes what the workstation's own libraries take.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _stat(v: list[float], digits: int = 2) -> str:
    return f"{statistics.median(v):.{digits}f} ({min(v):.{digits}f}-{max(v):.{digits}f})"


def launch_once(home: Path, source: Path | None = None, timeout: float = 60.0) -> tuple[float, float]:
    """Seconds from starting ``busviewer gui`` to its "window shown" and "viewer ready" log lines.

    ``source``: run the busviewer package of another checkout (``PYTHONPATH``), e.g. an earlier
    commit as the baseline; code from before the deferred viewer logs no "viewer ready" (its
    viewer is built before the window shows), so there both figures are "window shown"."""
    log = home / "logs" / "busviewer.log"
    offset = log.stat().st_size if log.is_file() else 0
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", BUSVIEWER_HOME=str(home))
    env.pop("BUSVIEWER_STORE", None)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    cmd = [sys.executable, "-c", "import sys; from busviewer.cli import main; sys.exit(main(['gui']))"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=source or REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    shown = ready = None
    try:
        while time.perf_counter() - t0 < timeout and proc.poll() is None:
            text = log.read_text(encoding="utf-8", errors="replace")[offset:] if log.is_file() else ""
            if shown is None and "window shown" in text:
                shown = time.perf_counter() - t0
            if "viewer ready" in text:
                ready = time.perf_counter() - t0
                break
            if shown is not None and source is not None and time.perf_counter() - t0 > shown + 3.0:
                ready = shown  # older code: the viewer was built before the window showed
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    if shown is None or ready is None:
        raise SystemExit(f"the window was not shown within {timeout:.0f} s (exit status {proc.returncode})")
    return shown, ready


def bench_launch(runs: int, baseline: Path | None = None) -> None:
    """``runs`` launches; with ``baseline`` (a checkout of earlier code) interleaved with as many of it."""
    times: dict[str, list[tuple[float, float]]] = {"this code": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as tmp_base:
        for _ in range(runs):
            times["this code"].append(launch_once(Path(tmp)))
            if baseline is not None:
                times["baseline"].append(launch_once(Path(tmp_base), source=baseline))
    for name, got in times.items():
        if not got:
            continue
        shown, ready = [t[0] for t in got], [t[1] for t in got]
        print(
            f"{name}: launch to window shown (offscreen, {runs} launches; the first with an empty store): "
            f"{_stat(shown)} s; each: {', '.join(f'{t:.2f}' for t in shown)}; "
            f"to image viewer built: {_stat(ready)} s"
        )
    if times["baseline"]:
        ratio = statistics.median(t[0] for t in times["this code"]) / statistics.median(t[0] for t in times["baseline"])
        print(f"window shown, this code / baseline (medians): {ratio:.2f}")


def _patient_files(busi: Path, n: int) -> list[Path]:
    with (busi / "manifest.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh)]
    return [busi / r["image"] for r in rows[:n]]


def bench_patient(repeats: int, n: int, busi: Path, gui: bool = False) -> None:
    import torch

    if gui:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from busviewer.gui.app import create_app
        from busviewer.gui.main_window import MainWindow  # noqa: F401 - its modules' memory counts

        _app = create_app()  # noqa: F841

    from busviewer.ai.analysis import Analyzer
    from busviewer.ai.registry import ModelRegistry
    from busviewer.core.importer import import_paths
    from busviewer.core.paths import SHIPPED_MODELS_DIR
    from busviewer.core.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["BUSVIEWER_HOME"] = str(root / "home")
        rows = ["image,label,patient_id"] + [f"{f},,PATIENT-10" for f in _patient_files(busi, n)]
        (root / "manifest.csv").write_text("\n".join(rows) + "\n")
        store = Store(root / "store.sqlite")
        report = import_paths(store, [root / "manifest.csv"], allow_outside=True)
        if report.added != n:
            raise SystemExit(f"import problems: {report.problems[:3]}")
        registry = ModelRegistry(user_dir=root / "models", shipped_dir=SHIPPED_MODELS_DIR)
        analyzer = Analyzer(store, registry, device="cpu")
        t0 = time.perf_counter()
        cards = analyzer.load_models()
        load = time.perf_counter() - t0
        print(
            f"models: {', '.join(f'{c.ref} ({c.input_size} px)' for c in cards.values())}, loaded in {load:.2f} s; "
            f"torch {torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}"
        )
        analyse, show = [], []
        ids = [r.id for r in store.images("PATIENT-10")]
        analyzer.analyse_patient("PATIENT-10")  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            analysis = analyzer.analyse_patient("PATIENT-10")
            analyse.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for arch in cards:
                for i in ids:
                    analyzer.gradcam(i, arch)
            show.append(time.perf_counter() - t0)
        assert not analysis.problems, analysis.problems
        store.close()
    print(f"{n}-image patient, analyse_patient (decode, both models, Grad-CAM maps, stored): {_stat(analyse)} s")
    print(
        f"then showing all {n * len(cards)} stored Grad-CAM maps (Analyzer.gradcam, no model run): "
        f"{_stat([1000 * s for s in show], 0)} ms in all"
    )
    print(f"peak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    la = sub.add_parser("launch")
    la.add_argument("--runs", type=int, default=5)
    la.add_argument("--baseline", type=Path, default=None, help="a checkout of earlier code, launched interleaved")
    pa = sub.add_parser("patient")
    pa.add_argument("--repeats", type=int, default=5)
    pa.add_argument("--images", type=int, default=10)
    pa.add_argument("--threads", type=int, default=None)
    pa.add_argument("--gui", action="store_true", help="include the GUI's libraries (offscreen QApplication)")
    pa.add_argument(
        "--busi", type=Path, default=Path(os.environ.get("BUSVIEWER_BUSI", REPO.parent / "shared/data/busi"))
    )
    args = p.parse_args()
    if args.what == "launch":
        bench_launch(args.runs, args.baseline)
    else:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        bench_patient(args.repeats, args.images, args.busi, args.gui)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
