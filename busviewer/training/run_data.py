"""A training run's data: loading the labelled samples, planning (or re-loading) the
patient-wise split, and the per-phase datasets (used by :mod:`busviewer.training.run`).

Writes ``split.json`` and ``data_summary.json`` into the run directory (main rank).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from busviewer.training import distributed as ddp
from busviewer.training.augment import eval_transform, train_transform
from busviewer.training.cam_eval import MaskRunHooks
from busviewer.training.config import TrainConfig
from busviewer.training.data import ImageCache, ImageDataset, Sample, SampleSet, load_samples
from busviewer.training.events import Notice, ProgressCallback
from busviewer.training.report import write_json
from busviewer.training.splits import Split, SplitPlan, limit_patients, make_plan, part_counts, patient_labels, select


def load_run_data(
    cfg: TrainConfig,
    run_dir: Path,
    *,
    resume: bool,
    store: Any,
    masks: MaskRunHooks | None,
    dist: ddp.DistInfo,
    emit: ProgressCallback,
) -> tuple[SampleSet, SplitPlan]:
    """The run's samples (restricted to the split's patients) and its split plan.

    A resumed run re-uses its ``split.json``; else ``cfg.split_file`` (with CV folds added
    when asked for) or a new patient-wise plan. Warns about split patients without usable
    images and checks that every split's train and validation parts have images.
    """
    sset = load_samples(cfg.data, cfg.normal, cfg.label_sources, cfg.use_rois, store)
    if masks is not None:
        sset = masks.samples(sset)
    if not sset.samples:
        raise ValueError(f"no labelled benign/malignant images in {cfg.data}")
    split_path = run_dir / "split.json"
    if resume and split_path.is_file():
        plan = SplitPlan.load(split_path)
    elif cfg.split_file:
        plan = SplitPlan.load(cfg.split_file)
        if cfg.folds and not plan.folds:
            from busviewer.training.splits import kfold_splits

            used = set(plan.fixed.train) | set(plan.fixed.val) | set(plan.fixed.test)
            pats = {p: y for p, y in patient_labels(sset.samples).items() if p in used}
            plan.folds = kfold_splits(pats, cfg.folds, cfg.val_fraction, cfg.seed)
    else:
        labels = patient_labels(sset.samples)
        keep = limit_patients(labels, cfg.limit_patients, cfg.seed)
        plan = make_plan(select(sset.samples, keep), cfg.val_fraction, cfg.test_fraction, cfg.folds, cfg.seed)
    in_split = set(plan.fixed.train) | set(plan.fixed.val) | set(plan.fixed.test)
    for f in plan.folds:
        in_split |= set(f.train) | set(f.val) | set(f.test)
    known = {s.patient for s in sset.samples}
    missing = sorted(in_split - known)
    if missing:
        emit(Notice("warning", f"{len(missing)} patient(s) of the split have no usable images (e.g. {missing[:3]})"))
    sset = SampleSet([s for s in sset.samples if s.patient in in_split], sset.source, sset.dropped)
    plan.counts = part_counts(sset.samples, plan.fixed)
    for name, f in [("fixed", plan.fixed), *[(f"fold-{i + 1}", f) for i, f in enumerate(plan.folds)]]:
        f.check_disjoint()
        if not select(sset.samples, f.train) or not select(sset.samples, f.val):
            raise ValueError(f"split {name}: the train and validation parts need images")
    if dist.is_main:
        plan.save(split_path)
        write_json(run_dir / "data_summary.json", sset.summary() | {"normal": cfg.normal})
    return sset, plan


def phase_datasets(
    cfg: TrainConfig, samples: Sequence[Sample], split: Split, cache: ImageCache
) -> tuple[ImageDataset, ImageDataset, list[Sample]]:
    """(augmented train dataset, validation dataset, test samples) of one phase's split."""
    tr = train_transform(cfg.input_size, cfg.augment, cfg.mean, cfg.std)
    ev = eval_transform(cfg.input_size, cfg.mean, cfg.std)
    return (
        ImageDataset(select(samples, split.train), tr, cache),
        ImageDataset(select(samples, split.val), ev, cache),
        select(samples, split.test),
    )
