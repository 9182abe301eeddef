"""Model use cases, audited the same way from every front end: activate, promote, roll back,
go back to the shipped default, import, export, delete (or discard a trained candidate).

Qt-free. The functions take a registry (:class:`busviewer.ai.registry.ModelRegistry`, which
imports torch, so the GUI calls them in workers) and a store (or None: nothing audited).
Model audit entries have ``entity="model"``, ``field`` = the architecture, ``old_value`` = the
model active before (or the source path of an import) and ``new_value`` = the model after;
the roll-back history is read from them (:func:`activation_history`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from busviewer.core.store.actions import ACTIVATIONS, AuditAction, canonical

log = logging.getLogger(__name__)

#: Activating a model whose recorded test AUC is below this asks for confirmation.
MIN_TEST_AUC = 0.75
#: ... and so does one whose recorded test set has fewer patients (or images, when no
#: patient-level figures were recorded) than this: its AUC says little.
MIN_TEST_PATIENTS = 20
MIN_TEST_IMAGES = 30


class Change(NamedTuple):
    """What a model action did: the entry now concerned and the model active before."""

    entry: Any
    previous: str | None

    def describe(self, verb: str = "is now the active") -> str:
        was = f" (was {self.previous})" if self.previous and self.previous != self.entry.ref else ""
        return f"{self.entry.ref} {verb} {self.entry.architecture} model{was}"


def split_ref(ref: str) -> tuple[str, int]:
    name, _, v = ref.rpartition(":")
    return name, int(v)


def _audit(store: Any, action: AuditAction, architecture: str, old: str | None, new: str | None) -> None:
    if store is not None:
        store.log(action, "model", None, architecture, old, new)


def activation_warnings(card: Any) -> list[str]:
    """Why activating this model deserves a second thought (empty: no reason). Only recorded
    test figures are judged: a card without them gets no warning here."""
    image, patient = card.test_metrics()
    auc = patient.get("auc") if isinstance(patient.get("auc"), (int, float)) else image.get("auc")
    reasons = []
    if isinstance(auc, (int, float)) and auc < MIN_TEST_AUC:
        reasons.append(f"its test AUC is {auc:.2f}, below {MIN_TEST_AUC:.2f}")
    n_patients, n_images = patient.get("n"), image.get("n")
    if isinstance(n_patients, int) and n_patients < MIN_TEST_PATIENTS:
        reasons.append(
            f"its test set had only {n_patients} patients (fewer than {MIN_TEST_PATIENTS}): its figures are unreliable"
        )
    elif n_patients is None and isinstance(n_images, int) and n_images < MIN_TEST_IMAGES:
        reasons.append(
            f"its test set had only {n_images} images (fewer than {MIN_TEST_IMAGES}): its figures are unreliable"
        )
    return reasons


def activation_question(card: Any) -> str | None:
    """The confirmation to ask before activating ``card``'s model, or None when none is needed."""
    reasons = activation_warnings(card)
    if not reasons:
        return None
    return (
        f"Activate {card.name} v{card.version} although " + "; and ".join(reasons) + "?\n\n"
        "It would give the AI results of every patient analysed from now on."
    )


def activate(
    registry: Any, store: Any, model: str, version: int | None = None, action: AuditAction = AuditAction.ACTIVATE_MODEL
) -> Change:
    """Make ``model`` (``NAME[:VERSION]``, or a name and ``version``) the active model of its
    architecture (weights verified) and audit it with the model it replaces."""
    probe = registry.get(model, version) if version is not None else registry.get(model)
    before = registry.active(probe.architecture)
    entry = registry.activate(probe.name, probe.version)
    prev = before.ref if before is not None else None
    _audit(store, action, entry.architecture, prev, entry.ref)
    return Change(entry, prev)


def promote(registry: Any, store: Any, name: str, version: int) -> Change:
    """Activate a model the training wizard just trained (audited as a promotion)."""
    return activate(registry, store, name, version, action=AuditAction.PROMOTE_MODEL)


def use_default(registry: Any, store: Any, architecture: str) -> Change:
    """Forget the user's choice: the shipped default of ``architecture`` is active again."""
    before = registry.active(architecture)
    entry = registry.use_default(architecture)
    prev = before.ref if before is not None else None
    _audit(store, AuditAction.USE_DEFAULT_MODEL, architecture, prev, entry.ref)
    return Change(entry, prev)


def activation_history(audit: Sequence[Any], architecture: str) -> list[str]:
    """The models ``architecture`` had active, oldest first, from audit records; a roll back
    pops the version it steps back from."""
    stack: list[str] = []
    for a in audit:
        if getattr(a, "entity", "model") != "model" or a.field != architecture or not a.new_value:
            continue
        action = canonical(a.action)
        if action in ACTIVATIONS:
            if not stack and a.old_value and a.old_value != a.new_value:
                stack.append(a.old_value)
            if not stack or stack[-1] != a.new_value:
                stack.append(a.new_value)
        elif action is AuditAction.ROLLBACK_MODEL:
            if stack and stack[-1] == a.old_value:
                stack.pop()
            if not stack or stack[-1] != a.new_value:
                stack.append(a.new_value)
    return stack


def rollback_target(stack: Sequence[str], current: str | None, available: set[str]) -> str | None:
    """The version that was active before ``current`` (skipping deleted ones)."""
    if not stack:
        return None
    idx = (
        len(stack) - 1 - list(reversed(stack)).index(current)
        if current is not None and current in stack
        else len(stack)
    )
    for ref in reversed(stack[:idx]):
        if ref != current and ref in available:
            return ref
    return None


def rollback_ref(registry: Any, store: Any, architecture: str) -> str | None:
    """The model a roll back of ``architecture`` would activate, or None."""
    if store is None:
        return None
    current = registry.active(architecture)
    available = {e.ref for e in registry.list() if e.architecture == architecture}
    return rollback_target(
        activation_history(store.audit_log("model"), architecture), current.ref if current else None, available
    )


def roll_back(registry: Any, store: Any, architecture: str) -> Change:
    """Activate the model that was active before the current one (audited)."""
    target = rollback_ref(registry, store, architecture)
    if target is None:
        raise LookupError(f"no earlier {architecture} model to roll back to")
    name, version = split_ref(target)
    return activate(registry, store, name, version, action=AuditAction.ROLLBACK_MODEL)


def import_model(registry: Any, store: Any, path: str | Path, activate_it: bool = False) -> Change:
    """Import a model file (verified, never unpickled), optionally activating it; audited."""
    path = Path(path)
    entry = registry.import_model(path)
    _audit(store, AuditAction.IMPORT_MODEL, entry.architecture, str(path), entry.ref)
    if activate_it:
        return activate(registry, store, entry.name, entry.version)
    return Change(entry, None)


def export_model(
    registry: Any, store: Any, model: str, dest: str | Path, version: int | None = None, overwrite: bool = False
) -> tuple[Path, Path]:
    """Copy a model's weights and card to ``dest``; ``(weights, card)``; audited.
    FileExistsError if they are there already and ``overwrite`` is False."""
    entry = registry.get(model, version) if version is not None else registry.get(model)
    weights, card = registry.export(entry.name, entry.version, Path(dest), overwrite=overwrite)
    _audit(store, AuditAction.EXPORT_MODEL, entry.architecture, entry.ref, str(dest))
    return weights, card


def fit_guard(
    registry: Any, store: Any, name: str, version: int, samples: Sequence[Any], device: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Fit a model's feature-distance input guard on training ``samples`` (what it was trained
    on, :func:`busviewer.training.data.samples_from_manifest`) and write it into its card;
    audited. Returns ``(ref, guard section)``."""
    from busviewer.training.data import read_sample_pixels
    from busviewer.training.guard_fit import fit_guard as fit

    model, card = registry.load(registry.get(name, version))
    guard = fit(model, card, (read_sample_pixels(s) for s in samples), device=device)
    entry = registry.set_feature_guard(card.ref, guard)
    _audit(store, AuditAction.FIT_FEATURE_GUARD, entry.architecture, None, f"{entry.ref} on {guard['n_images']} images")
    return entry.ref, guard


def delete_model(registry: Any, store: Any, name: str, version: int) -> str:
    """Delete a user model version (never a shipped or active one); audited. The training
    wizard's "discard" of a freshly trained candidate is this too. Returns its ref."""
    entry = registry.get(name, version)
    registry.delete(name, version)
    _audit(store, AuditAction.DELETE_MODEL, entry.architecture, entry.ref, None)
    return entry.ref


__all__ = [
    "AuditAction",
    "MIN_TEST_AUC",
    "MIN_TEST_IMAGES",
    "MIN_TEST_PATIENTS",
    "Change",
    "activate",
    "activation_history",
    "activation_question",
    "activation_warnings",
    "delete_model",
    "fit_guard",
    "export_model",
    "import_model",
    "promote",
    "roll_back",
    "rollback_ref",
    "rollback_target",
    "split_ref",
    "use_default",
]
