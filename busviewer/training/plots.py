"""PNG plots of a run (ROC curves, reliability diagram, loss curves) with matplotlib's Agg canvas.

The figures are drawn on ``matplotlib.figure.Figure`` + ``FigureCanvasAgg`` directly, so
nothing here touches pyplot's global backend (safe next to a Qt GUI).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float = 5.0, height: float = 4.6) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_roc(path: str | Path, curves: dict[str, dict[str, Any] | None], title: str = "ROC") -> Path | None:
    """``curves``: label -> ``{"fpr": [...], "tpr": [...], "auc": float|None}`` (None entries skipped)."""
    shown = {k: v for k, v in curves.items() if v and v.get("fpr")}
    if not shown:
        return None
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for label, c in shown.items():
        auc = c.get("auc")
        ax.plot(c["fpr"], c["tpr"], lw=1.6, label=f"{label} (AUC {auc:.3f})" if auc is not None else label)
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("1 - specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(path))
    return Path(path)


def plot_losses(path: str | Path, history: Sequence[dict[str, Any]], title: str = "loss") -> Path | None:
    """Training and validation loss per epoch, one panel per stage; best epochs marked."""
    stages: list[str] = []
    for h in history:
        if h["stage"] not in stages:
            stages.append(h["stage"])
    if not stages:
        return None
    fig = _figure(width=4.0 * len(stages), height=3.6)
    for i, stage in enumerate(stages, start=1):
        ax = fig.add_subplot(1, len(stages), i)
        rows = [h for h in history if h["stage"] == stage]
        ep = [h["epoch"] for h in rows]
        ax.plot(ep, [h["train_loss"] for h in rows], marker="o", ms=3, label="train")
        ax.plot(ep, [h["val_loss"] for h in rows], marker="o", ms=3, label="validation")
        best = [h for h in rows if h.get("best")]
        if best:
            b = best[-1]
            ax.axvline(b["epoch"], color="grey", ls=":", lw=1)
            ax.annotate("best", (b["epoch"], b["val_loss"]), fontsize=7)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{title}: {stage}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path))
    return Path(path)


def plot_reliability(
    path: str | Path, curves: dict[str, Sequence[dict[str, Any]] | None], title: str = "reliability"
) -> Path | None:
    """Reliability diagram: ``curves`` maps a label (e.g. "before (ECE 0.18)") to reliability
    bins (:func:`busviewer.training.calibration.reliability_bins`); observed fraction
    malignant against mean predicted probability per non-empty bin, with the bin counts."""
    shown = {k: v for k, v in curves.items() if v and any(b["count"] for b in v)}
    if not shown:
        return None
    fig = _figure(width=5.0, height=5.4)
    ax = fig.add_axes((0.14, 0.33, 0.8, 0.58))
    hist = fig.add_axes((0.14, 0.09, 0.8, 0.15), sharex=ax)
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey", label="perfectly calibrated")
    width = 1.0 / len(next(iter(shown.values())))
    for i, (label, bins) in enumerate(shown.items()):
        used = [b for b in bins if b["count"]]
        ax.plot(
            [b["mean_predicted"] for b in used],
            [b["fraction_malignant"] for b in used],
            marker="o",
            ms=4,
            lw=1.6,
            label=label,
        )
        offset = (i - (len(shown) - 1) / 2) * width / (len(shown) + 1)
        hist.bar(
            [(b["lower"] + b["upper"]) / 2 + offset for b in bins],
            [b["count"] for b in bins],
            width=width / (len(shown) + 1),
            alpha=0.7,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_ylabel("observed fraction malignant")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax.tick_params(labelbottom=False)
    hist.set_xlabel("predicted p(malignant), 10 equal-width bins")
    hist.set_ylabel("images", fontsize=8)
    hist.grid(alpha=0.3)
    fig.savefig(str(path))
    return Path(path)
