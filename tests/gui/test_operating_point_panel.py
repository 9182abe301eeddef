"""The AI panel's operating-point choice and the wizard's reliability plot (no model runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from busviewer.ai.results import ImagePrediction, summarise
from busviewer.core.notice import RESEARCH_NOTICE

SHA = "aa" * 32
POINTS = {"high_sensitivity": 0.2, "balanced": 0.5, "high_specificity": 0.85}


def _analysis():  # type: ignore[no-untyped-def]
    probs = {1: 0.3, 2: 0.6, 3: 0.7}
    preds = {
        (i, "vgg16"): ImagePrediction(i, 0, None, "vgg16", "m", 1, {"benign": 1 - p, "malignant": p}, p, "benign", SHA)
        for i, p in probs.items()
    }
    return summarise("P1", preds, {SHA: POINTS})


def _record(i: int):  # type: ignore[no-untyped-def]
    from busviewer.core.store import ImageRecord

    return ImageRecord(
        i, "P1", "st", "se", Path(f"/data/P1/img{i}.png"), "h", None, 1, 80, 96, False, None, None, None, (), None
    )


def test_panel_switches_operating_point_without_rerunning(qtbot) -> None:  # type: ignore[no-untyped-def]
    from busviewer.gui.ai_panel import SETTINGS_OPERATING_POINT, AIPanel

    panel = AIPanel()
    qtbot.addWidget(panel)
    panel.set_operating_point("balanced")
    panel.set_patient([_record(i) for i in (1, 2, 3)])
    panel.show_analysis(_analysis())
    assert [panel.table.item(r, 2).text() for r in range(3)] == ["B 0.30", "M 0.60", "M 0.70"]
    card = panel.cards["vgg16"]
    assert card.verdict.text() == "MALIGNANT" and "2 malignant, 1 benign" in card.detail.text()
    assert "Balanced operating point (malignant if p ≥ 0.50)" in card.point.text()
    assert panel.banner.text().endswith(RESEARCH_NOTICE)

    with qtbot.waitSignal(panel.operatingPointChanged, timeout=2_000) as sig:
        panel.set_operating_point("high_specificity")
    assert sig.args == ["high_specificity"]
    assert card.verdict.text() == "BENIGN" and "0 malignant, 3 benign" in card.detail.text()
    assert "High specificity operating point (malignant if p ≥ 0.85)" in card.point.text()
    assert [panel.table.item(r, 2).text() for r in range(3)] == ["B 0.30", "B 0.60", "B 0.70"]
    assert panel.image_short_labels() == {1: "B 0.30", 2: "B 0.60", 3: "B 0.70"}
    assert QSettings().value(SETTINGS_OPERATING_POINT) == "high_specificity"

    # an analysis made at another point is shown at the panel's point
    panel.show_analysis(_analysis().at("high_sensitivity"))
    assert panel.analysis.operating_point == "high_specificity" and card.verdict.text() == "BENIGN"
    # a new panel starts at the remembered point
    again = AIPanel()
    qtbot.addWidget(again)
    assert again.operating_point() == "high_specificity"
    again.set_operating_point("balanced")


def test_reliability_plot_shows_the_run_calibration(qtbot) -> None:  # type: ignore[no-untyped-def]
    from busviewer.gui.reliability_plot import ReliabilityPlot
    from busviewer.training.calib_eval import calibration_report

    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, 600)
    y = (rng.random(600) < 1 / (1 + np.exp(-z))).astype(int)
    p = 1 / (1 + np.exp(-3 * z))
    cal = calibration_report(y[:300], p[:300], y[300:], p[300:], [f"P{i // 3}" for i in range(300)])
    plot = ReliabilityPlot()
    qtbot.addWidget(plot)
    plot.set_calibration(cal)
    after = [b for b in cal["test"]["reliability"]["after"] if b["count"]]
    x, yy = plot.after.getData()
    assert list(x) == pytest.approx([b["mean_predicted"] for b in after])
    assert list(yy) == pytest.approx([b["fraction_malignant"] for b in after])
    text = plot.summary_text()
    assert f"{cal['temperature']:.3f}" in text and f"{cal['test']['ece_after']:.3f}" in text
    assert f"High specificity ≥ {cal['test']['points']['high_specificity']['threshold']:.3f}" in text
    plot.set_calibration(None)
    assert plot.after.getData()[0] is None or len(plot.after.getData()[0]) == 0
    assert "No calibration" in plot.summary_text()
