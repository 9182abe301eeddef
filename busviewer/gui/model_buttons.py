"""The model manager's row of action buttons: enabled for what applies to the selected model
version, with tooltips that say why not (the active model cannot be deleted, nothing to roll
back to, ...); their clicks go to ``model_actions.ModelActions``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QPushButton

from busviewer.gui.model_card_view import ARCH_SHORT
from busviewer.services.models import split_ref

if TYPE_CHECKING:
    from busviewer.gui.model_actions import ModelActions
    from busviewer.gui.model_manager import ModelManagerDialog


class ModelButtons:
    """Activate, Roll back, Use shipped default, Import, Export and Delete of a
    :class:`~busviewer.gui.model_manager.ModelManagerDialog`."""

    def __init__(self, dialog: ModelManagerDialog, actions: ModelActions) -> None:
        self.dialog = dialog
        self.activate_button = QPushButton("Activate", dialog)
        self.activate_button.setToolTip("Use this version to analyse patients (for its architecture)")
        # lambdas: clicked(bool) would pass checked=False as the ``confirm`` answer ("no")
        self.activate_button.clicked.connect(lambda: actions.activate_selected())
        self.rollback_button = QPushButton("Roll back", dialog)
        self.rollback_button.clicked.connect(actions.roll_back_selected)
        self.default_button = QPushButton("Use shipped default", dialog)
        self.default_button.clicked.connect(actions.use_default_selected)
        self.import_button = QPushButton("Import…", dialog)
        self.import_button.setToolTip("Add a model from a .safetensors file and its .json model card")
        self.import_button.clicked.connect(actions.import_dialog)
        self.export_button = QPushButton("Export…", dialog)
        self.export_button.setToolTip("Copy the weights and model card of this version to a folder")
        self.export_button.clicked.connect(actions.export_dialog)
        self.delete_button = QPushButton("Delete…", dialog)
        self.delete_button.clicked.connect(lambda: actions.delete_selected())
        self.buttons = (
            self.activate_button,
            self.rollback_button,
            self.default_button,
            self.import_button,
            self.export_button,
            self.delete_button,
        )

    def update(self) -> None:
        """Enable the buttons that apply to the selected version, with tooltips saying why not."""
        d = self.dialog
        e = d.selected()
        idle = not d.busy
        self.import_button.setEnabled(idle)
        for b in (
            self.activate_button,
            self.export_button,
            self.delete_button,
            self.rollback_button,
            self.default_button,
        ):
            b.setEnabled(False)
        if e is None or not idle:
            self.rollback_button.setText("Roll back")
            return
        self._update_default_button(e.architecture)
        arch = ARCH_SHORT.get(e.architecture, e.architecture)
        self.activate_button.setEnabled(not e.active)
        self.activate_button.setToolTip(
            f"This is already the active {arch} model"
            if e.active
            else f"Use {e.name} v{e.version} to analyse patients (replaces the active {arch} model)"
        )
        self.export_button.setEnabled(True)
        if e.active:
            self.delete_button.setToolTip(
                f"{e.name} v{e.version} is the active {arch} model and cannot be deleted; "
                "activate another version first"
            )
        elif e.location == "shipped":
            self.delete_button.setToolTip("Models shipped with busviewer cannot be deleted")
        else:
            self.delete_button.setEnabled(True)
            self.delete_button.setToolTip(f"Delete {e.name} v{e.version} (its weights and card) from this computer")
        target = d.rollback_ref(e.architecture)
        if target:
            name, version = split_ref(target)
            self.rollback_button.setText(f"Roll back {arch} to {name} v{version}")
            self.rollback_button.setEnabled(True)
            self.rollback_button.setToolTip(
                f"Activate {target} again: the {arch} model that was active before the current one"
            )
        else:
            self.rollback_button.setText("Roll back")
            self.rollback_button.setToolTip(f"No earlier active {arch} model is recorded")

    def _update_default_button(self, architecture: str) -> None:
        d = self.dialog
        arch = ARCH_SHORT.get(architecture, architecture)
        default = d.defaults.get(architecture)
        active = next((x.ref for x in d.entries if x.active and x.architecture == architecture), None)
        if default is None:
            self.default_button.setToolTip(f"No {arch} model is shipped with busviewer")
        elif default == active:
            self.default_button.setToolTip(f"The shipped {arch} model {default} is already the active one")
        else:
            self.default_button.setEnabled(True)
            self.default_button.setToolTip(
                f"Go back to the {arch} model shipped with busviewer ({default}) instead of {active or 'none'}"
            )
