"""Model > Manage models…: every model version with its card and test metrics; activate,
roll back, import, export and delete. The card is drawn by ``model_card_view``.

The registry (``busviewer.ai.registry``, which imports torch) is only touched in workers.
Activations are audited in the store (``Store.log``); the audit log also serves as the
activation history that *Roll back* walks back through:

- ``activate_model`` / ``promote_model``: ``field`` = architecture, ``old_value`` = the
  previously active ``name:version``, ``new_value`` = the newly active one;
- ``rollback_model``: the same, for a step back;
- ``use_default_model``: the same, back to the shipped default (*Use shipped default*:
  the user's choice is forgotten, so the newest shipped model of that architecture is used).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from busviewer.gui import workers
from busviewer.gui.dialogs import message_box
from busviewer.gui.model_card_view import ARCH_SHORT, ARCH_TITLES, card_html, metric_text
from busviewer.services import models as model_service
from busviewer.services.models import activation_history, rollback_target, split_ref
from busviewer.services.training_runs import local_time

log = logging.getLogger(__name__)


@dataclass
class Listing:
    registry: Any
    entries: list[Any]
    stacks: dict[str, list[str]] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)  # architecture -> shipped default ref


def task_list(registry: Any, factory: Callable[[], Any] | None, store: Any) -> Listing:
    reg = registry if registry is not None else (factory() if factory else _default_registry())
    entries = list(reg.list())
    audit = store.audit_log(entity="model") if store is not None else []
    stacks = {arch: activation_history(audit, arch) for arch in ARCH_TITLES}
    defaults = {arch: d.ref for arch in ARCH_TITLES if (d := reg.shipped_default(arch)) is not None}
    return Listing(reg, entries, stacks, defaults)


def _default_registry() -> Any:
    from busviewer.ai.registry import ModelRegistry

    return ModelRegistry()


# ------------------------------------------------------------------- the dialog
COLUMNS = ("Model", "Architecture", "Active", "Created", "AUC", "Sensitivity", "Specificity", "Origin")
METRIC_TIP = "On the held-out test patients of the model's own training run, per image"


class ModelManagerDialog(QDialog):
    """See the module docstring. Signals let the main window (and tests) follow changes."""

    modelsChanged = Signal()  # an active model changed
    registryChanged = Signal()  # versions were added or removed (the active ones are unchanged)
    refreshed = Signal()
    errorShown = Signal(str, str)
    actionDone = Signal(str)

    def __init__(
        self,
        store: Any,
        parent: QWidget | None = None,
        *,
        registry: Any = None,
        registry_factory: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.registry = registry if registry is not None else getattr(parent, "registry", None)
        self.registry_factory = registry_factory or getattr(parent, "registry_factory", None)
        self.entries: list[Any] = []
        self.stacks: dict[str, list[str]] = {}
        self.defaults: dict[str, str] = {}
        self.busy = False
        self.last_error: tuple[str, str] | None = None
        self.error_box: QMessageBox | None = None
        self._tasks: list[workers.Task] = []
        self.setWindowTitle("Models — busviewer")
        self.setModal(False)
        self._build()
        self.resize(1280, 680)
        self.refresh()

    # ----------------------------------------------------------------- layout
    def _build(self) -> None:
        intro = QLabel(
            "Each line is one model version. The <b>active</b> version of each architecture is the one used "
            "to analyse patients. Versions are never changed; training adds a new version.",
            self,
        )
        intro.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.details = QTextBrowser(self)
        self.details.setOpenExternalLinks(False)
        self.details.setMinimumWidth(380)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self.table)
        split.addWidget(self.details)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        split.setSizes([820, 460])

        self.activate_button = QPushButton("Activate", self)
        self.activate_button.setToolTip("Use this version to analyse patients (for its architecture)")
        self.activate_button.clicked.connect(self.activate_selected)
        self.rollback_button = QPushButton("Roll back", self)
        self.rollback_button.clicked.connect(self.roll_back_selected)
        self.default_button = QPushButton("Use shipped default", self)
        self.default_button.clicked.connect(self.use_default_selected)
        self.import_button = QPushButton("Import…", self)
        self.import_button.setToolTip("Add a model from a .safetensors file and its .json model card")
        self.import_button.clicked.connect(self.import_dialog)
        self.export_button = QPushButton("Export…", self)
        self.export_button.setToolTip("Copy the weights and model card of this version to a folder")
        self.export_button.clicked.connect(self.export_dialog)
        self.delete_button = QPushButton("Delete…", self)
        self.delete_button.clicked.connect(self.delete_selected)
        close = QPushButton("Close", self)
        close.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        for b in (
            self.activate_button,
            self.rollback_button,
            self.default_button,
            self.import_button,
            self.export_button,
            self.delete_button,
        ):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(close)
        self.status = QLabel("Loading the model list…", self)
        self.status.setObjectName("managerStatus")
        self.status.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)
        lay.addLayout(buttons)
        self._update_buttons()

    # ---------------------------------------------------------------- listing
    def refresh(self, select_ref: str | None = None) -> workers.Task:
        keep = select_ref or (self.selected().ref if self.selected() is not None else None)
        self.busy = True
        self._update_buttons()
        return self._submit(
            task_list,
            self.registry,
            self.registry_factory,
            self.store,
            name="list models",
            on_result=lambda res: self._listed(res, keep),
            on_error=lambda e: self._failed("The model list could not be read", e),
        )

    def _listed(self, res: Listing, keep: str | None) -> None:
        self.registry, self.entries, self.stacks, self.defaults = res.registry, res.entries, res.stacks, res.defaults
        self.busy = False
        t = self.table
        t.setSortingEnabled(False)
        t.setRowCount(len(self.entries))
        row_to_select = 0
        for r, e in enumerate(self.entries):
            c = e.card
            img, _pat = c.test_metrics()
            origin = (
                "shipped"
                if e.location == "shipped"
                else ("trained here" if c.training.get("run_dir") else "added here")
            )
            values = [
                f"{c.name} v{c.version}",
                ARCH_SHORT.get(c.architecture, c.architecture),
                "● active" if e.active else "",
                local_time(c.created),
                metric_text(img.get("auc")),
                metric_text(img.get("sensitivity")),
                metric_text(img.get("specificity")),
                origin,
            ]
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setData(Qt.ItemDataRole.UserRole, e.ref)
                    item.setToolTip(c.description or e.ref)
                if col in (4, 5, 6):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    item.setToolTip(METRIC_TIP)
                if e.active:
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                t.setItem(r, col, item)
            if e.ref == keep:
                row_to_select = r
        if self.entries:
            t.selectRow(row_to_select)
        active = [
            f"{ARCH_SHORT.get(a, a)}: {e.name} v{e.version}"
            for a in ARCH_TITLES
            for e in self.entries
            if e.active and e.architecture == a
        ]
        self.status.setText(f"{len(self.entries)} model version(s). Active — " + ("; ".join(active) or "none"))
        self._selection_changed()
        self.refreshed.emit()

    def row_of(self, ref: str) -> int:
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == ref:
                return r
        return -1

    def select(self, ref: str) -> None:
        r = self.row_of(ref)
        if r >= 0:
            self.table.selectRow(r)

    def selected(self) -> Any:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        ref = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return next((e for e in self.entries if e.ref == ref), None)

    def _selection_changed(self) -> None:
        e = self.selected()
        self.details.setHtml(card_html(e) if e is not None else "<p>Select a model version.</p>")
        self._update_buttons()

    def rollback_ref(self, architecture: str) -> str | None:
        current = next((e.ref for e in self.entries if e.active and e.architecture == architecture), None)
        available = {e.ref for e in self.entries}
        return rollback_target(self.stacks.get(architecture, []), current, available)

    def _update_buttons(self) -> None:
        e = self.selected()
        idle = not self.busy
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
        target = self.rollback_ref(e.architecture)
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
        arch = ARCH_SHORT.get(architecture, architecture)
        default = self.defaults.get(architecture)
        active = next((x.ref for x in self.entries if x.active and x.architecture == architecture), None)
        if default is None:
            self.default_button.setToolTip(f"No {arch} model is shipped with busviewer")
        elif default == active:
            self.default_button.setToolTip(f"The shipped {arch} model {default} is already the active one")
        else:
            self.default_button.setEnabled(True)
            self.default_button.setToolTip(
                f"Go back to the {arch} model shipped with busviewer ({default}) instead of {active or 'none'}"
            )

    # ---------------------------------------------------------------- actions
    def _submit(self, fn: Callable[..., Any], *args: Any, pool: str = "io", **kwargs: Any) -> workers.Task:
        finished = kwargs.pop("on_finished", None)

        def done() -> None:
            self._tasks = [t for t in self._tasks if not t.done]
            if finished:
                finished()

        task = workers.submit(fn, *args, pool=pool, on_finished=done, **kwargs)
        self._tasks.append(task)
        return task

    def _run_action(
        self,
        what: str,
        fn: Callable[..., Any],
        *args: Any,
        select_ref: str | None = None,
        changes_active: bool = True,
        pool: str = "ai",
    ) -> workers.Task:
        self.busy = True
        self._update_buttons()
        self.status.setText(f"{what}…")

        def ok(result: Any) -> None:
            self.busy = False
            msg = result if isinstance(result, str) else what
            self.status.setText(msg)
            ref = select_ref(result) if callable(select_ref) else select_ref
            self.refresh(ref)
            (self.modelsChanged if changes_active else self.registryChanged).emit()
            self.actionDone.emit(what)

        def bad(exc: BaseException) -> None:
            self.busy = False
            self._failed(what.split(" ")[0] + " failed", exc)
            self._update_buttons()
            self.actionDone.emit(what)

        return self._submit(fn, *args, pool=pool, name=what, on_result=ok, on_error=bad)

    def activate_selected(self, confirm: bool | None = None) -> workers.Task | None:
        """Activate the selected version; one with poor or thin recorded test figures only
        after a confirmation (``confirm``: the answer, for scripts and tests)."""
        e = self.selected()
        if e is None or e.active or self.registry is None:
            return None
        question = model_service.activation_question(e.card)
        if question is not None:
            if confirm is None:
                confirm = self._confirm("Activate this model?", question)
            if not confirm:
                self.status.setText(f"{e.name} v{e.version} not activated.")
                return None

        def run(registry: Any, store: Any, name: str, version: int) -> str:
            entry, prev = model_service.activate(registry, store, name, version)
            return f"{entry.name} v{entry.version} is now the active {ARCH_SHORT.get(entry.architecture)} model" + (
                f" (was {prev})" if prev else ""
            )

        return self._run_action(
            f"Activating {e.name} v{e.version}", run, self.registry, self.store, e.name, e.version, select_ref=e.ref
        )

    def roll_back_selected(self) -> workers.Task | None:
        e = self.selected()
        if e is None or self.registry is None:
            return None
        return self.roll_back(e.architecture)

    def roll_back(self, architecture: str) -> workers.Task | None:
        target = self.rollback_ref(architecture)
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

        return self._run_action(f"Rolling back to {name} v{version}", run, self.registry, self.store, select_ref=target)

    def use_default_selected(self) -> workers.Task | None:
        e = self.selected()
        if e is None or self.registry is None or self.defaults.get(e.architecture) is None:
            return None
        return self.use_default(e.architecture)

    def use_default(self, architecture: str) -> workers.Task | None:
        """Make the shipped default of ``architecture`` active again (audited)."""
        target = self.defaults.get(architecture)
        if target is None or self.registry is None:
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
            self.registry,
            self.store,
            select_ref=target,
        )

    def delete_selected(self, confirm: bool | None = None) -> workers.Task | None:
        e = self.selected()
        if e is None or e.active or e.location == "shipped" or self.registry is None:
            return None
        if confirm is None:
            confirm = self._confirm(
                "Delete model version",
                f"Delete {e.name} v{e.version} ({ARCH_SHORT.get(e.architecture)})?\n\nIts weights and model card are "
                f"removed from this computer:\n{e.weights_path}\n\nExport it first if you may need it again.",
            )
        if not confirm:
            return None

        def run(registry: Any, store: Any, name: str, version: int) -> str:
            return f"Deleted {model_service.delete_model(registry, store, name, version)}"

        return self._run_action(
            f"Deleting {e.name} v{e.version}", run, self.registry, self.store, e.name, e.version, changes_active=False
        )

    def import_dialog(self) -> None:
        last = QSettings().value("paths/model_import", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(
            self, "Import model (weights or model card)", str(last), "Model (*.safetensors *.json);;All files (*)"
        )
        if path:
            QSettings().setValue("paths/model_import", str(Path(path).parent))
            self.import_file(Path(path))

    def import_file(self, path: str | Path) -> workers.Task:
        path = Path(path)

        def run(registry: Any, factory: Callable[[], Any] | None, store: Any, p: Path) -> Any:
            reg = registry if registry is not None else (factory() if factory else _default_registry())
            return model_service.import_model(reg, store, p).entry

        self.busy = True
        self._update_buttons()
        self.status.setText(f"Importing {path.name}…")

        def ok(entry: Any) -> None:
            self.busy = False
            self.status.setText(
                f"Imported {entry.name} v{entry.version} ({ARCH_SHORT.get(entry.architecture)}); "
                "select it and press Activate to use it."
            )
            self.refresh(entry.ref)
            self.registryChanged.emit()
            self.actionDone.emit("import")

        def bad(exc: BaseException) -> None:
            self.busy = False
            text = str(exc)
            if str(path) not in text and path.name not in text:
                text = f"{path}: {text}"
            self._show_error(f"Model not imported: {path.name}", text)
            self._update_buttons()
            self.actionDone.emit("import")

        return self._submit(
            run,
            self.registry,
            self.registry_factory,
            self.store,
            path,
            pool="ai",
            name="import model",
            on_result=ok,
            on_error=bad,
        )

    def export_dialog(self) -> None:
        e = self.selected()
        if e is None:
            return
        last = QSettings().value("paths/model_export", str(Path.home()))
        folder = QFileDialog.getExistingDirectory(self, f"Export {e.name} v{e.version} to folder", str(last))
        if folder:
            QSettings().setValue("paths/model_export", folder)
            self.export_to(Path(folder))

    def export_to(self, folder: Path, overwrite: bool = False) -> workers.Task | None:
        e = self.selected()
        if e is None or self.registry is None:
            return None

        def run(registry: Any, store: Any, name: str, version: int, dest: Path, ow: bool) -> Any:
            try:
                return model_service.export_model(registry, store, name, dest, version=version, overwrite=ow)
            except FileExistsError as exc:
                return exc

        def ok(result: Any) -> None:
            self.busy = False
            self._update_buttons()
            if isinstance(result, FileExistsError):
                if self._confirm("Replace files?", f"{result}.\n\nReplace the existing files?"):
                    self.export_to(folder, overwrite=True)
                else:
                    self.status.setText("Export cancelled.")
                return
            w, c = result
            self.status.setText(f"Exported {e.name} v{e.version} to {Path(w).parent} ({Path(w).name}, {Path(c).name})")
            self.actionDone.emit("export")

        def bad(exc: BaseException) -> None:
            self.busy = False
            self._show_error("Model not exported", f"{folder}: {exc}")
            self._update_buttons()
            self.actionDone.emit("export")

        self.busy = True
        self._update_buttons()
        self.status.setText(f"Exporting {e.name} v{e.version}…")
        return self._submit(
            run,
            self.registry,
            self.store,
            e.name,
            e.version,
            folder,
            overwrite,
            name="export model",
            on_result=ok,
            on_error=bad,
        )

    # ---------------------------------------------------------------- helpers
    def _confirm(self, title: str, text: str) -> bool:
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        return box.exec() == QMessageBox.StandardButton.Yes

    def _failed(self, title: str, exc: BaseException) -> None:
        self.busy = False
        self._show_error(title, str(exc))

    def _show_error(self, title: str, text: str) -> None:
        log.warning("%s: %s", title, text)
        self.last_error = (title, text)
        self.status.setText(f"{title}: {text.splitlines()[0] if text else ''}")
        self.error_box = message_box(self, title, text, icon=QMessageBox.Icon.Critical)
        self.errorShown.emit(title, text)


def open_manager(store: Any, parent: QWidget | None = None, **kwargs: Any) -> ModelManagerDialog:
    """Model > Manage models…: one dialog per window, kept (hidden) between uses."""
    existing = getattr(parent, "_model_manager", None) if parent is not None else None
    if isinstance(existing, ModelManagerDialog) and existing.store is store:
        if not existing.isVisible():
            existing.refresh()
        existing.raise_()
        existing.activateWindow()
        return existing
    dlg = ModelManagerDialog(store, parent, **kwargs)
    if parent is not None:
        parent._model_manager = dlg  # type: ignore[attr-defined]
    return dlg


__all__ = ["ModelManagerDialog", "card_html", "open_manager", "split_ref"]
