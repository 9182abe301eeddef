"""Reliability diagram of a run's test images (before/after temperature scaling) and the
operating points fitted on its validation patients, for the training wizard's results page.

It shows ``metrics.calibration`` of :mod:`busviewer.training.calib_eval` (plain dicts).
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from busviewer.core.operating import OPERATING_POINTS, TITLES

BEFORE_PEN = pg.mkPen("#ff8a80", width=2, style=Qt.PenStyle.DashLine)
AFTER_PEN = pg.mkPen("#64b5f6", width=2)


def _num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "n/a"


def _xy(bins: list[dict[str, Any]] | None) -> tuple[list[float], list[float]]:
    used = [b for b in bins or [] if b.get("count")]
    return [b["mean_predicted"] for b in used], [b["fraction_malignant"] for b in used]


class ReliabilityPlot(QWidget):
    """Observed fraction malignant against predicted p(malignant), 10 bins, and a summary line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reliabilityPlot")
        self.plot = pg.PlotWidget()
        self.plot.setBackground("#1b1e21")
        self.plot.setTitle("Reliability per image (test)", color="#d0d4d8", size="10pt")
        self.plot.setLabel("bottom", "predicted p(malignant)")
        self.plot.setLabel("left", "fraction malignant")
        self.plot.setXRange(0, 1, padding=0.02)
        self.plot.setYRange(0, 1, padding=0.02)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setAspectLocked(True)
        self.plot.setMinimumSize(260, 240)
        self.legend = self.plot.addLegend(offset=(10, 10))
        self.plot.plot([0, 1], [0, 1], pen=pg.mkPen("#6b7075", style=Qt.PenStyle.DotLine))
        self.before = self.plot.plot([], [], pen=BEFORE_PEN, symbol="o", symbolSize=5, name="before")
        self.after = self.plot.plot([], [], pen=AFTER_PEN, symbol="o", symbolSize=5, name="calibrated")
        self.summary = QLabel("", self)
        self.summary.setObjectName("dimLabel")
        self.summary.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.summary)

    def set_calibration(self, cal: dict[str, Any] | None) -> None:
        """Show ``metrics.calibration`` (None or without test images: an empty plot)."""
        test = (cal or {}).get("test") or {}
        rel = test.get("reliability") or {}
        self.legend.clear()
        self.before.setData(*_xy(rel.get("before")))
        self.after.setData(*_xy(rel.get("after")))
        if not cal:
            self.summary.setText("No calibration in this run.")
            return
        self.legend.addItem(self.before, f"before: ECE {_num(test.get('ece_before'))}")
        self.legend.addItem(self.after, f"T = {_num(cal.get('temperature'))}: ECE {_num(test.get('ece_after'))}")
        points = test.get("points") or {}
        parts = []
        for name in OPERATING_POINTS:
            pt = points.get(name)
            if pt:
                parts.append(
                    f"{TITLES[name]} ≥ {_num(pt['threshold'])} (patients: sens "
                    f"{_num(pt['patient']['sensitivity'])}, spec {_num(pt['patient']['specificity'])})"
                )
        fitted = (
            "fitted on the validation patients"
            if cal.get("operating_points")
            else "not fitted (validation had one class): 0.5"
        )
        self.summary.setText(
            f"Temperature {_num(cal.get('temperature'))}; ECE (10 bins) on the test images "
            f"{_num(test.get('ece_before'))} → {_num(test.get('ece_after'))}. Operating points "
            f"({fitted}): " + "; ".join(parts)
        )

    def summary_text(self) -> str:
        return self.summary.text()


__all__ = ["ReliabilityPlot"]
