"""The model manager's actions (activate, roll back, use the shipped default, import, export,
delete, with their confirmations), each in a worker; and the activation confirmation that the
main window's Model menu asks too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from busviewer.gui import workers
from busviewer.gui.model_card_view import ARCH_SHORT
from busviewer.services import models as model_service
from busviewer.services.models import split_ref

if TYPE_CHECKING:
    from busviewer.gui.model_manager import ModelManagerDialog


def ask_to_confirm(parent: QWidget | None, title: str, text: str) -> bool:
    """Ask a yes/no question in a warning box whose default is Cancel; True for Yes."""
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        title,
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        parent,
    )
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    return box.exec() == QMessageBox.StandardButton.Yes


def confirm_activation(parent: QWidget | None, question: str) -> bool:
    """Ask before activating a model with poor or thin test figures (``question``:
    ``services.models.activation_question``); the manager and the Model menu both ask this."""
    return ask_to_confirm(parent, "Activate this model?", question)


def default_registry() -> Any:
    """The registry of this computer (imports torch: call it in a worker)."""
    from busviewer.ai.registry import ModelRegistry

    return ModelRegistry()


class ModelActions:
    """What the buttons of a :class:`~busviewer.gui.model_manager.ModelManagerDialog` do (the
    buttons are ``model_buttons.ModelButtons``); the dialog keeps the listing and the selection."""

    def __init__(self, dialog: ModelManagerDialog) -> None:
        self.dialog = dialog

    def _start(self, text: str) -> None:
        self.dialog.busy = True
        self.dialog._update_buttons()
        self.dialog.status.setText(text)

    def _run_action(
        self,
        what: str,
        fn: Callable[..., Any],
        *args: Any,
        select_ref: str | None = None,
        changes_active: bool = True,
        pool: str = "ai",
    ) -> workers.Task:
        d = self.dialog
        self._start(f"{what}…")

        def ok(result: Any) -> None:
            d.busy = False
            msg = result if isinstance(result, str) else what
            d.status.setText(msg)
            ref = select_ref(result) if callable(select_ref) else select_ref
            d.refresh(ref)
            (d.modelsChanged if changes_active else d.registryChanged).emit()
            d.actionDone.emit(what)

        def bad(exc: BaseException) -> None:
            d.busy = False
            d._failed(what.split(" ")[0] + " failed", exc)
            d._update_buttons()
            d.actionDone.emit(what)

        return d._submit(fn, *args, pool=pool, name=what, on_result=ok, on_error=bad)

    def activate_selected(self, confirm: bool | None = None) -> workers.Task | None:
        """Activate the selected version; one with poor or thin recorded test figures only
        after a confirmation (``confirm``: the answer, for scripts and tests)."""
        d = self.dialog
        e = d.selected()
        if e is None or e.active or d.registry is None:
            return None
        question = model_service.activation_question(e.card)
        if question is not None:
            if confirm is None:
                confirm = confirm_activation(d, question)
            if not confirm:
                d.status.setText(f"{e.name} v{e.version} not activated.")
                return None

        def run(registry: Any, store: Any, name: str, version: int) -> str:
            entry, prev = model_service.activate(registry, store, name, version)
            return f"{entry.name} v{entry.version} is now the active {ARCH_SHORT.get(entry.architecture)} model" + (
                f" (was {prev})" if prev else ""
            )

        return self._run_action(
            f"Activating {e.name} v{e.version}", run, d.registry, d.store, e.name, e.version, select_ref=e.ref
        )

    def roll_back_selected(self) -> workers.Task | None:
        e = self.dialog.selected()
        if e is None or self.dialog.registry is None:
            return None
        return self.roll_back(e.architecture)

    def roll_back(self, architecture: str) -> workers.Task | None:
        """Activate again the ``architecture`` model that was active before the current one."""
        d = self.dialog
        target = d.rollback_ref(architecture)
        if target is None:
            return None
        name, version = split_ref(target)

        def run(registry: Any, store: Any) -> str:
            entry, prev = model_service.activate(
                registry, store, name, version, action=model_service.AuditAction.ROLLBACK_MODEL
            )
            return (
                f"Rolled back: {entry.name} v{entry.version} is the active {ARCH_SHORT.get(entry.architecture)} "
                f"model again (instead of {prev})"
            )

        return self._run_action(f"Rolling back to {name} v{version}", run, d.registry, d.store, select_ref=target)

    def use_default_selected(self) -> workers.Task | None:
        d = self.dialog
        e = d.selected()
        if e is None or d.registry is None or d.defaults.get(e.architecture) is None:
            return None
        return self.use_default(e.architecture)

    def use_default(self, architecture: str) -> workers.Task | None:
        """Make the shipped default of ``architecture`` active again (audited)."""
        d = self.dialog
        target = d.defaults.get(architecture)
        if target is None or d.registry is None:
            return None

        def run(registry: Any, store: Any) -> str:
            entry, prev = model_service.use_default(registry, store, architecture)
            return (
                f"{entry.name} v{entry.version}, shipped with busviewer, is the active "
                f"{ARCH_SHORT.get(architecture)} model again" + (f" (instead of {prev})" if prev else "")
            )

        return self._run_action(
            f"Going back to the shipped {ARCH_SHORT.get(architecture)} model",
            run,
            d.registry,
            d.store,
            select_ref=target,
        )

    def delete_selected(self, confirm: bool | None = None) -> workers.Task | None:
        """Delete the selected user model after a confirmation (``confirm``: the answer)."""
        d = self.dialog
        e = d.selected()
        if e is None or e.active or e.location == "shipped" or d.registry is None:
            return None
        if confirm is None:
            confirm = d._confirm(
                "Delete model version",
                f"Delete {e.name} v{e.version} ({ARCH_SHORT.get(e.architecture)})?\n\nIts weights and model card are "
                f"removed from this computer:\n{e.weights_path}\n\nExport it first if you may need it again.",
            )
        if not confirm:
            return None

        def run(registry: Any, store: Any, name: str, version: int) -> str:
            return f"Deleted {model_service.delete_model(registry, store, name, version)}"

        return self._run_action(
            f"Deleting {e.name} v{e.version}", run, d.registry, d.store, e.name, e.version, changes_active=False
        )

    def import_dialog(self) -> None:
        last = QSettings().value("paths/model_import", str(Path.home()))
        title, kinds = "Import model (weights or model card)", "Model (*.safetensors *.json);;All files (*)"
        path, _ = QFileDialog.getOpenFileName(self.dialog, title, str(last), kinds)
        if path:
            QSettings().setValue("paths/model_import", str(Path(path).parent))
            self.import_file(Path(path))

    def import_file(self, path: str | Path) -> workers.Task:
        """Import a model (weights or card); an error names the file."""
        d = self.dialog
        path = Path(path)

        def run(registry: Any, factory: Callable[[], Any] | None, store: Any, p: Path) -> Any:
            reg = registry if registry is not None else (factory() if factory else default_registry())
            return model_service.import_model(reg, store, p).entry

        self._start(f"Importing {path.name}…")

        def ok(entry: Any) -> None:
            d.busy = False
            d.status.setText(
                f"Imported {entry.name} v{entry.version} ({ARCH_SHORT.get(entry.architecture)}); "
                "select it and press Activate to use it."
            )
            d.refresh(entry.ref)
            d.registryChanged.emit()
            d.actionDone.emit("import")

        def bad(exc: BaseException) -> None:
            d.busy = False
            text = str(exc)
            if str(path) not in text and path.name not in text:
                text = f"{path}: {text}"
            d._show_error(f"Model not imported: {path.name}", text)
            d._update_buttons()
            d.actionDone.emit("import")

        return d._submit(
            run,
            d.registry,
            d.registry_factory,
            d.store,
            path,
            pool="ai",
            name="import model",
            on_result=ok,
            on_error=bad,
        )

    def export_dialog(self) -> None:
        e = self.dialog.selected()
        if e is None:
            return
        last = QSettings().value("paths/model_export", str(Path.home()))
        folder = QFileDialog.getExistingDirectory(self.dialog, f"Export {e.name} v{e.version} to folder", str(last))
        if folder:
            QSettings().setValue("paths/model_export", folder)
            self.export_to(Path(folder))

    def export_to(self, folder: Path, overwrite: bool = False) -> workers.Task | None:
        """Export the selected version to ``folder``; existing files are replaced only after asking."""
        d = self.dialog
        e = d.selected()
        if e is None or d.registry is None:
            return None

        def run(registry: Any, store: Any, name: str, version: int, dest: Path, ow: bool) -> Any:
            try:
                return model_service.export_model(registry, store, name, dest, version=version, overwrite=ow)
            except FileExistsError as exc:
                return exc

        def ok(result: Any) -> None:
            d.busy = False
            d._update_buttons()
            if isinstance(result, FileExistsError):
                if d._confirm("Replace files?", f"{result}.\n\nReplace the existing files?"):
                    self.export_to(folder, overwrite=True)
                else:
                    d.status.setText("Export cancelled.")
                return
            w, c = result
            d.status.setText(f"Exported {e.name} v{e.version} to {Path(w).parent} ({Path(w).name}, {Path(c).name})")
            d.actionDone.emit("export")

        def bad(exc: BaseException) -> None:
            d.busy = False
            d._show_error("Model not exported", f"{folder}: {exc}")
            d._update_buttons()
            d.actionDone.emit("export")

        self._start(f"Exporting {e.name} v{e.version}…")
        return d._submit(
            run,
            d.registry,
            d.store,
            e.name,
            e.version,
            folder,
            overwrite,
            name="export model",
            on_result=ok,
            on_error=bad,
        )
