"""Helpers of packaging/smoke.sh, run with the build's Python (never inside the bundle).

    smoke_tools.py dicom                      paths of the pydicom-data test files to import
    smoke_tools.py pngs DIR                   a tiny labelled PNG set: DIR/manifest.csv, DIR/gui/SMOKE-GUI/
    smoke_tools.py gui BIN HOME PATH... [--seconds S] [--cold] [--models]
                                             start ``BIN PATH...`` (the desktop entry's command)
                                             offscreen, time it to "window shown", wait until the
                                             import is in the store, then check the log for errors
    smoke_tools.py cams DIR                   count the Grad-CAM overlays predict wrote

The DICOM files come from pydicom's data manager (pydicom-data and pydicom's own test
files); they are never copied into the repository.
"""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

#: Ultrasound test files by transfer syntax; pydicom-data has no ultrasound JPEG-LS file,
#: so an 8-bit RGB secondary capture (the layout of an ultrasound frame) stands in.
DICOM_FILES = {
    "JPEG 2000 (lossy, YBR_ICT)": "US1_J2KI.dcm",
    "JPEG 2000 (lossless, YBR_RCT)": "US1_J2KR.dcm",
    "RLE lossless (PALETTE COLOR)": "OBXXXX1A_rle.dcm",
    "JPEG Lossless SV1 (MONOCHROME2)": "JPGLosslessP14SV1_1s_1f_8b.dcm",
    "JPEG-LS lossy (RGB secondary capture)": "SC_rgb_jls_lossy_sample.dcm",
}
#: Log lines that fail the GUI check.
BAD = (
    "Traceback",
    " ERROR ",
    " CRITICAL ",
    "qt.qpa.plugin",
    "Could not load the Qt platform plugin",
    "cannot open shared object",
    "does not exist",
    " WARNING busviewer.gui",
)


def dicom_paths() -> list[str]:
    import warnings

    from pydicom.data import get_testdata_file

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for what, name in DICOM_FILES.items():
            path = get_testdata_file(name)
            if path is None:
                raise SystemExit(f"pydicom-data file {name} ({what}) not found: pip install pydicom-data")
            out.append(str(path))
    return out


def _png(path: Path, seed: int, malignant: bool) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w]
    sx, sy = (0.08, 0.25) if malignant else (0.2, 0.12)  # tall vs wide lesion
    blob = 170 * np.exp(-(((xx - w * 0.5) / (w * sx)) ** 2 + ((yy - h * 0.5) / (h * sy)) ** 2))
    img = np.clip(70 + blob + rng.normal(0, 15, (h, w)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def make_pngs(folder: Path, patients: int = 12, per_patient: int = 2) -> None:
    rows = []
    for p in range(patients):
        label = "malignant" if p % 2 else "benign"
        for i in range(per_patient):
            rel = f"img/P{p:02d}_{i}.png"
            _png(folder / rel, seed=100 * p + i, malignant=label == "malignant")
            rows.append({"image": rel, "label": label, "patient_id": f"SMOKE-{p:02d}"})
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "label", "patient_id"])
        writer.writeheader()
        writer.writerows(rows)
    for i in range(2):
        _png(folder / "gui" / "SMOKE-GUI" / f"g{i}.png", seed=900 + i, malignant=bool(i))


def evict(folder: Path) -> int:
    """Drop a folder's files from the page cache (a cold start without touching the rest)."""
    n = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                n += 1
            finally:
                os.close(fd)
    return n


def _patient_in_store(store: Path, key: str) -> bool:
    if not store.is_file():
        return False
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM patients WHERE patient_key = ?", (key,)).fetchone()[0] > 0
    except sqlite3.Error:
        return False


def gui(binary: Path, home: Path, paths: list[str], seconds: float, cold: bool, patient: str, models: bool) -> int:
    """Start the bundle's GUI on ``paths``; 0 when the window came up, imported (and, with
    ``models``, loaded the active models) and logged no error."""
    if cold:
        print(f"  evicted {evict(binary.parent)} bundle files from the page cache (cold start)")
    log = home / "logs" / "busviewer.log"
    offset = log.stat().st_size if log.is_file() else 0
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", BUSVIEWER_HOME=str(home))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(binary), *paths],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    shown = imported = loaded = None
    deadline = t0 + 180
    while time.perf_counter() < deadline and proc.poll() is None:
        text = log.read_text(encoding="utf-8", errors="replace")[offset:] if log.is_file() else ""
        if shown is None and "window shown" in text:
            shown = time.perf_counter() - t0
        if imported is None and _patient_in_store(home / "store.sqlite", patient):
            imported = time.perf_counter() - t0
        if loaded is None and ("models loaded: " in text if models else True):
            loaded = time.perf_counter() - t0
        done = [shown, imported, loaded]
        if None not in done and time.perf_counter() - t0 > max(done) + seconds:  # type: ignore[type-var]
            break
        time.sleep(0.05)
    alive = proc.poll() is None
    if alive:
        os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    text = log.read_text(encoding="utf-8", errors="replace")[offset:] if log.is_file() else ""
    problems = [ln for ln in (text + "\n" + out).splitlines() if any(b in ln for b in BAD)]
    print(
        f"  window shown after {shown if shown is None else round(shown, 2)} s; "
        f"{patient} in the store after {imported if imported is None else round(imported, 2)} s; "
        + (f"models loaded after {loaded if loaded is None else round(loaded, 2)} s; " if models else "")
        + f"{'still running after ' + str(seconds) + ' s more, stopped' if alive else 'EXITED by itself'}"
    )
    for line in text.splitlines()[-8:]:
        print(f"  log: {line}")
    for line in problems:
        print(f"  PROBLEM: {line}")
    ok = None not in (shown, imported, loaded) and alive and not problems
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    cmd, rest = argv[0], argv[1:]
    if cmd == "dicom":
        print("\n".join(dicom_paths()))
        return 0
    if cmd == "pngs":
        make_pngs(Path(rest[0]))
        return 0
    if cmd == "cams":
        n = len(list(Path(rest[0]).rglob("*.png")))
        print(n)
        return 0 if n else 1
    if cmd == "gui":
        seconds, cold, patient, models = 5.0, False, "SMOKE-GUI", False
        args = []
        it = iter(rest)
        for a in it:
            if a == "--seconds":
                seconds = float(next(it))
            elif a == "--cold":
                cold = True
            elif a == "--models":
                models = True
            elif a == "--patient":
                patient = next(it)
            else:
                args.append(a)
        return gui(Path(args[0]), Path(args[1]), args[2:], seconds, cold, patient, models)
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
