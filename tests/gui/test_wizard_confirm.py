"""Issue 14, training wizard: Next creates the locked test set and shows its counts, a run
starts only after a confirmation naming the estimated time and the device, plain words,
and only glyphs the fonts have."""

from __future__ import annotations

import re

import pytest
from gui_helpers import answer_dialog
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QAbstractButton, QLabel, QWidget, QWizard
from test_training_wizard import open_wizard, press, ws  # noqa: F401 - ws is the fixture

from busviewer.services import training_data as wd
from busviewer.services import training_runs as runs


def _texts(root: QWidget) -> list[tuple[QWidget, str]]:
    out = []
    for w in root.findChildren(QWidget):
        if isinstance(w, (QLabel, QAbstractButton)):
            out.append((w, re.sub(r"<[^>]+>", "", w.text())))
        if w.toolTip():
            out.append((w, w.toolTip()))
    return out


def test_locked_set_on_next_and_confirmation_before_a_run(ws, qtbot) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from busviewer.gui.training_wizard import PAGE_SETTINGS, PAGE_VALIDATION
    from busviewer.gui.wizard_common import RECIPE_TEXT

    wiz = open_wizard(ws, qtbot)
    press(qtbot, wiz)
    wiz.model_page.arch_buttons["vgg16"].click()
    wiz.model_page.init_random.click()
    press(qtbot, wiz)
    vp = wiz.validation_page
    assert wiz.currentId() == PAGE_VALIDATION and wiz.locked is None
    vp.locked_fraction.setValue(25)
    next_button = wiz.button(QWizard.WizardButton.NextButton)
    assert next_button.isEnabled() and next_button.text() == "Create locked test set"  # not a dead Next
    press(qtbot, wiz)
    qtbot.waitUntil(lambda: wiz.locked is not None and not wiz.locked_busy, timeout=30_000)
    assert wiz.currentId() == PAGE_VALIDATION  # stays, so the new set is seen
    shown_set = re.sub(r"<[^>]+>", "", vp.locked_label.text())
    assert "4 patients (2 benign, 2 malignant; 8 images)" in shown_set, shown_set
    assert "Test (locked): " in vp.preview_label.text()
    assert next_button.text() == "Next >" and vp.reset_locked_button.isEnabled()
    vp.holdout_radio.click()
    vp.val_fraction.setValue(25)
    press(qtbot, wiz)
    assert wiz.currentId() == PAGE_SETTINGS
    sp = wiz.settings_page
    sp.epochs.setValue(3)
    sp.input_size.setValue(64)
    shown: list[str] = []
    answer_dialog("Cancel", shown)
    press(qtbot, wiz, QWizard.WizardButton.CommitButton)
    assert wiz.currentId() == PAGE_SETTINGS and not wiz.training_running()  # Cancel starts nothing
    text = shown[0]
    assert "Estimated time: " in text and "Device: CPU" in text
    assert "VGG-16" in text and "up to 3 epochs" in text and "for training" in text
    c = vp.preview_counts
    minutes = runs.estimate_training_seconds("vgg16", 64, c["train"]["images"], c["val"]["images"], 3, "cpu") / 60
    assert ("less than a minute" if minutes < 1 else f"about {minutes:.0f} minutes") in text
    # plain words, and glyphs the fonts have (⛔ renders as an empty box with DejaVu/Liberation)
    assert "Seed papers" not in RECIPE_TEXT.values()
    for page in (wiz.data_page, wiz.model_page, vp, sp):
        for widget, t in _texts(page):
            assert "paper" not in t.lower(), t
            fm = QFontMetrics(widget.font())
            missing = {ch for ch in t if ord(ch) > 127 and not fm.inFontUcs4(ord(ch))}
            assert not missing, (missing, t)
    wiz.close()


def test_blocking_warnings_use_a_glyph_the_font_has(ws, qtbot) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    wiz = open_wizard(ws, qtbot)
    wiz.data_page._show_warnings([wd.DataWarning("classes", "Only one class is labelled.", True)])
    labels = [w for w in wiz.data_page.warnings_widget.findChildren(QLabel) if w.property("kind") == "classes"]
    assert labels and "⛔" not in labels[0].text()
    fm = QFontMetrics(labels[0].font())
    assert all(fm.inFontUcs4(ord(ch)) for ch in labels[0].text() if ord(ch) > 127)
    wiz.close()


def test_estimate_grows_with_the_work() -> None:
    base = runs.estimate_training_seconds("ensemble", 128, 200, 40, 10, "cpu")
    assert runs.estimate_training_seconds("vgg16", 128, 200, 40, 10, "cpu") > 5 * base
    assert runs.estimate_training_seconds("ensemble", 128, 200, 40, 10, "cpu", stages=3, folds=4) == pytest.approx(
        15 * base
    )
    assert runs.estimate_training_seconds("ensemble", 128, 200, 40, 10, "cuda:0") < base / 50
