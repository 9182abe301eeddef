"""Step 2 of the training wizard: architecture, input mode and where the weights start from."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtWidgets import (
    QButtonGroup,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QVBoxLayout,
    QWizardPage,
)

from busviewer.gui.wizard_common import ARCH_TEXT, BSE_TOOLTIP, WARN_STYLE, WizardHost, dim


class ModelPage(QWizardPage):
    """Architecture, input mode, where the weights start from."""

    def __init__(self, wiz: WizardHost) -> None:
        super().__init__(wiz)
        self.wiz = wiz
        self.setTitle("Step 2 of 6 · Which model to train")
        self.setSubTitle(
            "The new model is saved as a new version next to the current ones; it is not used for "
            "patients until you promote it (step 6)."
        )
        self._build()

    def _build(self) -> None:
        arch = QGroupBox("Architecture", self)
        al = QVBoxLayout(arch)
        self.arch_group = QButtonGroup(self)
        self.arch_buttons: dict[str, QRadioButton] = {}
        for key, (title, text) in ARCH_TEXT.items():
            rb = QRadioButton(title, arch)
            self.arch_buttons[key] = rb
            self.arch_group.addButton(rb)
            al.addWidget(rb)
            d = dim(text, arch)
            d.setContentsMargins(24, 0, 0, 6)
            al.addWidget(d)
        self.arch_buttons["ensemble"].setChecked(True)

        inp = QGroupBox("Input", self)
        il = QVBoxLayout(inp)
        self.bmode_radio = QRadioButton("B-mode images", inp)
        self.bmode_radio.setChecked(True)
        self.bse_radio = QRadioButton("B-mode + strain elastography (B+SE)", inp)
        self.bse_radio.setEnabled(False)
        self.bse_radio.setToolTip(BSE_TOOLTIP)
        self.input_group = QButtonGroup(self)
        self.input_group.addButton(self.bmode_radio)
        self.input_group.addButton(self.bse_radio)
        il.addWidget(self.bmode_radio)
        row = QHBoxLayout()
        row.addWidget(self.bse_radio)
        why = dim("— not available yet: paired strain images are not stored (hover for details)", inp, wrap=False)
        why.setToolTip(BSE_TOOLTIP)
        row.addWidget(why)
        row.addStretch(1)
        il.addLayout(row)
        self.kind_label = dim("", inp)
        il.addWidget(self.kind_label)

        init = QGroupBox("Start from", self)
        nl = QVBoxLayout(init)
        self.init_group = QButtonGroup(self)
        self.init_active = QRadioButton("The active model (fine-tune it further)", init)
        self.init_imagenet = QRadioButton("ImageNet weights (general photographs; the usual starting point)", init)
        self.init_random = QRadioButton("Random weights (no prior knowledge; needs much more data)", init)
        for rb in (self.init_active, self.init_imagenet, self.init_random):
            self.init_group.addButton(rb)
            rb.toggled.connect(self._update_note)
            nl.addWidget(rb)
        self.init_note = QLabel("Checking which starting points are available…", init)
        self.init_note.setWordWrap(True)
        nl.addWidget(self.init_note)
        self._init_chosen_by_user = False
        for rb in (self.init_active, self.init_imagenet, self.init_random):
            rb.clicked.connect(self._user_chose_init)

        lay = QVBoxLayout(self)
        lay.addWidget(arch)
        lay.addWidget(inp)
        lay.addWidget(init)
        lay.addStretch(1)
        for rb in self.arch_buttons.values():
            rb.toggled.connect(self._update)

    def _user_chose_init(self) -> None:
        self._init_chosen_by_user = True

    def architecture(self) -> str:
        return next(k for k, rb in self.arch_buttons.items() if rb.isChecked())

    def init_choice(self) -> str:
        if self.init_active.isChecked():
            return "active"
        if self.init_imagenet.isChecked():
            return "imagenet"
        return "random"

    def active_entry(self) -> Any:
        env = self.wiz.env
        return env.active.get(self.architecture()) if env is not None else None

    def imagenet_available(self) -> bool | None:
        env = self.wiz.env
        if env is None:
            return None
        return env.imagenet.get(self.architecture(), (False, ""))[0]

    def initializePage(self) -> None:
        data = self.wiz.data_page
        what = "lesion crops (saved ROIs)" if data.use_rois() else "whole images"
        self.kind_label.setText(f"Training on {what} — chosen in step 1.")
        self._update()

    def _update(self, *_args: Any) -> None:
        active = self.active_entry()
        env = self.wiz.env
        if env is None:
            self.init_active.setText("The active model (checking…)")
            self.init_active.setEnabled(False)
        elif active is None:
            self.init_active.setText("The active model — there is no active model of this architecture")
            self.init_active.setEnabled(False)
        else:
            self.init_active.setText(f"The active model: {active.name} v{active.version} (fine-tune it further)")
            self.init_active.setEnabled(True)
        avail = self.imagenet_available()
        if avail is False:
            self.init_imagenet.setText("ImageNet weights — not available on this computer")
        else:
            self.init_imagenet.setText("ImageNet weights (general photographs; the usual starting point)")
        if (
            not self._init_chosen_by_user
            or not self.init_group.checkedButton()
            or not self.init_group.checkedButton().isEnabled()
        ):
            if active is not None:
                self.init_active.setChecked(True)
            elif avail:
                self.init_imagenet.setChecked(True)
            elif env is not None:
                self.init_random.setChecked(True)
        self._update_note()
        self.completeChanged.emit()

    def _update_note(self, *_args: Any) -> None:
        choice = self.init_choice() if self.init_group.checkedButton() else None
        env = self.wiz.env
        avail = self.imagenet_available()
        if choice == "imagenet" and avail is False:
            detail = env.imagenet.get(self.architecture(), (False, ""))[1] if env else ""
            self.init_note.setText(
                "⚠ The ImageNet weights are not stored on this computer, so training would start from "
                f"<b>random weights</b> instead. {html.escape(detail)}"
            )
            self.init_note.setStyleSheet(WARN_STYLE)
        elif choice == "active":
            a = self.active_entry()
            self.init_note.setText(
                f"The new version starts from {a.name} v{a.version} and records it as its parent." if a else ""
            )
            self.init_note.setStyleSheet("")
        elif choice == "random":
            self.init_note.setText(
                "Every layer is trained from scratch. Expect poor results with fewer than several hundred patients."
            )
            self.init_note.setStyleSheet(WARN_STYLE)
        elif choice == "imagenet":
            self.init_note.setText("ImageNet weights are stored on this computer.")
            self.init_note.setStyleSheet("")
        else:
            self.init_note.setText("Checking which starting points are available…")
            self.init_note.setStyleSheet("")

    def isComplete(self) -> bool:
        return self.init_group.checkedButton() is not None


__all__ = ["ModelPage"]
