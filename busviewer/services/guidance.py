"""What a newcomer should do next, in each state of the workstation (Qt-free).

The AI panel shows :func:`next_step`; the same words serve the CLI. States, in order:
the store is empty; no model at all; models installed but none active (points to
Model > Manage models...); shipped default models active; the reader's own models active.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

NO_MODEL = "No active model — train one (Model > Train...) or import one (Model > Import model...)"


@dataclass(frozen=True)
class Situation:
    """``models``: "loading", "none", "ready" or "error"; ``installed``: model versions in
    the registry; ``shipped_active``: architectures whose active model is a shipped one."""

    models: str = "loading"
    installed: int = 0
    shipped_active: Collection[str] = ()
    store_empty: bool | None = None
    patient_open: bool = False


def no_model_text(installed: int) -> str:
    """The panel's message when no model is active."""
    if installed:
        return (
            f"No active model — {installed} model version(s) installed, none active. "
            "Open Model > Manage models... and activate one (an ensemble and/or a VGG-16)."
        )
    return NO_MODEL


def next_step(s: Situation) -> str:
    """One or two sentences: the next useful action (empty when there is nothing to add)."""
    if s.store_empty:
        first = (
            "Next: import images: File > Import folder... (one folder per patient, or DICOM), "
            "File > Import files... (DICOM, PNG/JPEG or a CSV manifest); File > Query PACS... retrieves a "
            "study from the hospital archive."
        )
    elif not s.patient_open:
        first = "Next: open a patient from the worklist (double-click or Enter)."
    else:
        first = ""
    if s.models == "none" and not s.installed:
        model = (
            "To get a model: label some patients (benign/malignant) and use Model > Train..., or "
            "Model > Import model... for a model file you were given."
        )
    elif s.models == "none":
        model = "Then activate a model in Model > Manage models... to see the AI results."
    elif s.models == "ready" and s.shipped_active:
        model = (
            "Using the shipped default models (trained on the public BUSI images; research use). "
            "A patient is analysed when it opens, or press A. Model > Train... adapts them to your images."
        )
    elif s.models == "ready":
        model = "A patient is analysed when it opens, or press A." if not s.patient_open else ""
    else:
        model = ""
    return " ".join(t for t in (first, model) if t)


def nothing_to_export(store_empty: bool) -> str:
    """The friendly note for "export a report" with no patient open."""
    if store_empty:
        return (
            "There is nothing to export yet: the store has no patients. Import images first (File > Import "
            "folder...), open a patient, then File > Export report (Ctrl+E)."
        )
    return "Open a patient from the worklist first, then File > Export report (Ctrl+E) writes its PDF."


__all__ = ["NO_MODEL", "Situation", "next_step", "no_model_text", "nothing_to_export"]
