"""Pieces the training wizard's pages share: texts, label styles, small widgets, and
:class:`WizardHost`, what a page uses of the wizard that holds it (so no page imports
:mod:`busviewer.gui.training_wizard`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QFrame, QLabel, QWidget

if TYPE_CHECKING:
    from busviewer.gui import workers
    from busviewer.gui.wizard_data_page import DataPage
    from busviewer.gui.wizard_model_page import ModelPage
    from busviewer.gui.wizard_settings_page import SettingsPage
    from busviewer.gui.wizard_tasks import Env
    from busviewer.gui.wizard_validation_page import ValidationPage

#: The wizard's page ids (QWizard.setPage), in the order of the steps.
PAGE_DATA, PAGE_MODEL, PAGE_VALIDATION, PAGE_SETTINGS, PAGE_RUN, PAGE_RESULTS = range(6)

RECIPE_TEXT = {
    "busviewer": "busviewer (recommended without ImageNet weights)",
    "seed": "Original recipe (Adam 1e-4, crop + flip)",
}
ARCH_TEXT = {
    "ensemble": (
        "Ensemble: AlexNet + ResNet-18",
        "Two networks whose features are combined by one classifier (the design busviewer started "
        "from). Trained end to end (busviewer recipe) or in three stages: AlexNet, ResNet-18, then the "
        "joint classifier (original recipe). Used for the Grad-CAM maps of both branches.",
    ),
    "vgg16": (
        "VGG-16",
        "One deeper network, fine-tuned as a whole (its original publication reported accuracy 0.92, "
        "AUC 0.93 on its own data). "
        "Slower to train on a CPU.",
    ),
}
BSE_TOOLTIP = (
    "B-mode + strain elastography (4 channels, as in the original ensemble design) needs a strain image "
    "paired with each "
    "B-mode image. busviewer does not store such pairs yet, so only B-mode training is possible."
)
WARN_STYLE = (
    "QLabel { color: #ffcc80; background: #3a2a14; border: 1px solid #7a5420; border-radius: 3px; padding: 5px; }"
)
BLOCK_STYLE = (
    "QLabel { color: #ff8a80; background: #3a1a18; border: 1px solid #7a3030; border-radius: 3px; padding: 5px; }"
)
OK_STYLE = "QLabel { color: #a5d6a7; padding: 5px; }"


def dim(text: str, parent: QWidget | None = None, wrap: bool = True) -> QLabel:
    """A secondary (dimmed) label, word-wrapped unless ``wrap`` is false."""
    lab = QLabel(text, parent)
    lab.setObjectName("dimLabel")
    lab.setWordWrap(wrap)
    return lab


def hline(parent: QWidget) -> QFrame:
    """A sunken horizontal separator."""
    f = QFrame(parent)
    f.setFrameShape(QFrame.Shape.HLine)
    f.setFrameShadow(QFrame.Shadow.Sunken)
    return f


class WizardHost(Protocol):
    """The :class:`~busviewer.gui.training_wizard.TrainingWizard` as its pages see it (it is
    also their parent widget): the state they share, the other pages, and the actions."""

    store: Any
    env: Env | None
    locked: Any
    locked_error: str
    locked_busy: bool
    outcome: dict[str, Any] | None
    run_dir: Path | None
    data_page: DataPage
    model_page: ModelPage
    validation_page: ValidationPage
    settings_page: SettingsPage
    dataSummarized: SignalInstance
    lockedChanged: SignalInstance

    def submit(self, fn: Callable[..., Any], *args: Any, pool: str = "io", **kwargs: Any) -> workers.Task: ...
    def show_error(self, title: str, text: str) -> None: ...
    def describe_device(self, device: str) -> str: ...
    def confirm_start(self) -> bool: ...
    def start_near_duplicate_scan(self) -> workers.Task: ...
    def create_locked_test(self) -> workers.Task | None: ...
    def reset_locked_test(self, confirm: bool | None = None) -> workers.Task | None: ...
    def start_pending_run(self) -> None: ...
    def resume_run(self, run_dir: Any) -> None: ...
    def cancel_run(self) -> None: ...
    def start_comparison(self) -> workers.Task | None: ...
    def promote(self) -> workers.Task | None: ...
    def discard(self, confirm: bool | None = None) -> workers.Task | None: ...


__all__ = [
    "ARCH_TEXT",
    "BLOCK_STYLE",
    "BSE_TOOLTIP",
    "OK_STYLE",
    "PAGE_DATA",
    "PAGE_MODEL",
    "PAGE_RESULTS",
    "PAGE_RUN",
    "PAGE_SETTINGS",
    "PAGE_VALIDATION",
    "RECIPE_TEXT",
    "WARN_STYLE",
    "WizardHost",
    "dim",
    "hline",
]
