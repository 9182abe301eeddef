"""Blinded first read (issue 14): the reader records a call (benign/malignant + BI-RADS)
before the AI result of the patient is revealed; the store keeps both, and
:func:`compare` measures reader and AI against each other and against ground truth.

- The AI call of a patient is the verdict shown at the reveal: the ensemble's, or
  VGG-16's when there is no ensemble. An "indeterminate" or "not classified" AI verdict
  is kept but is no call: it counts in neither agreement nor the AI's sensitivity and
  specificity (it is reported as "AI no call").
- Ground truth, where it exists: the patient's biopsy label (source "biopsy" or a label
  marked biopsy-confirmed), else its imported label (a data set's diagnosis); else the
  images' biopsy/imported labels (malignant if any image is). The reader's own label is
  not ground truth (it is not independent of the read).
- Sensitivity = malignant calls among malignant patients; specificity = benign calls
  among benign patients; per period (month of the read) and overall.
Qt-free: the GUI's Reading menu and ``busviewer read`` both call these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from busviewer.core.store.reads import ReaderReadRecord, reads, record_read, reveal_read
from busviewer.core.validate import check_birads

CALLS = ("benign", "malignant")
SETTING = "reading/blinded_first_read"  # the GUI setting (QSettings key)


def record(
    store: Any, patient_key: str, call: str, birads: str | None = None, reader: str | None = None
) -> ReaderReadRecord:
    """Record the reader's first read; ``call`` benign/malignant, ``birads`` a standard category."""
    call = str(call).strip().lower()
    if call not in CALLS:
        raise ValueError(f"the call must be benign or malignant, not {call!r}")
    return record_read(store, patient_key, call, check_birads(birads), reader)


def ai_verdict(analysis: Any) -> tuple[str | None, dict]:
    """The AI call shown for ``analysis`` and what it was made of (models, operating point)."""
    verdicts = dict(getattr(analysis, "verdicts", {}) or {})
    main = verdicts.get("ensemble") or verdicts.get("vgg16")
    detail: dict[str, Any] = {"operating_point": getattr(analysis, "operating_point", None), "models": {}}
    models = {
        a: f"{p.model_name} v{p.model_version}" for (_i, a), p in (getattr(analysis, "predictions", {}) or {}).items()
    }
    for arch, v in verdicts.items():
        detail["models"][arch] = {
            "label": v.label,
            "model": models.get(arch),
            "threshold": v.threshold,
            "malignant_votes": v.malignant_votes,
            "benign_votes": v.benign_votes,
        }
    return (main.label if main is not None else None), detail


def reveal(store: Any, patient_key: str, analysis: Any, reader: str | None = None) -> ReaderReadRecord:
    """Mark the AI result of ``analysis`` revealed (the read must be recorded first)."""
    label, detail = ai_verdict(analysis)
    return reveal_read(store, patient_key, label, detail, reader)


def read_of(store: Any, patient_key: str, reader: str | None = None) -> ReaderReadRecord | None:
    found = reads(store, reader or store.user, patient_key)
    return found[0] if found else None


def must_read_first(store: Any, patient_key: str, reader: str | None = None) -> bool:
    """In blinded mode: True while the reader has not recorded a read of ``patient_key``."""
    return read_of(store, patient_key, reader) is None


def ground_truth(store: Any, patient_key: str) -> str | None:
    """ "benign"/"malignant" from biopsy or imported labels (see the module docstring), or None."""
    labels = store.patient_label(patient_key)
    for rec in labels.values():
        if rec.source == "biopsy" or rec.biopsy_confirmed:
            return rec.label if rec.label in CALLS else None
    if "import" in labels and labels["import"].label in CALLS:
        return labels["import"].label
    found = []
    for img in store.images(patient_key):
        for source, rec in img.labels.items():
            if (source in ("biopsy", "import") or rec.biopsy_confirmed) and rec.label in CALLS:
                found.append(rec.label)
                break
    if not found:
        return None
    return "malignant" if "malignant" in found else "benign"


@dataclass
class Tally:
    """Counts of one period (or all): reads, reveals, agreement, and calls against truth."""

    period: str
    reads: int = 0
    revealed: int = 0
    ai_no_call: int = 0
    agree: int = 0
    compared: int = 0  # revealed reads with an AI call
    with_truth: int = 0
    reader: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("tp", "fn", "tn", "fp"), 0))
    ai: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("tp", "fn", "tn", "fp"), 0))

    @property
    def agreement(self) -> float | None:
        return self.agree / self.compared if self.compared else None

    @staticmethod
    def _rate(c: dict[str, int], which: str) -> float | None:
        num, den = (c["tp"], c["tp"] + c["fn"]) if which == "sens" else (c["tn"], c["tn"] + c["fp"])
        return num / den if den else None

    def rates(self) -> dict[str, float | None]:
        return {
            "reader_sensitivity": self._rate(self.reader, "sens"),
            "reader_specificity": self._rate(self.reader, "spec"),
            "ai_sensitivity": self._rate(self.ai, "sens"),
            "ai_specificity": self._rate(self.ai, "spec"),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"agreement": self.agreement} | self.rates()


def _count(c: dict[str, int], call: str, truth: str) -> None:
    key = ("tp" if call == "malignant" else "fn") if truth == "malignant" else ("fp" if call == "malignant" else "tn")
    c[key] += 1


def compare(store: Any, reader: str | None = None) -> tuple[Tally, list[Tally]]:
    """Reader vs AI over the recorded reads (of ``reader``, default everyone): overall and by month."""
    total = Tally("all")
    periods: dict[str, Tally] = {}
    truths: dict[str, str | None] = {}
    for r in reads(store, reader):
        month = r.recorded_at.strftime("%Y-%m")
        for t in (total, periods.setdefault(month, Tally(month))):
            _tally(t, r, truths.setdefault(r.patient_key, ground_truth(store, r.patient_key)))
    return total, [periods[k] for k in sorted(periods)]


def _tally(t: Tally, r: ReaderReadRecord, truth: str | None) -> None:
    t.reads += 1
    ai_call = r.ai_label if r.ai_label in CALLS else None
    if r.revealed:
        t.revealed += 1
        if ai_call is None:
            t.ai_no_call += 1
        else:
            t.compared += 1
            t.agree += int(ai_call == r.call)
    if truth is not None:
        t.with_truth += 1
        _count(t.reader, r.call, truth)
        if r.revealed and ai_call is not None:
            _count(t.ai, ai_call, truth)


def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def summary_lines(total: Tally, periods: Iterable[Tally]) -> list[str]:
    """Plain-text table (the CLI's output; the dialog shows the same numbers)."""
    head = (
        f"{'period':<8} {'reads':>5} {'shown':>5} {'agree':>6} {'R sens':>6} {'R spec':>6} {'AI sens':>7} "
        f"{'AI spec':>7}"
    )
    lines = [head]
    for t in [*periods, total]:
        r = t.rates()
        lines.append(
            f"{t.period:<8} {t.reads:>5} {t.revealed:>5} {fmt_rate(t.agreement):>6} "
            f"{fmt_rate(r['reader_sensitivity']):>6} {fmt_rate(r['reader_specificity']):>6} "
            f"{fmt_rate(r['ai_sensitivity']):>7} {fmt_rate(r['ai_specificity']):>7}"
        )
    return lines


__all__ = [
    "CALLS",
    "SETTING",
    "Tally",
    "ai_verdict",
    "compare",
    "fmt_rate",
    "ground_truth",
    "must_read_first",
    "read_of",
    "record",
    "reveal",
    "summary_lines",
]
