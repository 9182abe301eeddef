"""Screenshot of the workstation with Grad-CAM and the suggested ROI on BUSI images (not a test).

    BUSVIEWER_HOME=/tmp/shot_home QT_QPA_PLATFORM=offscreen .venv/bin/python \\
        tests/gui/make_suggestion_screenshot.py OUT_DIR IMAGE.png [IMAGE.png ...] \\
        [--phase RUN_DIR/fold-1] [--masks ../shared/data/busi/masks]

Imports the images as one patient into a fresh store under ``$BUSVIEWER_HOME`` and shows
each with the active model's Grad-CAM and the suggested ROI (dashed). ``--phase`` first
registers and activates the weights a training run kept for that phase (``model.safetensors``
next to its ``result.json``; the card gets the phase's measured box parameters). With
``--masks`` the lesion mask's outline is drawn in white for review only (not a product
feature). Writes ``<OUT_DIR>/suggest_<n>.png`` (window) and ``viewer_<n>.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication


def pump(condition, timeout: float = 300.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        QApplication.processEvents()
        time.sleep(0.01)


def register_phase(phase_dir: Path) -> str:
    """Register and activate a run phase's kept weights; returns ``name:version``."""
    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model
    from busviewer.ai.registry import ModelRegistry
    from busviewer.training.checkpoint import load_weights
    from busviewer.training.config import TrainConfig

    cfg = TrainConfig.load(phase_dir.parent / "config.json")
    model = build_model(cfg.architecture, cfg.input_mode, 2, pretrained=False, variant=cfg.variant)
    model.load_state_dict(load_weights(phase_dir / "model.safetensors"))
    metrics = {}
    result = phase_dir / "result.json"
    loc = json.loads(result.read_text()).get("localisation") if result.is_file() else None
    if loc:
        metrics["localisation"] = {"box_params": {k: loc["box_params"][k] for k in ("fraction", "margin")}}
    card = ModelCard(
        name=f"{phase_dir.parent.name}-{phase_dir.name}".replace("_", "-")[:100],
        version=0,
        architecture=cfg.architecture,
        input_mode=cfg.input_mode,
        input_size=cfg.input_size,
        normalisation={"mean": list(cfg.mean), "std": list(cfg.std)},
        pretrained_init="random",
        variant=cfg.variant,
        metrics=metrics,
        description=f"kept weights of {phase_dir}",
    )
    reg = ModelRegistry()
    entry = reg.save(model, card)
    reg.activate(entry.name, entry.version)
    return entry.ref


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out_dir")
    p.add_argument("images", nargs="+")
    p.add_argument("--phase", type=Path)
    p.add_argument("--masks", type=Path)
    args = p.parse_args(argv)
    import os

    home = Path(os.environ.setdefault("BUSVIEWER_HOME", "/tmp/shot_home"))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(home / "settings"))
    if args.phase:
        print("registered", register_phase(args.phase))

    import numpy as np
    import pyqtgraph as pg

    from busviewer.core.importer import import_paths
    from busviewer.core.store import Store
    from busviewer.gui.app import create_app
    from busviewer.gui.main_window import MainWindow
    from busviewer.training.data import Sample
    from busviewer.training.masks import find_mask, read_mask

    study = home / "study" / "SHOT"
    shutil.rmtree(study, ignore_errors=True)
    study.mkdir(parents=True)
    sources = {}
    for i, img in enumerate(args.images):
        dst = study / f"{i:02d} {Path(img).name}"
        shutil.copy2(img, dst)
        sources[dst.name] = Path(img)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{home / 'store.sqlite'}{suffix}").unlink(missing_ok=True)
    store = Store(home / "store.sqlite")
    import_paths(store, [home / "study"])
    app = create_app(["busviewer"])
    window = MainWindow(store)
    window.resize(1600, 960)
    window.ai_panel.auto.setChecked(False)
    window.rois.suggestion.enabled.setChecked(True)
    window.show()
    window.start()
    pump(lambda: window.models_state in ("ready", "none", "error"), 600, "the models")
    print("models:", window.model_status.text())
    window.open_patient("SHOT")
    window.ai_panel.cam.enabled.setChecked(True)
    bar = window.rois.suggestion
    for n, rec in enumerate(window.records, start=1):
        window.show_image(rec.id)
        pump(lambda r=rec: window._displayed_id == r.id, 60, "the image")
        pump(
            lambda r=rec: (r.id, 0) in bar.done and any(k[0] == r.id for k in window.cams),
            300,
            "Grad-CAM and the suggestion",
        )
        contour = None
        src = sources[rec.source_path.name]
        if args.masks:
            mpath = find_mask(args.masks, Sample(src, 0, "x", original_label=src.parent.name))
            if mpath is not None:
                m = read_mask(mpath, (rec.rows, rec.columns)).astype(np.float32)
                contour = pg.IsocurveItem(data=m, level=0.5, pen=pg.mkPen("#ffffff", width=2))
                contour.setZValue(13)
                window.viewer.view.addItem(contour)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            QApplication.processEvents()
            time.sleep(0.01)
        s = bar.suggestion
        print(f"{src.name}: suggestion {s.box if s else None} {bar.label.text()}")
        window.grab().save(str(out / f"suggest_{n}.png"))
        window.viewer.grab().save(str(out / f"viewer_{n}.png"))
        if contour is not None:
            window.viewer.view.removeItem(contour)
    window.shutdown()
    window.close()
    store.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
