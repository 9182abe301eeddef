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
from busviewer.gui.wizard_common import ARCH_TEXT, RECIPE_TEXT
from busviewer.gui.wizard_data_page import DataPage
from busviewer.gui.wizard_model_page import ModelPage
from busviewer.gui.wizard_run import ResultsPage, RunPage
from busviewer.gui.wizard_settings_page import SettingsPage
from busviewer.gui.wizard_tasks import (
    Env,
    task_compare,
    task_discard,
    task_env,
    task_near_duplicates,
    task_promote,
    task_resume,
    task_train,
)
from busviewer.gui.wizard_validation_page import ValidationPage
from busviewer.services import locked_tests
from busviewer.services import training_runs as runs
from busviewer.services.models import split_ref

log = logging.getLogger(__name__)

PAGE_DATA, PAGE_MODEL, PAGE_VALIDATION, PAGE_SETTINGS, PAGE_RUN, PAGE_RESULTS = range(6)


# ========================================================================= the wizard
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
        self.run_task: workers.Task | None = None
        self.errors: list[tuple[str, str]] = []
        self._tasks: list[workers.Task] = []
        self._resume_dir: Path | None = None
        self._close_after_run = False
        self._pool_bumped = False
        self._scan_task: workers.Task | None = None

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

    def start_summary(self) -> str:
        """What "Start training" is about to do: model, data, device and a rough time estimate."""
        sp, vp, arch = self.settings_page, self.validation_page, self.model_page.architecture()
        c = vp.preview_counts or {}
        part = lambda k: c.get(k, {})  # noqa: E731
        device = sp.device.currentData() or (self.env.default_device if self.env is not None else "cpu")
        stages = 3 if arch == "ensemble" and sp._recipe_config().ensemble_schedule != "joint" else 1
        seconds = runs.estimate_training_seconds(
            arch,
            sp.input_size.value(),
            part("train").get("images", 0),
            part("val").get("images", 0),
            sp.epochs.value(),
            device,
            stages=stages,
            folds=vp.folds_value(),
            max_steps=sp.max_steps.value() or None,
            batch_size=sp.batch_size.value(),
        )
        minutes = seconds / 60.0
        when = (
            "less than a minute"
            if minutes < 1
            else f"about {minutes:.0f} minutes"
            if minutes < 90
            else f"about {minutes / 60:.1f} hours"
        )
        folds = f", then {vp.folds_value()} cross-validation folds" if vp.folds_value() else ""
        return (
            f"Model: {ARCH_TEXT[arch][0]}, {RECIPE_TEXT.get(sp.recipe.currentData(), sp.recipe.currentText())}, "
            f"up to {sp.epochs.value()} epochs{' per stage' if stages > 1 else ''}{folds}.\n"
            f"Patients: {part('train').get('patients', '?')} for training ({part('train').get('images', '?')} "
            f"images), {part('val').get('patients', '?')} for validation, {part('test').get('patients', '?')} "
            "locked test patients.\n"
            f"Device: {runs.device_text(self.describe_device(str(device)))}.\n"
            f"Estimated time: {when} at most (a rough figure from the network's size; early stopping "
            "usually ends sooner)."
        )

    def confirm_start(self) -> bool:
        """Ask before a run starts; Cancel (the default button) stays on the settings page."""
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Start training?",
            self.start_summary() + "\n\nThe run can be cancelled at any time and resumed later.",
            QMessageBox.StandardButton.NoButton,
            self,
        )
        box.setObjectName("startTrainingConfirmation")
        ok = box.addButton("Start training", QMessageBox.ButtonRole.AcceptRole)
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
        return self.run_task is not None and not self.run_task.done

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

    # ---------------------------------------------------------- locked test set
    def create_locked_test(self) -> workers.Task | None:
        if self.locked is not None or self.locked_busy or self.locked_error:
            return None
        vp = self.validation_page
        fraction, seed = vp.locked_fraction.value() / 100.0, vp.locked_seed.value()
        self.locked_busy = True
        self.lockedChanged.emit()

        def done(locked: Any) -> None:
            self.locked_busy = False
            self.locked = locked
            self.lockedChanged.emit()

        def failed(exc: BaseException) -> None:
            self.locked_busy = False
            self.lockedChanged.emit()
            self.show_error("Locked test set not created", str(exc))

        return self.submit(
            locked_tests.create,
            self.store,
            fraction,
            seed,
            name="create locked test set",
            on_result=done,
            on_error=failed,
        )

    def reset_locked_test(self, confirm: bool | None = None) -> workers.Task | None:
        if self.locked_busy or (self.locked is None and not self.locked_error):
            return None
        if confirm is None:
            what = (
                f"the current set of {len(self.locked.patients)} patients (created "
                f"{self.locked.created.replace('T', ' ')[:16]} UTC)"
                if self.locked is not None
                else "the damaged locked test set file"
            )
            confirm = self.confirm(
                "Reset the locked test set?",
                f"This retires {what}.\n\nModels tested on the old set and on a new one can no longer be compared "
                "fairly, and patients of the old set may be used for training from now on.\n\nThe old file is kept "
                "next to the new one and the reset is recorded in the audit log.",
                yes="Reset locked test set",
            )
        if not confirm:
            return None
        self.locked_busy = True
        self.lockedChanged.emit()

        def done(_archive: Any) -> None:
            self.locked_busy = False
            self.locked, self.locked_error = None, ""
            self.lockedChanged.emit()

        def failed(exc: BaseException) -> None:
            self.locked_busy = False
            self.lockedChanged.emit()
            self.show_error("Locked test set not reset", str(exc))

        return self.submit(
            locked_tests.reset, self.store, name="reset locked test set", on_result=done, on_error=failed
        )

    # --------------------------------------------------------------- training
    def build_spec(self) -> runs.RunSpec:
        dp, mp, vp, sp = self.data_page, self.model_page, self.validation_page, self.settings_page
        cfg = sp.config_values()
        init = mp.init_choice()
        active = mp.active_entry()
        cfg.update(
            architecture=mp.architecture(),
            input_mode="bmode",
            normal="drop",
            label_sources=dp.label_sources(),
            use_rois=dp.use_rois(),
            pretrained=init == "imagenet",
            init_from=active.ref if (init == "active" and active) else None,
            val_fraction=vp.val_fraction_value(),
            folds=vp.folds_value(),
            register=True,
        )
        return runs.RunSpec(
            config=cfg,
            since=dp.since(),
            excluded=sorted(dp.excluded),
            locked=self.locked,
            val_fraction=vp.val_fraction_value(),
            folds=vp.folds_value(),
            seed=int(cfg["seed"]),
            store_url=str(getattr(self.store, "url", "")),
        )

    def start_pending_run(self) -> None:
        """Called when the run page is entered: start a new run, or the resume asked for."""
        if self.training_running():
            return
        if self._resume_dir is not None:
            run_dir, self._resume_dir = self._resume_dir, None
            self._start_resume(run_dir)
        elif self.run_page.state == "idle":
            self._start_new()

    def _start_new(self) -> None:
        spec = self.build_spec()
        self.outcome = None
        self.run_dir = None
        self.run_page.reset(resumed=False)
        self._begin(task_train, spec, self.store, self.registry, self.registry_factory)

    def _start_resume(self, run_dir: Path) -> None:
        self.outcome = None
        self.run_dir = Path(run_dir)
        self.run_page.reset(resumed=True)
        self._begin(task_resume, Path(run_dir), self.store, self.registry, self.registry_factory)

    def _begin(self, fn: Callable[..., Any], *args: Any) -> None:
        pool = workers.io_pool()
        pool.setMaxThreadCount(pool.maxThreadCount() + 1)  # training holds one thread for long
        self._pool_bumped = True
        self.run_task = self.submit(
            fn,
            *args,
            name="training",
            on_partial=self._run_event,
            on_result=self._run_done,
            on_error=self._run_error,
            on_finished=self._run_ended,
        )

    def resume_run(self, run_dir: Any) -> None:
        """Continue a cancelled / interrupted run (from step 1's banner or the run page)."""
        if run_dir is None or self.training_running():
            return
        self._resume_dir = Path(run_dir)
        if self.currentId() == PAGE_RUN:
            self.start_pending_run()
        else:
            self.setStartId(PAGE_RUN)
            self.restart()  # a fresh history: no way back to pages that do not describe this run

    def cancel_run(self) -> None:
        if self.training_running():
            self.run_task.cancel()
            self.run_page.set_state("cancelling")
            self.run_page.headline.setText("Cancelling after the current step…")

    def _run_event(self, e: Any) -> None:
        from busviewer.training.events import RunStarted

        if isinstance(e, RunStarted):
            self.run_dir = Path(e.run_dir)
        self.run_page.on_event(e)
        self.runEvent.emit(e)

    def _run_done(self, outcome: dict[str, Any]) -> None:
        self.run_dir = Path(outcome["run_dir"])
        if outcome["status"] == "finished":
            self.outcome = outcome
            self.run_page.finished(outcome)
            if outcome.get("model"):
                self.registryChanged.emit()
            self.runFinished.emit(outcome)
        else:
            self.run_page.cancelled(self.run_dir)
            self.runCancelled.emit(self.run_dir)

    def _run_error(self, exc: BaseException) -> None:
        text = str(exc) or type(exc).__name__
        self.run_page.failed(text)
        self.runFailed.emit(text)
        if not self._close_after_run:
            self.show_error("Training stopped", text)

    def _run_ended(self) -> None:
        if self._pool_bumped:
            pool = workers.io_pool()
            pool.setMaxThreadCount(max(1, pool.maxThreadCount() - 1))
            self._pool_bumped = False
        if self.run_page.state in ("starting", "running", "cancelling"):  # cancelled before it began
            self.run_page.cancelled(self.run_dir or "(not started)")
            self.runCancelled.emit(self.run_dir)
        self.run_task = None
        self.refresh_resumable()
        if self._close_after_run:
            self._close_after_run = False
            self.reject()

    # ---------------------------------------------------------------- results
    def start_comparison(self) -> workers.Task | None:
        out = self.outcome
        if out is None:
            return None
        arch = out.get("architecture") or self.model_page.architecture()
        return self.submit(
            task_compare,
            self.registry,
            self.registry_factory,
            self.store,
            out["run_dir"],
            arch,
            out.get("model"),
            pool="ai",
            name="evaluate active model",
            on_result=self._compared,
            on_error=lambda e, a=arch: self._compared(
                {"architecture": a, "model": None, "report": None, "error": str(e)}
            ),
        )

    def _compared(self, comp: dict[str, Any]) -> None:
        self.results_page.set_comparison(comp)
        self.comparisonReady.emit(comp)

    def promote(self) -> workers.Task | None:
        out = self.outcome or {}
        ref = out.get("model")
        if not ref:
            return None
        name, version = split_ref(ref)
        arch = out.get("architecture")

        def done(res: Any) -> None:
            entry, prev = res
            self.results_page.set_decision(
                "promoted",
                f"{entry.name} v{entry.version} is now the active {arch} model"
                + (f" (instead of {prev.replace(':', ' v')})" if prev else "")
                + ". Model > Manage models can roll this back.",
            )
            self.modelsChanged.emit()
            self.decisionDone.emit("promoted")

        def failed(exc: BaseException) -> None:
            self.results_page.set_busy(False)
            self.show_error("The new model was not activated", str(exc))

        self.results_page.set_busy(True)
        return self.submit(
            task_promote,
            self.registry,
            self.registry_factory,
            self.store,
            name,
            version,
            pool="ai",
            name="promote",
            on_result=done,
            on_error=failed,
        )

    def discard(self, confirm: bool | None = None) -> workers.Task | None:
        out = self.outcome or {}
        ref = out.get("model")
        if not ref:
            return None
        name, version = split_ref(ref)
        if confirm is None:
            confirm = self.confirm(
                "Discard the new model?",
                f"Delete {name} v{version} from this computer? The run folder with its metrics "
                f"stays in\n{out.get('run_dir')}.",
                yes="Discard",
            )
        if not confirm:
            return None

        def done(_ref: Any) -> None:
            self.results_page.set_decision(
                "discarded", f"{name} v{version} was deleted; the active model is unchanged."
            )
            self.registryChanged.emit()
            self.decisionDone.emit("discarded")

        def failed(exc: BaseException) -> None:
            self.results_page.set_busy(False)
            self.show_error("The new model was not deleted", str(exc))

        self.results_page.set_busy(True)
        return self.submit(
            task_discard,
            self.registry,
            self.registry_factory,
            self.store,
            name,
            version,
            pool="ai",
            name="discard",
            on_result=done,
            on_error=failed,
        )

    # ---------------------------------------------------------------- closing
    def reject(self) -> None:  # Close button, Esc, window close
        if self.training_running():
            if self._close_after_run:
                return
            if self.confirm(
                "Stop training?",
                "Training is still running. Stop it and close the wizard?\n\nThe run is kept: "
                "Model > Train… offers to resume it later.",
                yes="Stop and close",
            ):
                self._close_after_run = True
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
