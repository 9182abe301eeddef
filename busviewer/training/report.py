"""Run reports: ``metrics.json``, the PNG plots next to it, and a plain-text summary."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from busviewer.training.metrics import SCALAR_KEYS
from busviewer.training.plots import plot_losses, plot_reliability, plot_roc


def json_safe(obj: Any) -> Any:
    """Non-finite floats -> None, tuples -> lists, Paths -> str, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(json_safe(data), indent=2, allow_nan=False), encoding="utf-8")
    tmp.replace(path)
    return path


def _curve(report: dict[str, Any] | None, level: str) -> dict[str, Any] | None:
    if not report or level not in report or not report[level].get("roc"):
        return None
    return {**report[level]["roc"], "auc": report[level].get("auc")}


def write_plots(
    run_dir: Path,
    final_report: dict[str, Any] | None,
    final_history: Sequence[dict[str, Any]],
    fold_reports: Sequence[dict[str, Any]] = (),
    title: str = "",
    calibration: dict[str, Any] | None = None,
) -> list[Path]:
    """``roc.png`` (test patients: image-wise and patient-wise), ``reliability.png`` (test
    images before/after temperature scaling, from ``calibration`` of
    :mod:`busviewer.training.calib_eval`), ``loss.png`` (final model's training/validation
    loss per stage) and ``cv_roc.png`` (image-wise ROC per fold)."""
    written: list[Path] = []
    p = plot_roc(
        run_dir / "roc.png",
        {"image-wise": _curve(final_report, "image"), "patient-wise": _curve(final_report, "patient")},
        title=f"{title} test patients".strip(),
    )
    if p:
        written.append(p)
    calibration = calibration or {}
    test = calibration.get("test") or {}
    if test.get("reliability"):
        rel = test["reliability"]
        p = plot_reliability(
            run_dir / "reliability.png",
            {
                f"before (ECE {_f(test.get('ece_before'))})": rel.get("before"),
                f"after, T = {_f(calibration.get('temperature'))} (ECE {_f(test.get('ece_after'))})": rel.get("after"),
            },
            title=f"{title} test images: reliability".strip(),
        )
        if p:
            written.append(p)
    p = plot_losses(run_dir / "loss.png", final_history, title=title or "loss")
    if p:
        written.append(p)
    if fold_reports:
        p = plot_roc(
            run_dir / "cv_roc.png",
            {f"fold {i + 1}": _curve(r, "image") for i, r in enumerate(fold_reports)},
            title=f"{title} cross-validation (image-wise)".strip(),
        )
        if p:
            written.append(p)
    return written


def _f(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) and v is not None and math.isfinite(v) else "n/a"


def format_report(report: dict[str, Any], title: str = "") -> str:
    """Image-wise and patient-wise metrics as an aligned text table."""
    lines = [title] if title else []
    lines.append(f"{'':<10}" + "".join(f"{k:>12}" for k in SCALAR_KEYS))
    for level in ("image", "patient"):
        m = report.get(level, {})
        lines.append(f"{level:<10}" + "".join(f"{_f(m.get(k)):>12}" for k in SCALAR_KEYS))
    img = report.get("image", {})
    cm = img.get("confusion_matrix")
    extra = f"images {report.get('n_images', '?')}, patients {report.get('n_patients', '?')}"
    if cm:
        extra += f"; image confusion [[TN FP] [FN TP]] = {cm}"
    pcm = report.get("patient", {}).get("confusion_matrix")
    if pcm:
        extra += f"; patient confusion = {pcm}"
    lines.append(extra)
    lines.append(f"global patient recognition rate (eq. 2): {_f(report.get('recognition_rate'))}")
    return "\n".join(lines)


def format_mean_sd(agg: dict[str, Any], title: str = "") -> str:
    def ms(d: dict[str, Any]) -> str:
        if d.get("mean") is None:
            return "n/a"
        return f"{d['mean']:.3f}" + (f"±{d['sd']:.3f}" if d.get("sd") is not None else "")

    lines = [title] if title else []
    lines.append(f"{'':<10}" + "".join(f"{k:>14}" for k in SCALAR_KEYS))
    for level in ("image", "patient"):
        lines.append(f"{level:<10}" + "".join(f"{ms(agg[level][k]):>14}" for k in SCALAR_KEYS))
    lines.append(f"global patient recognition rate: {ms(agg['recognition_rate'])}")
    return "\n".join(lines)
