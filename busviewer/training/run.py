"""Headless training runs: data -> patient-wise split -> (CV folds) -> final model ->
evaluation -> reports -> registered model version (never activated).

Public API (what the GUI wizard and the CLI call)::

    from threading import Event
    from busviewer.training import TrainConfig, run_training, resume_training, events

    cfg = TrainConfig(architecture="ensemble", data="store", epochs=20, patience=5)
    cancel = Event()
    result = run_training(cfg, progress=on_event, cancel=cancel)   # blocking; run in a worker
    result.status      # "finished" | "cancelled"
    result.model       # "name:version" of the registered model (None if not registered)
    result.metrics     # the content of metrics.json

    resume_training(result.run_dir, progress=on_event, cancel=cancel)  # after a cancel/crash

Run directory (``TrainConfig.run_dir``, default ``runs_dir()/<name>-<time>``)::

    config.json         the TrainConfig
    split.json          patient ids of train/val/test and of every CV fold
    data_summary.json   images/patients per class, label sources, dropped labels
    events.jsonl        every progress event except StepDone
    fold-<i>/, final/   per phase: checkpoint.safetensors (while training), result.json,
                        predictions.csv (test patients); final/model.safetensors (the
                        final weights until they are registered)
    metrics.json        final model on the test patients (+ CV mean ± SD), history, calibration
    roc.png, reliability.png, loss.png, cv_roc.png
    registered.json     the registered model reference

Phases: with ``folds`` = k >= 2, k cross-validation models are trained first (fold i
tests on the i-th patient fold) to report mean ± SD; then the ``final`` model is trained
on the fixed split (train patients, early stopping on validation patients) and evaluated
on the fixed test patients. Only the final model is registered; its card carries the
test metrics and the CV estimate. Registering is the very last step, after every file
of the run is written, and the registry writes atomically: a cancelled or failed run
registers nothing. See :mod:`busviewer.training.distributed` for torchrun.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from busviewer.ai import networks as nets
from busviewer.training import distributed as ddp
from busviewer.training.calib_eval import CalibrationHooks, phase_calibration
from busviewer.training.cam_eval import MaskRunHooks
from busviewer.training.checkpoint import load_weights, save_weights
from busviewer.training.config import TrainConfig
from busviewer.training.data import CLASSES, ImageCache, ImageDataset, Sample, SampleSet
from busviewer.training.evaluate import evaluate_samples, write_predictions
from busviewer.training.events import (
    Cancelled,
    DataLoaded,
    EventLog,
    Notice,
    PhaseDone,
    PhaseStarted,
    ProgressCallback,
    RunFailed,
    RunFinished,
    RunStarted,
    fan_out,
)
from busviewer.training.loop import PhaseTrainer, ProgressTracker, TrainingCancelled, stage_plans
from busviewer.training.masks import MaskOptions
from busviewer.training.metrics import mean_sd, scalars
from busviewer.training.model_eval import evaluate_model
from busviewer.training.registration import FINAL_MODEL_NOTE, register_final
from busviewer.training.report import json_safe, write_json, write_plots
from busviewer.training.run_data import load_run_data, phase_datasets
from busviewer.training.run_setup import (
    CHECKPOINT_NAME,
    FINAL_WEIGHTS,
    RESULT_NAME,
    RESUME_OVERRIDABLE,
    RunResult,
    amp_dtype_for,
    choose_run_device,
    default_run_dir,
    prepare_run_dir,
    resume_config,
    seed_everything,
    stage_names,
    steps_per_epoch,
)
from busviewer.training.splits import Split, SplitPlan, select

if TYPE_CHECKING:
    from busviewer.ai.registry import ModelEntry


class _Run:
    def __init__(
        self,
        cfg: TrainConfig,
        progress: ProgressCallback | None,
        cancel: Any,
        resume: bool,
        registry: Any,
        store: Any,
        dist: ddp.DistInfo,
        masks: MaskOptions | None = None,
    ):
        self.cfg, self.cancel, self.resume = cfg, cancel, resume
        self.mask_options = masks
        self.masks: MaskRunHooks | None = None  # lesion masks: crops and localisation (cam_eval)
        self.registry, self.store, self.dist = registry, store, dist
        self.user_progress = progress
        self.emit: ProgressCallback = lambda ev: None
        self.run_dir: Path | None = None
        self.t0 = time.monotonic()
        self.current_phase: str | None = None

    # ------------------------------------------------------------------ setup
    def _prepare_run_dir(self) -> None:
        self.cfg, self.run_dir = prepare_run_dir(self.cfg, self.resume, self.dist)
        if self.dist.is_main:
            self.emit = fan_out(self.user_progress, EventLog(self.run_dir / "events.jsonl"))
        ddp.barrier(self.dist)

    def _check_cancel(self) -> None:
        flag = bool(self.cancel is not None and self.cancel.is_set())
        if ddp.any_true(flag, self.dist, self.device):
            raise TrainingCancelled(self.current_phase, None, None)

    def _load_data(self) -> tuple[SampleSet, SplitPlan]:
        assert self.run_dir is not None
        return load_run_data(
            self.cfg,
            self.run_dir,
            resume=self.resume,
            store=self.store,
            masks=self.masks,
            dist=self.dist,
            emit=self.emit,
        )

    def _build_model(self, phase_index: int) -> tuple[nn.Module, bool, str, str | None]:
        """(model on device, pretrained-like, pretrained_init, parent ref)."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed * 1000 + phase_index)
        parent: str | None = None
        if cfg.init_from:  # fine-tuning keeps the parent's network variant
            parent_card = self._registry().get(cfg.init_from).card
            if parent_card.variant != cfg.variant:
                self.cfg = cfg = dataclasses.replace(cfg, variant=parent_card.variant)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", nets.PretrainedUnavailable)
            model = nets.build_model(
                cfg.architecture,
                cfg.input_mode,
                len(CLASSES),
                pretrained=cfg.pretrained and not cfg.init_from,
                variant=cfg.variant,
            )
        for w in caught:
            if issubclass(w.category, nets.PretrainedUnavailable) and phase_index == 0:
                self.emit(Notice("warning", str(w.message)))
        pretrained = bool(getattr(model, "pretrained", False))
        init = "imagenet" if pretrained else "random"
        if cfg.init_from:
            src, card = self._registry().load(cfg.init_from, device="cpu")
            if card.architecture != cfg.architecture or card.input_mode != cfg.input_mode:
                raise ValueError(
                    f"init_from {cfg.init_from} is a {card.architecture}/{card.input_mode} model, "
                    f"not {cfg.architecture}/{cfg.input_mode}"
                )
            model.load_state_dict(src.state_dict())
            parent, init, pretrained = card.ref, card.pretrained_init, True
        explicit = (cfg.alexnet_trainable_last, cfg.resnet_frozen_first, cfg.vgg_frozen_blocks)
        if phase_index == 0 and not pretrained and all(v is None for v in explicit):
            self.emit(Notice("info", "random initialisation: every layer is trained (no frozen layers)"))
        return model.to(self.device), pretrained, init, parent

    def _registry(self) -> Any:
        if self.registry is None:
            from busviewer.ai.registry import ModelRegistry

            self.registry = ModelRegistry()
        return self.registry

    # ------------------------------------------------------------------ phases
    def _datasets(self, samples: Sequence[Sample], split: Split) -> tuple[ImageDataset, ImageDataset, list[Sample]]:
        return phase_datasets(self.cfg, samples, split, self.cache)

    def _phase(
        self, index: int, total: int, name: str, split: Split, samples: Sequence[Sample], tracker: ProgressTracker
    ) -> dict[str, Any]:
        cfg = self.cfg
        assert self.run_dir is not None
        self.current_phase = name
        phase_dir = self.run_dir / name
        result_path = phase_dir / RESULT_NAME
        is_final = name == "final"
        if result_path.is_file():
            result = json.loads(result_path.read_text(encoding="utf-8"))
            if is_final:
                model, _, init, parent = self._build_model(index)
                if (phase_dir / FINAL_WEIGHTS).is_file():
                    model.load_state_dict(load_weights(phase_dir / FINAL_WEIGHTS))
                    model.eval()
                    result["_model"] = model
                elif not (self.run_dir / "registered.json").is_file():
                    raise FileNotFoundError(f"{phase_dir / FINAL_WEIGHTS} is missing; the run cannot be registered")
                else:  # registered earlier; the weights live in the registry
                    result["_model"] = None
                result["_init"], result["_parent"] = init, parent
            tracker.advance(result.get("planned_steps", 0))
            self.emit(PhaseDone(name, scalars(result.get("test") or {}), resumed=True))
            return result
        if self.dist.is_main:
            phase_dir.mkdir(parents=True, exist_ok=True)
        train_ds, val_ds, test_samples = self._datasets(samples, split)
        model, pretrained, init, parent = self._build_model(index)
        plans = stage_plans(model, cfg, pretrained)
        self.emit(
            PhaseStarted(
                name, index + 1, total, len(split.train), len(split.val), len(split.test), tuple(p.name for p in plans)
            )
        )
        trainer = PhaseTrainer(
            model=model,
            plans=plans,
            train_ds=train_ds,
            val_ds=val_ds,
            cfg=cfg,
            device=self.device,
            dist=self.dist,
            emit=self.emit,
            cancel=self.cancel,
            phase=name,
            checkpoint_path=phase_dir / CHECKPOINT_NAME,
            tracker=tracker,
            amp_dtype=self.amp_dtype,
            seed=cfg.seed * 1000 + index,
        )
        outcome = trainer.run()
        report, probs = None, None
        if test_samples:
            report, probs = evaluate_samples(
                model,
                test_samples,
                cfg.input_size,
                cfg.mean,
                cfg.std,
                self.device,
                cfg.eval_batch_size,
                cfg.threshold,
                self.cache,
                self.amp_dtype,
                self._check_cancel,
            )
            if self.dist.is_main:
                write_predictions(phase_dir / "predictions.csv", test_samples, probs.tolist(), cfg.threshold)
        result = {
            "phase": name,
            "test": report,
            "history": outcome.history,
            "stages": outcome.stages,
            "patients": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
            "images": {"train": len(train_ds), "val": len(val_ds), "test": len(test_samples)},
            "planned_steps": trainer.planned_steps(),
            # temperature + operating points fitted on the validation images, reported on the test images
            "calibration": phase_calibration(
                model,
                cfg,
                val_ds.samples,
                test_samples,
                probs,
                self.device,
                self.cache,
                self.amp_dtype,
                self._check_cancel,
            ),
        }
        if self.masks is not None and self.dist.is_main:  # Grad-CAM vs lesion masks
            result["localisation"] = self.masks.phase(
                model,
                cfg,
                val_ds.samples,
                test_samples,
                phase_dir,
                self.cache,
                self.device,
                None if self.dist.enabled else self._check_cancel,
            )
        if self.dist.is_main:
            if is_final or cfg.keep_phase_weights:  # fold weights allow later re-evaluation
                save_weights(phase_dir / FINAL_WEIGHTS, model.state_dict())
            write_json(result_path, result)
            ck = phase_dir / CHECKPOINT_NAME
            if ck.exists() and not cfg.keep_checkpoints:
                ck.unlink()
        ddp.barrier(self.dist)
        self.emit(PhaseDone(name, scalars(report or {})))
        if is_final:
            result["_model"], result["_init"], result["_parent"] = model, init, parent
        return result

    # ------------------------------------------------------------------ main
    def execute(self) -> RunResult:
        self._prepare_run_dir()
        assert self.run_dir is not None
        self.masks = MaskRunHooks.for_run(self.mask_options, self.run_dir, self.resume, self.dist.is_main)
        cfg = self.cfg
        self.device = choose_run_device(cfg.device, self.dist)
        self.amp_dtype = amp_dtype_for(self.device, cfg.amp)
        if cfg.amp in ("fp16", "bf16") and self.amp_dtype is None:
            self.emit(Notice("info", f"amp={cfg.amp} ignored: mixed precision is used on CUDA only"))
        seed_everything(cfg.seed)
        self.cache = ImageCache(cfg.cache_images)
        phases: list[str] = [f"fold-{i + 1}" for i in range(cfg.folds)] + ["final"]
        self.emit(
            RunStarted(
                self.run_dir, cfg.architecture, str(self.device), tuple(phases), self.resume, json_safe(cfg.to_dict())
            )
        )
        try:
            sset, plan = self._load_data()
            if len(plan.folds) != cfg.folds:
                phases = [f"fold-{i + 1}" for i in range(len(plan.folds))] + ["final"]
            summary = sset.summary()
            self.emit(
                DataLoaded(
                    summary["images"], summary["patients"], summary["images_per_class"], summary["dropped"], plan.counts
                )
            )
            splits = [*plan.folds, plan.fixed]
            tracker = ProgressTracker(
                sum(
                    len(stage_names(cfg.architecture))
                    * cfg.epochs
                    * steps_per_epoch(len(select(sset.samples, s.train)), cfg, self.dist.world_size)
                    for s in splits
                )
            )
            results = [
                self._phase(i, len(phases), name, split, sset.samples, tracker)
                for i, (name, split) in enumerate(zip(phases, splits, strict=True))
            ]
            fold_results, final = results[:-1], results[-1]
            metrics: dict[str, Any] = {
                "test": final.get("test"),
                "history": final.get("history"),
                "stages": final.get("stages"),
                "data": summary,
                "split_counts": plan.counts,
                "note": FINAL_MODEL_NOTE,
            }
            fold_reports = [r["test"] for r in fold_results if r.get("test")]
            if fold_reports:
                metrics["cv"] = {
                    "folds": [scalars(r) for r in fold_reports],
                    "mean_sd": mean_sd(fold_reports),
                }
            if self.masks is not None:
                self.masks.add_metrics(metrics, fold_results, final)
            CalibrationHooks.add_metrics(metrics, fold_results, final)
            if self.dist.is_main:
                write_json(self.run_dir / "metrics.json", metrics)
                write_plots(
                    self.run_dir,
                    final.get("test"),
                    final.get("history") or [],
                    fold_reports,
                    title=cfg.model_name,
                    calibration=final.get("calibration"),
                )
            self._check_cancel()  # last chance: after this the model is registered
            ref, entry = None, None
            if cfg.register and self.dist.is_main:
                ref, entry = self._register(final, metrics, summary, plan, select(sset.samples, plan.fixed.train))
            ddp.barrier(self.dist)
            wall = time.monotonic() - self.t0
            self.emit(RunFinished(self.run_dir, scalars(metrics.get("test") or {}), ref, wall))
            return RunResult("finished", self.run_dir, metrics, ref, entry, wall)
        except TrainingCancelled as exc:
            ck = None
            if exc.phase:
                p = self.run_dir / exc.phase / CHECKPOINT_NAME
                ck = p if p.is_file() else None
            self.emit(Cancelled(self.run_dir, exc.phase, exc.stage, exc.epoch, ck))
            return RunResult("cancelled", self.run_dir, None, None, None, time.monotonic() - self.t0)
        except Exception as exc:
            self.emit(RunFailed(self.run_dir, f"{type(exc).__name__}: {exc}"))
            raise

    def _register(
        self,
        final: dict[str, Any],
        metrics: dict[str, Any],
        summary: dict[str, Any],
        plan: SplitPlan,
        train_samples: Sequence[Any] = (),
    ) -> tuple[str, ModelEntry]:
        assert self.run_dir is not None
        return register_final(
            self._registry(),
            self.cfg,
            self.run_dir,
            final,
            metrics,
            summary,
            plan,
            train_samples,
            device=self.device,
            world_size=self.dist.world_size,
            t0=self.t0,
            emit=self.emit,
        )


def run_training(
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    cancel: Any = None,
    *,
    resume: bool = False,
    registry: Any = None,
    store: Any = None,
    masks: MaskOptions | None = None,
) -> RunResult:
    """Train, evaluate and register (see the module docstring). Blocking.

    ``progress(event)`` receives :mod:`busviewer.training.events`; ``cancel`` is a
    ``threading.Event`` (anything with ``is_set()``) checked before every step: the run
    then returns ``RunResult(status="cancelled")`` leaving its checkpoint, and registers
    nothing. ``resume=True`` continues the run in ``config.run_dir`` from its last
    checkpoint (the stored config is used; only machinery settings such as the device may
    change). ``registry``: a :class:`~busviewer.ai.registry.ModelRegistry` (default: the
    user's); ``store``: a :class:`~busviewer.core.store.Store` for ``data="store"``.
    ``masks``: lesion crops and/or Grad-CAM localisation (saved in ``masks.json``; a
    resumed run keeps its own).
    """
    dist = ddp.setup(config.distributed, config.device)
    try:
        return _Run(config, progress, cancel, resume, registry, store, dist, masks).execute()
    finally:
        ddp.cleanup(dist)


def resume_training(
    run_dir: str | Path,
    progress: ProgressCallback | None = None,
    cancel: Any = None,
    *,
    device: str | None = None,
    registry: Any = None,
    store: Any = None,
    **overrides: Any,
) -> RunResult:
    """Continue the run in ``run_dir`` from its last checkpoint (finished phases are kept)."""
    cfg = resume_config(run_dir, device, overrides)
    return run_training(cfg, progress, cancel, resume=True, registry=registry, store=store)


__all__ = [
    "RESUME_OVERRIDABLE",
    "RunResult",
    "TrainConfig",
    "default_run_dir",
    "evaluate_model",
    "resume_training",
    "run_training",
]
