"""Model > Manage models…: every model version with its card and test metrics; activate,
roll back, import, export and delete. The listing is here; the card is drawn by
``model_card_view``, the buttons are ``model_buttons``, what they do ``model_actions``.

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

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
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
from busviewer.gui.model_actions import ModelActions, ask_to_confirm, default_registry
from busviewer.gui.model_buttons import ModelButtons
from busviewer.gui.model_card_view import ARCH_SHORT, ARCH_TITLES, card_html, metric_text
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
    reg = registry if registry is not None else (factory() if factory else default_registry())
    entries = list(reg.list())
    audit = store.audit_log(entity="model") if store is not None else []
    stacks = {arch: activation_history(audit, arch) for arch in ARCH_TITLES}
    defaults = {arch: d.ref for arch in ARCH_TITLES if (d := reg.shipped_default(arch)) is not None}
    return Listing(reg, entries, stacks, defaults)


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

        self.model_actions = ModelActions(self)
        self.action_buttons = a = ModelButtons(self, self.model_actions)
        self.activate_button, self.rollback_button, self.default_button = (
            a.activate_button,
            a.rollback_button,
            a.default_button,
        )
        self.import_button, self.export_button, self.delete_button = a.import_button, a.export_button, a.delete_button
        close = QPushButton("Close", self)
        close.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        for b in self.action_buttons.buttons:
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

    def _update_buttons(self) -> None:
        self.action_buttons.update()

    def rollback_ref(self, architecture: str) -> str | None:
        current = next((e.ref for e in self.entries if e.active and e.architecture == architecture), None)
        available = {e.ref for e in self.entries}
        return rollback_target(self.stacks.get(architecture, []), current, available)

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

    def activate_selected(self, confirm: bool | None = None) -> workers.Task | None:
        """Activate the selected version (see :meth:`ModelActions.activate_selected`)."""
        return self.model_actions.activate_selected(confirm)

    def roll_back_selected(self) -> workers.Task | None:
        return self.model_actions.roll_back_selected()

    def roll_back(self, architecture: str) -> workers.Task | None:
        """Activate again the ``architecture`` model that was active before the current one."""
        return self.model_actions.roll_back(architecture)

    def use_default_selected(self) -> workers.Task | None:
        return self.model_actions.use_default_selected()

    def use_default(self, architecture: str) -> workers.Task | None:
        """Make the shipped default of ``architecture`` active again (audited)."""
        return self.model_actions.use_default(architecture)

    def delete_selected(self, confirm: bool | None = None) -> workers.Task | None:
        """Delete the selected user model after a confirmation (``confirm``: the answer)."""
        return self.model_actions.delete_selected(confirm)

    def import_dialog(self) -> None:
        self.model_actions.import_dialog()

    def import_file(self, path: str | Path) -> workers.Task:
        """Import a model (weights or card); an error names the file."""
        return self.model_actions.import_file(path)

    def export_dialog(self) -> None:
        self.model_actions.export_dialog()

    def export_to(self, folder: Path, overwrite: bool = False) -> workers.Task | None:
        """Export the selected version to ``folder`` (existing files replaced only after asking)."""
        return self.model_actions.export_to(folder, overwrite)

    # ---------------------------------------------------------------- helpers
    def _confirm(self, title: str, text: str) -> bool:
        """Ask before a delete or an overwrite (tests and scripts may replace this)."""
        return ask_to_confirm(self, title, text)

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
