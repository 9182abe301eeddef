"""The training wizard's run control: what "Start training" is about to do (and the question
before it), the run's specification from pages 1-4, starting, resuming and cancelling the run
in a worker (:func:`busviewer.gui.wizard_tasks.task_train` / ``task_resume``), and its events
on their way to the run page and the wizard's signals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QMessageBox

from busviewer.gui import workers
from busviewer.gui.wizard_common import ARCH_TEXT, PAGE_RUN, RECIPE_TEXT
from busviewer.gui.wizard_tasks import task_resume, task_train
from busviewer.services import training_runs as runs

if TYPE_CHECKING:
    from busviewer.gui.training_wizard import TrainingWizard


class RunControl:
    """The training run of one wizard: at most one at a time (``task``)."""

    def __init__(self, wiz: TrainingWizard) -> None:
        self.wiz = wiz
        self.task: workers.Task | None = None
        self.close_after_run = False  # the wizard closes when the cancelled run has stopped
        self._resume_dir: Path | None = None
        self._pool_bumped = False

    def running(self) -> bool:
        return self.task is not None and not self.task.done

    # ------------------------------------------------------------ before a run
    def start_summary(self) -> str:
        """What "Start training" is about to do: model, data, device and a rough time estimate."""
        w = self.wiz
        sp, vp, arch = w.settings_page, w.validation_page, w.model_page.architecture()
        c = vp.preview_counts or {}
        part = lambda k: c.get(k, {})  # noqa: E731
        device = sp.device.currentData() or (w.env.default_device if w.env is not None else "cpu")
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
            f"Device: {runs.device_text(w.describe_device(str(device)))}.\n"
            f"Estimated time: {when} at most (a rough figure from the network's size; early stopping "
            "usually ends sooner)."
        )

    def confirm_start(self) -> bool:
        """Ask before a run starts; Cancel (the default button) stays on the settings page."""
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Start training?",
            self.wiz.start_summary() + "\n\nThe run can be cancelled at any time and resumed later.",
            QMessageBox.StandardButton.NoButton,
            self.wiz,
        )
        box.setObjectName("startTrainingConfirmation")
        ok = box.addButton("Start training", QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.exec()
        return box.clickedButton() is ok

    def build_spec(self) -> runs.RunSpec:
        w = self.wiz
        dp, mp, vp, sp = w.data_page, w.model_page, w.validation_page, w.settings_page
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
            locked=w.locked,
            val_fraction=vp.val_fraction_value(),
            folds=vp.folds_value(),
            seed=int(cfg["seed"]),
            store_url=str(getattr(w.store, "url", "")),
        )

    # ------------------------------------------------------- start, resume, cancel
    def start_pending_run(self) -> None:
        """Called when the run page is entered: start a new run, or the resume asked for."""
        if self.running():
            return
        if self._resume_dir is not None:
            run_dir, self._resume_dir = self._resume_dir, None
            self._start_resume(run_dir)
        elif self.wiz.run_page.state == "idle":
            self._start_new()

    def _start_new(self) -> None:
        w = self.wiz
        spec = w.build_spec()
        w.outcome = None
        w.run_dir = None
        w.run_page.reset(resumed=False)
        self._begin(task_train, spec, w.store, w.registry, w.registry_factory)

    def _start_resume(self, run_dir: Path) -> None:
        w = self.wiz
        w.outcome = None
        w.run_dir = Path(run_dir)
        w.run_page.reset(resumed=True)
        self._begin(task_resume, Path(run_dir), w.store, w.registry, w.registry_factory)

    def _begin(self, fn: Callable[..., Any], *args: Any) -> None:
        pool = workers.io_pool()
        pool.setMaxThreadCount(pool.maxThreadCount() + 1)  # training holds one thread for long
        self._pool_bumped = True
        self.task = self.wiz.submit(
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
        if run_dir is None or self.running():
            return
        self._resume_dir = Path(run_dir)
        w = self.wiz
        if w.currentId() == PAGE_RUN:
            w.start_pending_run()
        else:
            w.setStartId(PAGE_RUN)
            w.restart()  # a fresh history: no way back to pages that do not describe this run

    def cancel_run(self) -> None:
        if self.running():
            self.task.cancel()
            self.wiz.run_page.set_state("cancelling")
            self.wiz.run_page.headline.setText("Cancelling after the current step…")

    # ------------------------------------------------------------- run events
    def _run_event(self, e: Any) -> None:
        from busviewer.training.events import RunStarted

        w = self.wiz
        if isinstance(e, RunStarted):
            w.run_dir = Path(e.run_dir)
        w.run_page.on_event(e)
        w.runEvent.emit(e)

    def _run_done(self, outcome: dict[str, Any]) -> None:
        w = self.wiz
        w.run_dir = Path(outcome["run_dir"])
        if outcome["status"] == "finished":
            w.outcome = outcome
            w.run_page.finished(outcome)
            if outcome.get("model"):
                w.registryChanged.emit()
            w.runFinished.emit(outcome)
        else:
            w.run_page.cancelled(w.run_dir)
            w.runCancelled.emit(w.run_dir)

    def _run_error(self, exc: BaseException) -> None:
        w = self.wiz
        text = str(exc) or type(exc).__name__
        w.run_page.failed(text)
        w.runFailed.emit(text)
        if not self.close_after_run:
            w.show_error("Training stopped", text)

    def _run_ended(self) -> None:
        w = self.wiz
        if self._pool_bumped:
            pool = workers.io_pool()
            pool.setMaxThreadCount(max(1, pool.maxThreadCount() - 1))
            self._pool_bumped = False
        if w.run_page.state in ("starting", "running", "cancelling"):  # cancelled before it began
            w.run_page.cancelled(w.run_dir or "(not started)")
            w.runCancelled.emit(w.run_dir)
        self.task = None
        w.refresh_resumable()
        if self.close_after_run:
            self.close_after_run = False
            w.reject()


__all__ = ["RunControl"]
