"""Model > Train…: a non-modal wizard that retrains a model from the local store.

1. Data: label sources, date and patient filters, counts per class and patient, warnings
   (too few patients, class imbalance, conflicting labels, duplicates across patients).
2. Model: ensemble or VGG-16, B-mode input, start from the active model / ImageNet / random.
3. Validation: hold-out or k-fold, and the locked test set
   (:mod:`busviewer.training.locked_test`) whose patients are the test part of every run.
4. Settings: the seeds' defaults, an Advanced section for the rest.
5. Run: live loss / AUC curves, progress with ETA, cancel and resume
   (:func:`busviewer.training.run_training` / ``resume_training`` in a worker; its events
   reach the GUI thread through the worker's signals).
6. Results: ROC, confusion matrix and metrics next to the active model evaluated on the
   same locked test patients; Promote (activate, audited) or Discard (delete the version).

Nothing here runs torch on the GUI thread: the registry, training, evaluation, ImageNet
and device checks all run in workers (:mod:`busviewer.gui.workers`). Training uses an
extra thread of the I/O pool so decoding and store queries stay responsive meanwhile.

The wizard holds the state its pages share (:class:`busviewer.gui.wizard_common.WizardHost`
is how they see it) and the navigation, questions and closing; the rest is by topic:
``wizard_*_page.py`` (one module per page), :mod:`~busviewer.gui.wizard_run_control` (the
training run), :mod:`~busviewer.gui.wizard_actions` (locked test set, promote / discard) and
:mod:`~busviewer.gui.wizard_tasks` (the worker bodies).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMessageBox, QWidget, QWizard

from busviewer.gui import workers
from busviewer.gui.dialogs import message_box
from busviewer.gui.wizard_actions import LockedTestActions, ResultActions
from busviewer.gui.wizard_common import PAGE_DATA, PAGE_MODEL, PAGE_RESULTS, PAGE_RUN, PAGE_SETTINGS, PAGE_VALIDATION
from busviewer.gui.wizard_data_page import DataPage
from busviewer.gui.wizard_model_page import ModelPage
from busviewer.gui.wizard_results_page import ResultsPage
from busviewer.gui.wizard_run_control import RunControl
from busviewer.gui.wizard_run_page import RunPage
from busviewer.gui.wizard_settings_page import SettingsPage
from busviewer.gui.wizard_tasks import Env, task_env, task_near_duplicates
from busviewer.gui.wizard_validation_page import ValidationPage
from busviewer.services import training_runs as runs

log = logging.getLogger(__name__)


class TrainingWizard(QWizard):
    """See the module docstring. The signals let the main window and tests follow it."""

    envReady = Signal(object)
    dataSummarized = Signal(object)
    nearDuplicatesDone = Signal(object)
    lockedChanged = Signal()
    runEvent = Signal(object)
    runFinished = Signal(object)
    runCancelled = Signal(object)
    runFailed = Signal(str)
    comparisonReady = Signal(object)
    decisionDone = Signal(str)
    modelsChanged = Signal()  # an active model changed (promote)
    registryChanged = Signal()  # a version was added (training) or removed (discard)
    errorShown = Signal(str, str)

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
        self.env: Env | None = None
        self.locked: Any = None
        self.locked_error = ""
        self.locked_busy = False
        self.outcome: dict[str, Any] | None = None
        self.run_dir: Path | None = None
        self.errors: list[tuple[str, str]] = []
        self._tasks: list[workers.Task] = []
        self._scan_task: workers.Task | None = None
        self.run_control = RunControl(self)
        self.locked_actions = LockedTestActions(self)
        self.result_actions = ResultActions(self)

        self.setWindowTitle("Train a model — busviewer (research use only)")
        self.setModal(False)
        self.setWindowModality(Qt.WindowModality.NonModal)
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setOption(QWizard.WizardOption.NoDefaultButton, True)
        self.setOption(QWizard.WizardOption.DisabledBackButtonOnLastPage, True)  # results: decided, not redone
        self.setButtonText(QWizard.WizardButton.CancelButton, "Close")
        self.data_page = DataPage(self)
        self.model_page = ModelPage(self)
        self.validation_page = ValidationPage(self)
        self.settings_page = SettingsPage(self)
        self.run_page = RunPage(self)
        self.results_page = ResultsPage(self)
        for pid, page in (
            (PAGE_DATA, self.data_page),
            (PAGE_MODEL, self.model_page),
            (PAGE_VALIDATION, self.validation_page),
            (PAGE_SETTINGS, self.settings_page),
            (PAGE_RUN, self.run_page),
            (PAGE_RESULTS, self.results_page),
        ):
            self.setPage(pid, page)
        self.setStartId(PAGE_DATA)
        self.resize(1220, 860)
        self.start_env()

    # ------------------------------------------------------------------ helpers
    def submit(self, fn: Callable[..., Any], *args: Any, pool: str = "io", **kwargs: Any) -> workers.Task:
        """``workers.submit``, remembering the task so closing the wizard can cancel it."""
        finished, result = kwargs.pop("on_finished", None), kwargs.pop("on_result", None)
        mine: list[workers.Task] = []

        def got(value: Any) -> None:  # a view task cancelled by closing: its widgets may be gone
            if result is not None and not (mine[0].cancelled and mine[0].name in self._VIEW_TASKS):
                result(value)

        def done() -> None:
            self._tasks = [t for t in self._tasks if not t.done]
            if finished is not None:
                finished()

        task = workers.submit(fn, *args, pool=pool, on_result=got, on_finished=done, **kwargs)
        mine.append(task)
        self._tasks.append(task)
        return task

    def confirm(self, title: str, text: str, yes: str = "Yes") -> bool:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.NoButton, self)
        ok = box.addButton(yes, QMessageBox.ButtonRole.DestructiveRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.exec()
        return box.clickedButton() is ok

    def show_error(self, title: str, text: str) -> None:
        log.warning("%s: %s", title, text)
        self.errors.append((title, text))
        message_box(self, title, text, icon=QMessageBox.Icon.Critical)
        self.errorShown.emit(title, text)

    def describe_device(self, device: str) -> str:
        if self.env is not None:
            for key in (device, device.split(":")[0]):
                if key in self.env.device_names:
                    return self.env.device_names[key]
        return device

    def training_running(self) -> bool:
        return self.run_control.running()

    # -------------------------------------------------------------- environment
    def start_env(self) -> workers.Task:
        return self.submit(
            task_env,
            self.registry,
            self.registry_factory,
            name="wizard environment",
            on_result=self._env_ready,
            on_error=lambda e: self.show_error("The models could not be listed", str(e)),
        )

    def _env_ready(self, env: Env) -> None:
        self.env = env
        self.registry = env.registry
        self.locked, self.locked_error = env.locked, env.locked_error
        self.data_page.set_resumable(env.resumable)
        self.settings_page.set_devices(
            env.devices, env.device_names.get(env.default_device.split(":")[0], env.default_device)
        )
        self.model_page._update()
        self.lockedChanged.emit()
        self.envReady.emit(env)

    def refresh_resumable(self) -> None:
        self.submit(runs.list_resumable_runs, name="resumable runs", on_result=self.data_page.set_resumable)

    # ------------------------------------------------------------ data checks
    def start_near_duplicate_scan(self) -> workers.Task:
        self.data_page.dup_status.setText("Looking for near-identical images across patients…")

        def done(res: Any) -> None:
            pairs, problems, n = res
            status = f"Near-duplicate check: {n} images compared."
            if problems:
                status += f" {len(problems)} image(s) could not be read, e.g. {problems[0]}"
            self.data_page.set_near_duplicates(pairs, problems, status)
            self.nearDuplicatesDone.emit(pairs)

        def failed(exc: BaseException) -> None:
            self.data_page.set_near_duplicates(None, [], f"The near-duplicate check failed: {exc}")
            self.nearDuplicatesDone.emit(None)

        self._scan_task = self.submit(
            task_near_duplicates,
            self.store,
            name="near duplicates",
            on_progress=lambda d, t, _x: self.data_page.dup_status.setText(
                f"Looking for near-identical images across patients: {d} of {t} images…"
            ),
            on_result=done,
            on_error=failed,
        )
        return self._scan_task

    # ------------------------------------------- the helpers' actions, as pages and tests call them
    def start_summary(self) -> str:
        return self.run_control.start_summary()

    def confirm_start(self) -> bool:
        return self.run_control.confirm_start()

    def build_spec(self) -> runs.RunSpec:
        return self.run_control.build_spec()

    def start_pending_run(self) -> None:
        self.run_control.start_pending_run()

    def resume_run(self, run_dir: Any) -> None:
        self.run_control.resume_run(run_dir)

    def cancel_run(self) -> None:
        self.run_control.cancel_run()

    def create_locked_test(self) -> workers.Task | None:
        return self.locked_actions.create_locked_test()

    def reset_locked_test(self, confirm: bool | None = None) -> workers.Task | None:
        return self.locked_actions.reset_locked_test(confirm)

    def start_comparison(self) -> workers.Task | None:
        return self.result_actions.start_comparison()

    def promote(self) -> workers.Task | None:
        return self.result_actions.promote()

    def discard(self, confirm: bool | None = None) -> workers.Task | None:
        return self.result_actions.discard(confirm)

    # ---------------------------------------------------------------- closing
    def reject(self) -> None:  # Close button, Esc, window close
        if self.training_running():
            if self.run_control.close_after_run:
                return
            if self.confirm(
                "Stop training?",
                "Training is still running. Stop it and close the wizard?\n\nThe run is kept: "
                "Model > Train… offers to resume it later.",
                yes="Stop and close",
            ):
                self.run_control.close_after_run = True
                self.cancel_run()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.training_running():
            event.ignore()
            self.reject()
            return
        super().closeEvent(event)

    #: Tasks whose results only matter while the wizard is open (a promote or discard goes on).
    _VIEW_TASKS = ("wizard environment", "wizard data", "near duplicates", "evaluate active model", "resumable runs")

    def done(self, result: int) -> None:
        for t in list(self._tasks):
            if t.name in self._VIEW_TASKS:
                t.cancel()
        self.run_page.stop_timers()
        self.data_page._recount_timer.stop()
        super().done(result)


def open_wizard(store: Any, parent: QWidget | None = None, **kwargs: Any) -> TrainingWizard | None:
    """Model > Train…: a new wizard, or the open one brought to the front (then ``None``)."""
    existing = getattr(parent, "_training_wizard", None) if parent is not None else None
    if isinstance(existing, TrainingWizard):
        try:
            if existing.isVisible() or existing.training_running():
                existing.show()
                existing.raise_()
                existing.activateWindow()
                return None
            if not existing._tasks:
                existing.deleteLater()
        except RuntimeError:  # already deleted
            pass
    wiz = TrainingWizard(store, parent, **kwargs)
    if parent is not None:
        parent._training_wizard = wiz  # type: ignore[attr-defined]
    return wiz


__all__ = [
    "PAGE_DATA",
    "PAGE_MODEL",
    "PAGE_RESULTS",
    "PAGE_RUN",
    "PAGE_SETTINGS",
    "PAGE_VALIDATION",
    "TrainingWizard",
    "open_wizard",
]
