"""The training wizard's actions that change what is stored, each confirmed first where it
cannot be undone: creating and resetting the locked test set (step 3), and on the results
page (step 6) testing the active model for comparison, promoting or discarding the new one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from busviewer.gui import workers
from busviewer.gui.wizard_tasks import task_compare, task_discard, task_promote
from busviewer.services import locked_tests
from busviewer.services.models import split_ref

if TYPE_CHECKING:
    from busviewer.gui.training_wizard import TrainingWizard


class LockedTestActions:
    """Create the locked test set once; reset (retire) it only on purpose. Both audited."""

    def __init__(self, wiz: TrainingWizard) -> None:
        self.wiz = wiz

    def create_locked_test(self) -> workers.Task | None:
        w = self.wiz
        if w.locked is not None or w.locked_busy or w.locked_error:
            return None
        vp = w.validation_page
        fraction, seed = vp.locked_fraction.value() / 100.0, vp.locked_seed.value()
        w.locked_busy = True
        w.lockedChanged.emit()

        def done(locked: Any) -> None:
            w.locked_busy = False
            w.locked = locked
            w.lockedChanged.emit()

        def failed(exc: BaseException) -> None:
            w.locked_busy = False
            w.lockedChanged.emit()
            w.show_error("Locked test set not created", str(exc))

        return w.submit(
            locked_tests.create,
            w.store,
            fraction,
            seed,
            name="create locked test set",
            on_result=done,
            on_error=failed,
        )

    def reset_locked_test(self, confirm: bool | None = None) -> workers.Task | None:
        w = self.wiz
        if w.locked_busy or (w.locked is None and not w.locked_error):
            return None
        if confirm is None:
            what = (
                f"the current set of {len(w.locked.patients)} patients (created "
                f"{w.locked.created.replace('T', ' ')[:16]} UTC)"
                if w.locked is not None
                else "the damaged locked test set file"
            )
            confirm = w.confirm(
                "Reset the locked test set?",
                f"This retires {what}.\n\nModels tested on the old set and on a new one can no longer be compared "
                "fairly, and patients of the old set may be used for training from now on.\n\nThe old file is kept "
                "next to the new one and the reset is recorded in the audit log.",
                yes="Reset locked test set",
            )
        if not confirm:
            return None
        w.locked_busy = True
        w.lockedChanged.emit()

        def done(_archive: Any) -> None:
            w.locked_busy = False
            w.locked, w.locked_error = None, ""
            w.lockedChanged.emit()

        def failed(exc: BaseException) -> None:
            w.locked_busy = False
            w.lockedChanged.emit()
            w.show_error("Locked test set not reset", str(exc))

        return w.submit(locked_tests.reset, w.store, name="reset locked test set", on_result=done, on_error=failed)


class ResultActions:
    """The results page's work: the active model on the same test patients, Promote, Discard."""

    def __init__(self, wiz: TrainingWizard) -> None:
        self.wiz = wiz

    def start_comparison(self) -> workers.Task | None:
        w = self.wiz
        out = w.outcome
        if out is None:
            return None
        arch = out.get("architecture") or w.model_page.architecture()
        return w.submit(
            task_compare,
            w.registry,
            w.registry_factory,
            w.store,
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
        w = self.wiz
        w.results_page.set_comparison(comp)
        w.comparisonReady.emit(comp)

    def promote(self) -> workers.Task | None:
        w = self.wiz
        out = w.outcome or {}
        ref = out.get("model")
        if not ref:
            return None
        name, version = split_ref(ref)
        arch = out.get("architecture")

        def done(res: Any) -> None:
            entry, prev = res
            w.results_page.set_decision(
                "promoted",
                f"{entry.name} v{entry.version} is now the active {arch} model"
                + (f" (instead of {prev.replace(':', ' v')})" if prev else "")
                + ". Model > Manage models can roll this back.",
            )
            w.modelsChanged.emit()
            w.decisionDone.emit("promoted")

        def failed(exc: BaseException) -> None:
            w.results_page.set_busy(False)
            w.show_error("The new model was not activated", str(exc))

        w.results_page.set_busy(True)
        return w.submit(
            task_promote,
            w.registry,
            w.registry_factory,
            w.store,
            name,
            version,
            pool="ai",
            name="promote",
            on_result=done,
            on_error=failed,
        )

    def discard(self, confirm: bool | None = None) -> workers.Task | None:
        w = self.wiz
        out = w.outcome or {}
        ref = out.get("model")
        if not ref:
            return None
        name, version = split_ref(ref)
        if confirm is None:
            confirm = w.confirm(
                "Discard the new model?",
                f"Delete {name} v{version} from this computer? The run folder with its metrics "
                f"stays in\n{out.get('run_dir')}.",
                yes="Discard",
            )
        if not confirm:
            return None

        def done(_ref: Any) -> None:
            w.results_page.set_decision("discarded", f"{name} v{version} was deleted; the active model is unchanged.")
            w.registryChanged.emit()
            w.decisionDone.emit("discarded")

        def failed(exc: BaseException) -> None:
            w.results_page.set_busy(False)
            w.show_error("The new model was not deleted", str(exc))

        w.results_page.set_busy(True)
        return w.submit(
            task_discard,
            w.registry,
            w.registry_factory,
            w.store,
            name,
            version,
            pool="ai",
            name="discard",
            on_result=done,
            on_error=failed,
        )


__all__ = ["LockedTestActions", "ResultActions"]
