"""Bodies of the GUI's background tasks (run on pool threads by :mod:`busviewer.gui.workers`).

They import the heavy modules (torch via ``busviewer.ai``, the image decoders) themselves,
so importing this module costs nothing; none of them touches a widget.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from busviewer.core.store import ImageRecord, Store
from busviewer.gui import workers
from busviewer.gui.ai_panel import verdict_summary
from busviewer.gui.thumbnails import Thumbnail, make_thumbnail

log = logging.getLogger(__name__)


@dataclass
class ModelsLoaded:
    analyzer: Any
    registry: Any
    cards: dict[str, Any]
    entries: list[Any]
    device: str
    no_model: str | None = None
    problems: list[str] = field(default_factory=list)


def default_registry_factory() -> Any:
    from busviewer.ai.registry import ModelRegistry

    return ModelRegistry()


def default_analyzer_factory(store: Store, registry: Any) -> Any:
    from busviewer.ai.analysis import Analyzer

    return Analyzer(store, registry, device=os.environ.get("BUSVIEWER_DEVICE") or None)


def _limit_torch_threads() -> None:
    """Leave one core to the GUI thread so the window stays fluid during inference."""
    import torch

    cores = os.cpu_count() or 2
    torch.set_num_threads(max(1, min(torch.get_num_threads(), cores - 1)))


def warm_up_training() -> None:
    """Import what a training run needs (torch, torchvision, scikit-learn's metrics, the
    training package, matplotlib's Agg canvas for its plots) before the run starts, so the
    run does not pay for it midway. Run in a worker: while workers run, Python's cyclic GC
    only runs on the GUI thread (:mod:`busviewer.gui.gcpolicy`), so these imports cannot
    free a Qt object here; the plots never use a Qt backend."""
    try:
        import sklearn.metrics  # noqa: F401
        import torchvision  # noqa: F401
        from matplotlib import figure  # noqa: F401
        from matplotlib.backends import backend_agg  # noqa: F401

        import busviewer.training.run  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - the run itself reports a real import problem
        log.debug("warm-up imports failed: %s", exc)


def _device_text(analyzer: Any) -> str:
    name = str(getattr(analyzer, "device_name", "cpu"))
    try:
        from busviewer.ai.device import describe_device

        return describe_device(name).replace("(1 threads)", "(1 thread)")
    except Exception:  # noqa: BLE001 - cosmetic only
        return name


def task_load_models(
    store: Store,
    registry_factory: Callable[[], Any],
    analyzer_factory: Callable[[Store, Any], Any],
    analyzer: Any = None,
) -> ModelsLoaded:
    registry = analyzer.registry if analyzer is not None else registry_factory()
    entries = list(registry.list())  # the registry's listing needs no torch
    if analyzer is None and not any(getattr(e, "active", False) for e in entries):
        # Nothing to load: say so now rather than after torch's import (seconds).
        from busviewer.services.guidance import NO_MODEL

        return ModelsLoaded(None, registry, {}, entries, "", NO_MODEL)
    _limit_torch_threads()
    from busviewer.ai.analysis import NoActiveModel

    if analyzer is None:
        analyzer = analyzer_factory(store, registry)
    try:
        cards = dict(analyzer.load_models())
        no_model = None
    except NoActiveModel as exc:
        cards, no_model = {}, str(exc)
    return ModelsLoaded(analyzer, registry, cards, entries, _device_text(analyzer), no_model)


def task_decode(path: Path) -> Any:
    from busviewer.core.imageio import read_image

    return read_image(path)


def task_decode_patient(records: Sequence[ImageRecord], ctx: workers.TaskContext) -> None:
    """Decode every image of a patient: thumbnails stream back with the decoded image."""
    from busviewer.core.imageio import ImageReadError, read_image

    for i, rec in enumerate(records):
        ctx.check()
        try:
            img = read_image(rec.source_path)
            thumb = Thumbnail(rec.id, make_thumbnail(img.frame(0)))
        except ImageReadError as exc:
            img, thumb = None, Thumbnail(rec.id, None, str(exc))
        except OSError as exc:
            img, thumb = None, Thumbnail(rec.id, None, f"{rec.source_path}: {exc.strerror or exc}")
        ctx.partial((thumb, img))
        ctx.progress(i + 1, len(records))


def task_stored_verdicts(store: Store, operating_point: str = "balanced") -> dict[str, str]:
    """Patient verdict text from the latest stored predictions at ``operating_point`` (no
    model is run; thresholds from the model cards recorded in the store)."""
    from busviewer.ai.results import guard_findings, summarise, thresholds_by_sha

    by_patient: dict[str, list[int]] = {}
    records = store.images()
    for rec in records:
        by_patient.setdefault(rec.patient_key, []).append(rec.id)
    out: dict[str, str] = {}
    all_ids = [i for ids in by_patient.values() for i in ids]
    latest = store.latest_predictions(all_ids) if all_ids else {}
    thresholds = thresholds_by_sha(store.model_cards({p.model_sha256 for p in latest.values()})) if latest else {}
    # the input guard's stored findings (no pixels read): flagged images do not vote here either
    predicted = {i for i, _ in latest}
    outside, overridden = guard_findings(store, [r for r in records if r.id in predicted], check=False)
    for key, ids in by_patient.items():
        preds = {(i, arch): latest[(i, arch)] for i in ids for arch in ("ensemble", "vgg16") if (i, arch) in latest}
        if preds:
            analysis = summarise(key, preds, thresholds, operating_point, outside=outside, overridden=overridden)
            text = verdict_text(analysis.verdicts)
            if text:
                out[key] = text
    return out


def stored_analysis(store: Store, patient_key: str, operating_point: str = "balanced") -> Any | None:
    """The stored predictions summarised at ``operating_point`` (no torch needed)."""
    from busviewer.ai.results import stored_analysis as stored

    return stored(store, patient_key, operating_point)


def verdict_text(verdicts: dict[str, Any]) -> str:
    main = verdicts.get("ensemble") or verdicts.get("vgg16")
    if main is None:
        return ""
    text = verdict_summary(main)
    if len({v.label for v in verdicts.values()}) > 1:
        text += " ⚠"
    return text
