"""The AI panel shows a probability in the indeterminate band as "indeterminate", not as a
bold coloured call, with the operating point, the band and the disagreement flag (issue 14)."""

from __future__ import annotations

from pathlib import Path

from busviewer.ai.results import ImagePrediction, summarise
from busviewer.core.notice import RESEARCH_NOTICE

SHA = "ab" * 32


def _record(i: int):  # type: ignore[no-untyped-def]
    from busviewer.core.store import ImageRecord

    return ImageRecord(
        i, "P1", "st", "se", Path(f"/data/P1/img{i}.png"), "h", None, 1, 80, 96, False, None, None, None, (), None
    )


def _analysis(vgg: dict[int, float], ens: dict[int, float]):  # type: ignore[no-untyped-def]
    preds = {}
    for arch, probs in (("vgg16", vgg), ("ensemble", ens)):
        for i, p in probs.items():
            preds[i, arch] = ImagePrediction(
                i, 0, None, arch, f"m-{arch}", 2, {"benign": 1 - p, "malignant": p}, p, "benign", SHA
            )
    return summarise("P1", preds)  # no operating points recorded: threshold 0.5, band (0.40, 0.60)


def test_panel_shows_indeterminate_instead_of_a_bold_call(qtbot) -> None:  # type: ignore[no-untyped-def]
    from busviewer.gui.ai_panel import AIPanel
    from busviewer.gui.tasks import verdict_text

    panel = AIPanel()
    qtbot.addWidget(panel)
    panel.set_operating_point("balanced")
    panel.set_patient([_record(i) for i in (1, 2)])
    analysis = _analysis({1: 0.51, 2: 0.53}, {1: 0.45, 2: 0.93})
    panel.show_analysis(analysis)
    vgg = panel.cards["vgg16"]
    assert vgg.verdict.text() == "INDETERMINATE"
    assert "font-weight: normal" in vgg.verdict.styleSheet() and "#ff8a80" not in vgg.verdict.styleSheet()
    assert "Indeterminate (not counted in the vote): #1, #2" in vgg.detail.text()
    assert "Balanced operating point (malignant if p ≥ 0.50)" in vgg.point.text()
    assert "indeterminate if 0.40 < p < 0.60" in vgg.point.text()
    ens = panel.cards["ensemble"]
    assert ens.verdict.text() == "MALIGNANT" and "1 malignant, 0 benign" in ens.detail.text()
    assert "#1" in ens.detail.text().split("Indeterminate")[1]
    assert [panel.table.item(r, 2).text() for r in range(2)] == ["? 0.51", "? 0.53"]
    assert [panel.table.item(r, 1).text() for r in range(2)] == ["? 0.45", "M 0.93"]
    assert "leans malignant" in panel.table.item(0, 2).toolTip()
    assert panel.image_short_labels() == {1: "? 0.45 / ? 0.51", 2: "M 0.93 / ? 0.53"}
    assert panel.disagree.isVisibleTo(panel) and "disagree on the patient verdict" in panel.disagree.text()
    assert panel.banner.text().endswith(RESEARCH_NOTICE)
    assert verdict_text(analysis.verdicts).startswith("malignant 1/1 +1?")
    assert verdict_text({"vgg16": analysis.verdicts["vgg16"]}) == "indeterminate (2 unsure)"


def test_panel_withholds_output_of_images_outside_the_training_data(qtbot) -> None:  # type: ignore[no-untyped-def]
    from busviewer.core.input_guard import OUTSIDE_TEXT
    from busviewer.gui.ai_panel import AIPanel

    panel = AIPanel()
    qtbot.addWidget(panel)
    panel.set_operating_point("balanced")
    panel.set_patient([_record(i) for i in (1, 2)])
    reason = f"{OUTSIDE_TEXT}: colour Doppler or colour-coded image (9% of the image area is colour)"
    analysis = _analysis({1: 0.97, 2: 0.1}, {1: 0.96, 2: 0.2}).guarded({1: reason})
    panel.show_analysis(analysis)
    assert [panel.table.item(0, c).text() for c in (1, 2)] == ["outside", "outside"]
    assert panel.table.item(0, 1).toolTip().startswith("Outside the model's training data")
    vgg = panel.cards["vgg16"]
    assert vgg.verdict.text() == "BENIGN" and "0 malignant, 1 benign" in vgg.detail.text()
    assert "Image #1: outside the model's training data: colour Doppler" in panel.outside_note.text()
    assert panel.image_short_labels()[1] == "outside"
    assert panel.override_button.isVisibleTo(panel) and panel.override_button.text() == "Classify flagged images anyway"
    with qtbot.waitSignal(panel.overrideRequested, timeout=2_000) as sig:
        panel.override_button.click()
    assert sig.args == [True]

    panel.show_analysis(analysis.guarded({}, {1: "dr-a"}))
    assert panel.table.item(0, 2).text() == "M 0.97" and panel.cards["vgg16"].verdict.text() == "MALIGNANT"
    assert "override" in panel.outside_note.text() and "#1 by dr-a" in panel.outside_note.text()
    assert panel.override_button.text() == "Withdraw the override"
    with qtbot.waitSignal(panel.overrideRequested, timeout=2_000) as sig:
        panel.override_button.click()
    assert sig.args == [False]
