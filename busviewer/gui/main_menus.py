"""Menus, keyboard shortcuts and the Model menu's actions of the main window.

A mixin of :class:`busviewer.gui.main_window.MainWindow` (its state and widgets are the window's)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QMenu,
)

from busviewer.core.store import Store
from busviewer.gui import workers
from busviewer.gui.ai_panel import ARCH_TITLES
from busviewer.gui.dialogs import ShortcutsDialog, show_about
from busviewer.services import models as model_service

log = logging.getLogger(__name__)


class MenusMixin:
    """Methods of :class:`~busviewer.gui.main_window.MainWindow`."""

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self.act_import_files = file.addAction("Import files…", self.import_files_dialog)
        self.act_import_files.setShortcut(QKeySequence("Ctrl+O"))
        self.act_import_folder = file.addAction("Import folder…", self.import_folder_dialog)
        self.act_import_folder.setShortcut(QKeySequence("Ctrl+Shift+O"))
        file.addSeparator()
        self.act_export = file.addAction("Export patient report (PDF)…", self.export_report_dialog)
        self.act_export.setShortcut(QKeySequence("Ctrl+E"))
        file.addSeparator()
        from busviewer.gui.pacs_dialogs import install_pacs  # PACS query/listen/send, de-identified export

        install_pacs(self, file)
        file.addSeparator()
        quit_action = file.addAction("Quit", self.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)

        model = bar.addMenu("&Model")
        self.active_menu = model.addMenu("Active model")
        self.arch_menus: dict[str, QMenu] = {}
        self.arch_groups: dict[str, QActionGroup] = {}
        for arch in ("ensemble", "vgg16"):
            sub = self.active_menu.addMenu(ARCH_TITLES[arch])
            sub.addAction("(loading…)").setEnabled(False)
            self.arch_menus[arch] = sub
        model.addSeparator()
        model.addAction("Train…", self.open_training_wizard)
        model.addAction("Import model…", self.import_model_dialog)
        model.addAction("Manage models…", self.open_model_manager)
        model.addSeparator()
        model.addAction("Reload models", self.load_models)

        view = bar.addMenu("&View")
        # lambdas: the viewer may be built after the menus (MainWindow(defer_viewer=True))
        view.addAction("Fit image", lambda: self.viewer.fit())
        view.addAction("Image 1:1", lambda: self.viewer.one_to_one())
        view.addAction("Reset window/level", lambda: self.viewer.reset_levels())
        view.addAction("Clear calipers", lambda: self.viewer.clear_caliper())
        view.addSeparator()
        self.act_compare = view.addAction("Compare two images (1x2)")
        self.act_compare.setCheckable(True)
        self.act_compare.setShortcut(QKeySequence("C"))
        self.act_compare.toggled.connect(lambda on: self.compare.set_on(on))

        from busviewer.gui.blinded_read import install_blinded_reading  # blinded first read, Reader vs AI

        install_blinded_reading(self, bar.addMenu("&Reading"))
        help_menu = bar.addMenu("&Help")
        help_menu.addAction("Keyboard shortcuts", self.show_shortcuts).setShortcut(QKeySequence("F1"))
        help_menu.addAction("About busviewer", lambda: show_about(self))

    def _build_shortcuts(self) -> None:
        def add(keys: Sequence[str], slot: Callable[[], Any]) -> None:
            for k in keys:
                sc = QShortcut(QKeySequence(k), self)
                sc.setContext(Qt.ShortcutContext.WindowShortcut)
                sc.activated.connect(slot)

        add(["B"], lambda: self.label_current_image("benign"))
        add(["M"], lambda: self.label_current_image("malignant"))
        add(["Left", "PgUp"], lambda: self.step_image(-1))
        add(["Right", "PgDown"], lambda: self.step_image(1))
        add(["Up", "Ctrl+PgUp"], lambda: self.step_patient(-1))
        add(["Down", "Ctrl+PgDown"], lambda: self.step_patient(1))
        add(["R"], self.toggle_reviewed)
        add(["A"], self.analyse)
        add(["G"], lambda: self.ai_panel.cam.enabled.toggle())
        add(["F"], lambda: self.viewer.fit())
        add(["1"], lambda: self.viewer.one_to_one())
        add(["Space"], lambda: self.viewer.toggle_play())
        add(["Ctrl+F"], self._focus_search)
        add(["Escape"], self._escape)

    def _fill_model_menus(self) -> None:
        for arch, menu in self.arch_menus.items():
            menu.clear()
            group = QActionGroup(menu)
            group.setExclusive(True)
            self.arch_groups[arch] = group
            entries = [e for e in self.model_entries if e.card.architecture == arch]
            if not entries:
                menu.addAction("(no model of this kind)").setEnabled(False)
            for e in entries:
                auc = e.card.test_metric("auc")
                text = f"{e.card.name} v{e.card.version}" + (f"  (test AUC {auc:.3f})" if auc is not None else "")
                text += "  [shipped]" if getattr(e, "location", "") == "shipped" else ""
                act = QAction(text, menu)
                act.setCheckable(True)
                act.setChecked(bool(e.active))
                act.triggered.connect(lambda _checked=False, n=e.card.name, v=e.card.version: self.activate_model(n, v))
                group.addAction(act)
                menu.addAction(act)

    def activate_model(self, name: str, version: int, confirm: bool | None = None) -> None:
        """Model menu: activate ``name`` v``version`` (audited); a model with poor or thin
        recorded test figures only after a confirmation (``confirm``: the answer)."""
        if self.registry is None:
            return
        entry = next((e for e in self.model_entries if e.card.name == name and e.card.version == version), None)
        question = model_service.activation_question(entry.card) if entry is not None else None
        if question is not None:
            if confirm is None:
                from busviewer.gui.model_actions import confirm_activation  # the model manager asks the same

                confirm = confirm_activation(self, question)
            if not confirm:
                self._fill_model_menus()  # the menu's check mark goes back to the active model
                return

        def task(registry: Any, store: Store) -> Any:
            return model_service.activate(registry, store, name, version).entry

        def done(_entry: Any) -> None:
            self.models_changed()

        workers.submit(
            task,
            self.registry,
            self.store,
            pool="ai",
            name="activate",
            on_result=done,
            on_error=lambda e: self.report_error("Model not activated", str(e)),
        )

    def models_changed(self) -> None:
        """The active models changed (menu, model manager, training wizard): reload them and
        the status bar; results of the previous models are no longer shown."""
        self.models_state = "idle"
        self.analyses.clear()
        self.cams.clear()
        self.rois.suggestion.forget()
        self.load_models()
        if self.patient_key:
            self._pending_analysis = True

    def import_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import model", str(Path.home()), "Model (*.safetensors *.json);;All files (*)"
        )
        if path:
            self.import_model(Path(path))

    def import_model(self, path: Path) -> workers.Task:
        """Model > Import model...: the same audited import as the model manager's."""

        def run(registry: Any, factory: Callable[[], Any], store: Store, p: Path) -> Any:
            return model_service.import_model(registry or factory(), store, p).entry

        def done(entry: Any) -> None:
            self.statusBar().showMessage(
                f"Imported model {entry.card.name} v{entry.card.version} ({entry.card.architecture}); "
                "choose it in Model > Active model",
                15000,
            )
            self.models_state = "idle" if self.models_state != "loading" else self.models_state
            self.load_models()

        return workers.submit(
            run,
            self.registry,
            self.registry_factory,
            self.store,
            path,
            pool="ai",
            name="import model",
            on_result=done,
            on_error=lambda e: self.report_error("Model not imported", str(e)),
        )

    def open_training_wizard(self) -> None:
        from busviewer.gui.training_wizard import open_wizard  # lazily: its pages are many widgets

        self._show_dialog(open_wizard(self.store, parent=self))

    def open_model_manager(self) -> None:
        from busviewer.gui.model_manager import open_manager

        self._show_dialog(open_manager(self.store, parent=self))

    def _show_dialog(self, widget: Any) -> None:
        """Show a non-modal tool window; its model changes reload the models here."""
        if widget is None:
            return
        self._optional_dialog = widget
        if not getattr(widget, "_busviewer_connected", False):
            widget._busviewer_connected = True
            widget.finished.connect(lambda *_: self.load_models())
            widget.modelsChanged.connect(self.models_changed)
            if hasattr(widget, "registryChanged"):
                widget.registryChanged.connect(lambda: self.load_models())
        widget.show()

    def show_shortcuts(self) -> None:
        dlg = ShortcutsDialog(self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()

    def _focus_search(self) -> None:
        self.worklist.search.setFocus()
        self.worklist.search.selectAll()

    def _escape(self) -> None:
        from busviewer.gui.viewer import MODE_NAVIGATE

        self.viewer.set_mode(MODE_NAVIGATE)
        if self.focusWidget() is self.worklist.search:
            self.worklist.table.setFocus()
