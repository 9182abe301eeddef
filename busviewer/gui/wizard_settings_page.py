"""Step 4 of the training wizard: the training settings with the recipes' defaults, and an
Advanced section for the rest. Its commit button ("Start training") begins step 5."""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from busviewer.gui.wizard_common import ARCH_TEXT, RECIPE_TEXT, WizardHost, dim, hline
from busviewer.services import training_runs as runs


class AdvancedSettings(QGroupBox):
    """The settings page's Advanced section: class balancing, frozen layers, seed, device,
    mixed precision, steps per epoch, model name and description."""

    def __init__(self, parent: QWidget, seed: int) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        self.balance = QComboBox(self)
        for text, key in (("Weighted loss", "loss"), ("Oversample the smaller class", "sampler"), ("None", "none")):
            self.balance.addItem(text, key)
        self.freezing = QComboBox(self)
        self.freezing.addItem("Automatic (seed 001 schedule; all layers from random weights)", "auto")
        self.freezing.addItem("Custom", "custom")
        self.alexnet_last = QSpinBox(self)
        self.alexnet_last.setRange(1, 8)
        self.alexnet_last.setValue(3)
        self.alexnet_last.setToolTip("AlexNet layers trained in stage 1, counted from the end (3 in seed 001).")
        self.resnet_frozen = QSpinBox(self)
        self.resnet_frozen.setRange(0, 6)
        self.resnet_frozen.setValue(4)
        self.resnet_frozen.setToolTip("ResNet-18 layers kept frozen in stage 1 (conv1, bn1, layer1-4; 4 in seed 001).")
        self.vgg_frozen = QSpinBox(self)
        self.vgg_frozen.setRange(0, 5)
        self.vgg_frozen.setValue(0)
        self.vgg_frozen.setToolTip("VGG-16 convolution blocks kept frozen (0: fine-tune all, as in seed 000).")
        self.head_init = QComboBox(self)
        self.head_init.addItem("Average of the two branch classifiers", "branches")
        self.head_init.addItem("Random", "random")
        self.freezing.currentIndexChanged.connect(self._freezing_changed)
        self.seed = QSpinBox(self)
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(seed)
        self.seed.setToolTip(
            "Fixes the random choices (split of validation patients, augmentation, initial "
            "weights) so a run can be repeated."
        )
        self.device = QComboBox(self)
        self.device.addItem("Automatic (best available)", None)
        self.amp = QComboBox(self)
        for text, key in (
            ("Automatic (bf16 or fp16 on CUDA)", "auto"),
            ("Off", "off"),
            ("fp16", "fp16"),
            ("bf16", "bf16"),
        ):
            self.amp.addItem(text, key)
        self.amp.setToolTip("Mixed precision speeds up training on NVIDIA GPUs; it is always off on the CPU.")
        self.max_steps = QSpinBox(self)
        self.max_steps.setRange(0, 1_000_000)
        self.max_steps.setSpecialValueText("all (normal)")
        self.max_steps.setToolTip("For a quick trial only: at most this many batches per epoch.")
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("default: the architecture (ensemble / vgg16)")
        self.name.setToolTip("Model name; the registry numbers the versions (name v1, v2, …).")
        self.description = QLineEdit(self)
        self.description.setPlaceholderText("optional note stored on the model card")
        rows = [
            ("Class balancing:", self.balance),
            ("Frozen layers:", self.freezing),
            ("AlexNet layers trained:", self.alexnet_last),
            ("ResNet-18 layers frozen:", self.resnet_frozen),
            ("VGG-16 blocks frozen:", self.vgg_frozen),
            ("Ensemble classifier starts as:", self.head_init),
        ]
        rows2 = [
            ("Random seed:", self.seed),
            ("Device:", self.device),
            ("Mixed precision:", self.amp),
            ("Steps per epoch:", self.max_steps),
            ("Model name:", self.name),
            ("Description:", self.description),
        ]
        for r, (label, w) in enumerate(rows):
            grid.addWidget(QLabel(label, self), r, 0)
            grid.addWidget(w, r, 1)
        for r, (label, w) in enumerate(rows2):
            grid.addWidget(QLabel(label, self), r, 2)
            grid.addWidget(w, r, 3)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        grid.setHorizontalSpacing(10)
        self._freezing_changed()

    def _freezing_changed(self, *_args: Any) -> None:
        custom = self.freezing.currentData() == "custom"
        for w in (self.alexnet_last, self.resnet_frozen, self.vgg_frozen):
            w.setEnabled(custom)

    def set_devices(self, devices: list[str], default_text: str) -> None:
        """The devices this computer offers; the choice is kept when still offered."""
        current = self.device.currentData()
        self.device.blockSignals(True)
        self.device.clear()
        self.device.addItem(f"Automatic: {runs.device_text(default_text)}", None)
        for dev in devices:
            self.device.addItem(dev.upper() if dev == "cpu" else dev, dev)
        idx = self.device.findData(current)
        self.device.setCurrentIndex(max(idx, 0))
        self.device.blockSignals(False)

    def set_device(self, device: str | None) -> None:
        """Choose ``device`` (added to the list when it is not offered)."""
        idx = self.device.findData(device)
        if idx < 0 and device:
            self.device.addItem(device, device)
            idx = self.device.count() - 1
        self.device.setCurrentIndex(max(idx, 0))

    def values(self) -> dict[str, Any]:
        """The Advanced part of the run's configuration (TrainConfig fields)."""
        custom = self.freezing.currentData() == "custom"
        return {
            "balance": self.balance.currentData(),
            "alexnet_trainable_last": self.alexnet_last.value() if custom else None,
            "resnet_frozen_first": self.resnet_frozen.value() if custom else None,
            "vgg_frozen_blocks": self.vgg_frozen.value() if custom else None,
            "head_init": self.head_init.currentData(),
            "seed": self.seed.value(),
            "device": self.device.currentData(),
            "amp": self.amp.currentData(),
            "max_steps_per_epoch": self.max_steps.value() or None,
            "name": self.name.text().strip() or None,
            "description": self.description.text().strip(),
        }


class SettingsPage(QWizardPage):
    """Training settings with the seeds' defaults; Advanced for the rest."""

    def __init__(self, wiz: WizardHost) -> None:
        super().__init__(wiz)
        self.wiz = wiz
        self.setTitle("Step 4 of 6 · Training settings")
        self.setSubTitle(
            "The busviewer recipe is what measured best here without ImageNet weights "
            "(docs/RESULTS.md); the original recipe repeats the published training "
            "(Adam, learning rate 0.0001, early stopping). "
            "Pressing “Start training” begins step 5."
        )
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Start training")
        self._build()

    def _build(self) -> None:
        from busviewer.training.config import AugmentConfig, TrainConfig
        from busviewer.training.recipes import DEFAULT_RECIPE, RECIPES

        d = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
        aug = AugmentConfig()

        main = QGroupBox("Training", self)
        form = QFormLayout(main)
        self.recipe = QComboBox(main)
        for name in RECIPES:
            self.recipe.addItem(RECIPE_TEXT.get(name, name), name)
        self.recipe.setToolTip("A preset of all settings; changing it resets the fields below to the preset.")
        form.addRow("Recipe:", self.recipe)
        self.epochs = QSpinBox(main)
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(int(d["epochs"]))
        self.epochs.setToolTip("Upper limit per training stage; early stopping usually ends sooner.")
        self.patience = QSpinBox(main)
        self.patience.setRange(1, 200)
        self.patience.setValue(int(d["patience"]))
        self.patience.setSuffix(" epochs")
        self.patience.setToolTip(
            "Stop when the validation loss has not improved for this many epochs; the best weights are kept."
        )
        self.batch_size = QSpinBox(main)
        self.batch_size.setRange(1, 1024)
        self.batch_size.setValue(int(d["batch_size"]))
        self.lr = QDoubleSpinBox(main)
        self.lr.setDecimals(6)
        self.lr.setRange(0.000001, 0.1)
        self.lr.setSingleStep(0.00005)
        self.lr.setValue(float(d["lr"]))
        self.lr.setToolTip(
            "Peak learning rate; 0.0001 (1e-4) with Adam in the original recipe, 0.001 with AdamW, "
            "warm-up and cosine decay in the busviewer recipe."
        )
        self.input_size = QSpinBox(main)
        self.input_size.setRange(32, 1024)
        self.input_size.setSingleStep(32)
        self.input_size.setValue(int(d["input_size"]))
        self.input_size.setSuffix(" px")
        self.input_size.setToolTip(
            "Images are resized to a square of this size (224 in the original recipe). Smaller trains faster on a CPU."
        )
        form.addRow("Maximum epochs per stage:", self.epochs)
        form.addRow("Early stopping after:", self.patience)
        form.addRow("Batch size:", self.batch_size)
        form.addRow("Learning rate:", self.lr)
        form.addRow("Input size:", self.input_size)

        augb = QGroupBox("Augmentation (random changes to training images)", self)
        al = QVBoxLayout(augb)
        self.aug_crop = QCheckBox("Random crop", augb)
        self.aug_crop.setChecked(aug.crop != "none")
        self.aug_flip = QCheckBox("Horizontal flip", augb)
        self.aug_flip.setChecked(aug.hflip)
        self.aug_jitter = QCheckBox("Brightness / contrast", augb)
        self.aug_jitter.setChecked(aug.brightness > 0 or aug.contrast > 0)
        self.aug_scale = QCheckBox("Scale (small zoom in / out)", augb)
        self.aug_scale.setChecked(aug.scale > 0)
        for cb in (self.aug_crop, self.aug_flip, self.aug_jitter, self.aug_scale):
            al.addWidget(cb)
        al.addWidget(
            dim(
                "Augmentation makes the model less sensitive to position, gain and size; "
                "validation and test images are never changed.",
                augb,
            )
        )
        al.addStretch(1)

        top = QHBoxLayout()
        top.addWidget(main, 1)
        top.addWidget(augb, 1)

        # advanced (collapsible)
        self.advanced_toggle = QToolButton(self)
        self.advanced_toggle.setText("Advanced settings")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setStyleSheet(
            "QToolButton { border: none; font-weight: 600; } "
            "QToolButton:checked { background: transparent; color: #e6e6e6; }"
        )
        self.advanced_toggle.toggled.connect(self._toggle_advanced)
        self.advanced = AdvancedSettings(self, seed=int(d["seed"]))
        a = self.advanced  # its fields are the page's too, as tests and the wizard know them
        self.balance, self.freezing, self.alexnet_last = a.balance, a.freezing, a.alexnet_last
        self.resnet_frozen, self.vgg_frozen, self.head_init = a.resnet_frozen, a.vgg_frozen, a.head_init
        self.seed, self.device, self.amp, self.max_steps = a.seed, a.device, a.amp, a.max_steps
        self.name, self.description = a.name, a.description
        self.seed.valueChanged.connect(lambda _v: self.wiz.validation_page.update_preview())
        self.advanced.setVisible(False)
        self.recipe.currentIndexChanged.connect(self._apply_recipe)
        self.recipe.setCurrentIndex(max(0, self.recipe.findData(DEFAULT_RECIPE)))
        self._apply_recipe()

        self.summary = dim("", self)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(hline(self))
        lay.addWidget(self.advanced_toggle)
        lay.addWidget(self.advanced)
        lay.addStretch(1)
        lay.addWidget(self.summary)

    def _toggle_advanced(self, on: bool) -> None:
        self.advanced.setVisible(on)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    def set_devices(self, devices: list[str], default_text: str) -> None:
        self.advanced.set_devices(devices, default_text)

    def set_device(self, device: str | None) -> None:
        self.advanced.set_device(device)

    def initializePage(self) -> None:
        arch = self.wiz.model_page.architecture()
        self.head_init.setEnabled(arch == "ensemble")
        self.alexnet_last.setVisible(True)
        joint = self._recipe_config().ensemble_schedule == "joint"
        stages = (
            (
                "one stage (both networks and the joint classifier together)"
                if joint
                else "three stages (AlexNet, ResNet-18, joint classifier)"
            )
            if arch == "ensemble"
            else "one stage"
        )
        self.summary.setText(
            f"The {ARCH_TEXT[arch][0]} trains in {stages}, each for up to the maximum number of "
            "epochs. Progress, curves and an estimate of the time left are shown in step 5; you can "
            "cancel at any time and resume later."
        )

    def _recipe_config(self) -> Any:
        from busviewer.training.recipes import make_config

        return make_config(self.recipe.currentData(), data="store")

    def _apply_recipe(self) -> None:
        """Reset the fields to the chosen recipe's values."""
        cfg = self._recipe_config()
        self.epochs.setValue(cfg.epochs)
        self.patience.setValue(cfg.patience)
        self.batch_size.setValue(cfg.batch_size)
        self.lr.setValue(cfg.lr)
        a = cfg.augment
        self.aug_crop.setChecked(a.crop != "none")
        self.aug_flip.setChecked(a.hflip)
        self.aug_jitter.setChecked(a.brightness > 0 or a.contrast > 0)
        self.aug_scale.setChecked(a.scale > 0)
        self.balance.setCurrentIndex(max(0, self.balance.findData(cfg.balance)))
        if hasattr(self, "summary") and getattr(self.wiz, "model_page", None) is not None:
            self.initializePage()

    def augment(self) -> dict[str, Any]:
        from busviewer.training.config import AugmentConfig

        a = self._recipe_config().augment
        base = AugmentConfig()
        return {
            "enabled": True,
            "crop": (a.crop if a.crop != "none" else base.crop) if self.aug_crop.isChecked() else "none",
            "crop_scale": a.crop_scale,
            "hflip": self.aug_flip.isChecked(),
            "brightness": (a.brightness or base.brightness) if self.aug_jitter.isChecked() else 0.0,
            "contrast": (a.contrast or base.contrast) if self.aug_jitter.isChecked() else 0.0,
            "scale": (a.scale or base.scale) if self.aug_scale.isChecked() else 0.0,
            "rotation": a.rotation,
            "gamma": a.gamma,
            "noise": a.noise,
            "blur": a.blur,
        }

    def config_values(self) -> dict[str, Any]:
        from busviewer.training.recipes import recipe_settings

        preset = {k: v for k, v in recipe_settings(self.recipe.currentData()).items() if k != "augment"}
        return preset | {
            "recipe": self.recipe.currentData(),
            "epochs": self.epochs.value(),
            "patience": self.patience.value(),
            "batch_size": self.batch_size.value(),
            "lr": float(self.lr.value()),
            "input_size": self.input_size.value(),
            "augment": self.augment(),
            **self.advanced.values(),
        }

    def validatePage(self) -> bool:
        import re

        name = self.name.text().strip()
        if name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", name):
            self.wiz.show_error(
                "Invalid model name", f"“{name}” cannot be used: use letters, digits, '.', '_' or '-' (no spaces)."
            )
            return False
        return self.wiz.confirm_start()


__all__ = ["AdvancedSettings", "SettingsPage"]
