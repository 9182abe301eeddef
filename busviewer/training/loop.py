"""The training loop of one model: fine-tuning stages, early stopping, checkpoints, cancel.

One *phase* trains one network through its stages (seed 001 for the ensemble: stage 1
fine-tunes the AlexNet branch and the ResNet-18 branch, each through its own 2-class
head; stage 2 freezes both branches and trains the joint 4608 -> 2 head; VGG-16 has a
single stage). Every stage uses Adam and cross-entropy, runs at most ``epochs`` epochs
and stops when the validation loss has not improved for ``patience`` epochs; the best
epoch's weights are then restored. With class balancing the validation loss carries the
same class weights as the training loss (see :attr:`PhaseTrainer.val_class_weight`).
After every epoch a checkpoint (model, best weights, optimizer, RNG,
epoch/stage/early-stopping state) is written, so that a cancelled or crashed phase
continues exactly where it stopped. The cancel flag is checked before every step (and
every validation batch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DistributedSampler, Sampler

from busviewer.ai import networks as nets
from busviewer.training import distributed as ddp
from busviewer.training.checkpoint import Checkpoint, load_checkpoint, restore_rng, save_checkpoint
from busviewer.training.config import TrainConfig
from busviewer.training.data import ImageDataset, class_weights, sample_weights
from busviewer.training.evaluate import make_loader, predict_loader, torch_dataset
from busviewer.training.events import (
    EpochDone,
    EpochStarted,
    Event,
    StageDone,
    StageStarted,
    StepDone,
)
from busviewer.training.metrics import binary_metrics

ALEXNET_LAYERS = 8  # 5 conv + FC6, FC7, FC8


class TrainingCancelled(Exception):
    """Raised inside the loop when the cancel flag is set."""

    def __init__(self, phase: str | None = None, stage: str | None = None, epoch: int | None = None):
        super().__init__(f"cancelled during {phase}/{stage} epoch {epoch}")
        self.phase, self.stage, self.epoch = phase, stage, epoch


@dataclass
class StagePlan:
    """One fine-tuning stage: ``forward`` gives the logits trained on; ``state_module``
    holds the weights this stage changes (snapshotted as the best weights); ``setup``
    sets ``requires_grad``; ``frozen_eval`` modules stay in eval mode while training."""

    name: str
    forward: nn.Module
    state_module: nn.Module
    setup: Callable[[], None]
    frozen_eval: tuple[nn.Module, ...] = ()
    init: Callable[[], None] | None = None  # called once when the stage starts (not on resume)


def stage_plans(model: nn.Module, cfg: TrainConfig, pretrained_like: bool) -> list[StagePlan]:
    """The fine-tuning schedule for ``model`` (see :class:`TrainConfig` on freezing)."""
    if isinstance(model, nets.EnsembleNet) and cfg.ensemble_schedule == "joint":

        def setup_joint() -> None:
            nets.set_requires_grad(model, True)
            if pretrained_like:  # keep seed 001's frozen early layers when fine-tuning
                if cfg.alexnet_trainable_last is not None:
                    nets.freeze_alexnet_for_finetune(model.alexnet, cfg.alexnet_trainable_last)
                    nets.set_requires_grad(model.resnet, True)
                    nets.set_requires_grad(model.head, True)
                if cfg.resnet_frozen_first:
                    for name in nets.RESNET_STAGES[: cfg.resnet_frozen_first]:
                        nets.set_requires_grad(getattr(model.resnet.body, name), False)

        return [StagePlan("joint", JointEnsemble(model), model, setup_joint)]
    if isinstance(model, nets.EnsembleNet):
        a_last = cfg.alexnet_trainable_last
        if a_last is None:
            a_last = 3 if pretrained_like else ALEXNET_LAYERS
        r_first = cfg.resnet_frozen_first
        if r_first is None:
            r_first = 4 if pretrained_like else 0

        def setup_alexnet() -> None:
            nets.set_requires_grad(model, False)
            nets.freeze_alexnet_for_finetune(model.alexnet, trainable_last=a_last)

        def setup_resnet() -> None:
            nets.set_requires_grad(model, False)
            nets.freeze_resnet_for_finetune(model.resnet, frozen_first=r_first)

        def setup_head() -> None:
            nets.set_requires_grad(model, False)
            nets.set_requires_grad(model.head, True)

        return [
            StagePlan("alexnet", model.alexnet, model.alexnet, setup_alexnet),
            StagePlan("resnet", model.resnet, model.resnet, setup_resnet),
            StagePlan(
                "head",
                model,
                model.head,
                setup_head,
                frozen_eval=(model.alexnet, model.resnet),
                init=(lambda: init_head_from_branches(model)) if cfg.head_init == "branches" else None,
            ),
        ]
    if isinstance(model, nets.VGG16Net):
        blocks = cfg.vgg_frozen_blocks if cfg.vgg_frozen_blocks is not None else 0

        def setup_vgg() -> None:
            nets.freeze_vgg_for_finetune(model, frozen_conv_blocks=blocks)

        return [StagePlan("vgg16", model, model, setup_vgg)]
    raise TypeError(f"no training schedule for {type(model).__name__}")


class JointEnsemble(nn.Module):
    """The ensemble trained end to end: in training mode the joint head's logits plus each
    branch head's logits (deep supervision keeps both branches discriminative on their
    own, as stage 1 of seed 001 does); in eval mode the joint head's logits only."""

    def __init__(self, model: nets.EnsembleNet):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        a = self.model.alexnet.embed(x)
        r = self.model.resnet.embed(x)
        main = self.model.head(torch.cat([a, r], dim=1))
        if self.training:
            return main, self.model.alexnet.fc(a), self.model.resnet.fc(r)
        return main


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based): linear warm-up, then
    constant or cosine decay to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule != "cosine":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * t))


def make_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (seed) or AdamW; AdamW decays weight matrices/kernels only, not biases or norms."""
    if cfg.optimizer == "adamw":
        decay = [p for p in params if p.ndim >= 2]
        rest = [p for p in params if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class WeightEMA:
    """Exponential moving average of a module's floating-point state (weights and
    BatchNorm statistics); integer buffers are copied. The decay warms up as
    ``min(decay, (1 + t) / (10 + t))`` after ``t`` updates, so that on short runs (a few
    hundred steps on small data) the average does not lag behind by most of the run."""

    def __init__(self, module: nn.Module, decay: float, state: dict[str, torch.Tensor] | None = None, updates: int = 0):
        self.module, self.decay, self.updates = module, decay, updates
        src = state if state is not None else module.state_dict()
        self.state = {k: v.detach().clone().to(module.state_dict()[k].device) for k, v in src.items()}

    @torch.no_grad()
    def update(self) -> None:
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        self.updates += 1
        for k, v in self.module.state_dict().items():
            if v.is_floating_point():
                self.state[k].mul_(d).add_(v.detach(), alpha=1.0 - d)
            else:
                self.state[k].copy_(v)

    def swap(self) -> None:
        """Exchange the module's weights and the averaged ones (call twice to undo)."""
        current = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        self.module.load_state_dict(self.state)
        self.state = current


def patient_auc(patients: Sequence[str], labels: Sequence[int], probs: Sequence[float]) -> float:
    """AUC over patients scored by the mean probability of their images (nan if one class)."""
    from busviewer.training.metrics import patient_level

    _, truth, _, mean_prob = patient_level(patients, labels, probs)
    if len(set(truth)) < 2:
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, mean_prob))


@torch.no_grad()
def init_head_from_branches(model: nets.EnsembleNet) -> None:
    """Joint head := average of the branch heads: ``head([a, r]) = (fc_a(a) + fc_r(r)) / 2``."""
    n_a = model.alexnet.fc.in_features
    model.head.weight[:, :n_a].copy_(0.5 * model.alexnet.fc.weight)
    model.head.weight[:, n_a:].copy_(0.5 * model.resnet.fc.weight)
    model.head.bias.copy_(0.5 * (model.alexnet.fc.bias + model.resnet.fc.bias))


def set_train_mode(model: nn.Module, plan: StagePlan) -> None:
    """Eval everywhere except the stage's network; frozen BatchNorm layers keep their statistics."""
    model.eval()
    plan.forward.train()
    for m in plan.frozen_eval:
        m.eval()
    for m in plan.forward.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()


@dataclass
class EarlyStopping:
    patience: int
    min_delta: float = 0.0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, loss: float, epoch: int) -> bool:
        """Record an epoch's validation loss; True if it is the new best."""
        if math.isfinite(loss) and loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.bad_epochs = loss, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_loss": self.best_loss if math.isfinite(self.best_loss) else None,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
        }

    def load(self, d: dict[str, Any]) -> None:
        self.best_loss = math.inf if d.get("best_loss") is None else float(d["best_loss"])
        self.best_epoch = int(d.get("best_epoch", 0))
        self.bad_epochs = int(d.get("bad_epochs", 0))


class DistributedWeightedSampler(Sampler[int]):
    """Class-balancing sampling with replacement, seeded per epoch, sharded across ranks."""

    def __init__(self, weights: Sequence[float], seed: int = 0, num_replicas: int = 1, rank: int = 0):
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.seed, self.num_replicas, self.rank, self.epoch = seed, num_replicas, rank, 0
        self.num_samples = math.ceil(len(self.weights) / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        total = self.num_samples * self.num_replicas
        idx = torch.multinomial(self.weights, total, replacement=True, generator=g).tolist()
        return iter(idx[self.rank : total : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


class ProgressTracker:
    """Planned vs. done optimiser steps of the whole run (for ``StepDone.progress``)."""

    def __init__(self, total_steps: int = 1):
        self.total = max(1, total_steps)
        self.done = 0

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)

    @property
    def fraction(self) -> float:
        return self.done / self.total


@dataclass
class PhaseOutcome:
    history: list[dict[str, Any]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)


class PhaseTrainer:
    """Trains one model through its stages, resuming from ``checkpoint_path`` if present."""

    def __init__(
        self,
        *,
        model: nn.Module,
        plans: list[StagePlan],
        train_ds: ImageDataset,
        val_ds: ImageDataset,
        cfg: TrainConfig,
        device: torch.device,
        dist: ddp.DistInfo,
        emit: Callable[[Event], None],
        cancel: Any,
        phase: str,
        checkpoint_path: Path,
        tracker: ProgressTracker,
        amp_dtype: torch.dtype | None = None,
        seed: int = 0,
    ):
        self.model, self.plans, self.cfg = model, plans, cfg
        self.train_ds, self.val_ds = train_ds, val_ds
        self.device, self.dist, self.emit, self.cancel = device, dist, emit, cancel
        self.phase, self.checkpoint_path, self.tracker = phase, Path(checkpoint_path), tracker
        self.amp_dtype, self.seed = amp_dtype, seed
        self.current: tuple[str | None, int | None] = (None, None)
        self._step_s: float | None = None
        n_train = len(train_ds)
        per_rank = math.ceil(n_train / max(1, dist.world_size))
        steps = math.ceil(per_rank / cfg.batch_size)
        self.steps_per_epoch = min(steps, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else steps

    # ------------------------------------------------------------------ helpers
    def planned_steps(self) -> int:
        return len(self.plans) * self.cfg.epochs * self.steps_per_epoch

    def check_cancel(self) -> None:
        flag = bool(self.cancel is not None and self.cancel.is_set())
        if ddp.any_true(flag, self.dist, self.device):
            stage, epoch = self.current
            raise TrainingCancelled(self.phase, stage, epoch)

    def _sampler(self, stage_index: int) -> Sampler[int]:
        w, r = max(1, self.dist.world_size), self.dist.rank
        seed = self.seed * 101 + stage_index
        if self.cfg.balance == "sampler":
            return DistributedWeightedSampler(sample_weights(self.train_ds.labels), seed, w, r)
        return DistributedSampler(
            torch_dataset(self.train_ds), num_replicas=w, rank=r, shuffle=True, seed=seed, drop_last=False
        )

    def _criterion(self) -> nn.Module:
        ls = self.cfg.label_smoothing
        if self.cfg.balance == "loss":
            weight = torch.tensor(class_weights(self.train_ds.labels), dtype=torch.float32, device=self.device)
            return nn.CrossEntropyLoss(weight=weight, label_smoothing=ls)
        return nn.CrossEntropyLoss(label_smoothing=ls)

    def _loss(
        self, criterion: nn.Module, out: Any, y: torch.Tensor, y2: torch.Tensor | None, lam: float
    ) -> torch.Tensor:
        """Cross-entropy of the logits (plus ``aux_weight`` x each auxiliary head's), mixed
        between ``y`` and ``y2`` with weight ``lam`` under mixup."""
        outs = out if isinstance(out, tuple) else (out,)
        weights = [1.0] + [self.cfg.aux_weight] * (len(outs) - 1)
        total = outs[0].new_zeros(()).float()
        for w, logits in zip(weights, outs):
            loss = criterion(logits.float(), y)
            if y2 is not None:
                loss = lam * loss + (1.0 - lam) * criterion(logits.float(), y2)
            total = total + w * loss
        return total

    @property
    def val_class_weight(self) -> torch.Tensor | None:
        """Class weights of the validation loss: with class balancing (``loss`` or
        ``sampler``) the validation loss is weighted like the balanced training objective
        (inverse training-class frequencies); an unweighted loss would reward the
        majority-class prior and stop training too early."""
        if self.cfg.balance == "none":
            return None
        return torch.tensor(class_weights(self.train_ds.labels), dtype=torch.float32)

    def _save(
        self,
        meta: dict[str, Any],
        best: dict[str, torch.Tensor] | None,
        optim: Any,
        ema: dict[str, torch.Tensor] | None = None,
    ) -> None:
        if self.dist.is_main and self.cfg.checkpoints:
            save_checkpoint(
                self.checkpoint_path,
                meta | {"phase": self.phase},
                self.model.state_dict(),
                best_state=best,
                optimizer_state=optim.state_dict() if optim is not None else None,
                ema_state=ema,
            )
        ddp.barrier(self.dist)

    # ------------------------------------------------------------------ main
    def run(self) -> PhaseOutcome:
        ck: Checkpoint | None = None
        if self.checkpoint_path.is_file():
            ck = load_checkpoint(self.checkpoint_path, device="cpu")
            self.model.load_state_dict(ck.model)
        start_stage = int(ck.meta["stage_index"]) if ck else 0
        out = PhaseOutcome(
            history=list(ck.meta.get("history", [])) if ck else [],
            stages=list(ck.meta.get("stages", [])) if ck else [],
        )
        self.tracker.advance(start_stage * self.cfg.epochs * self.steps_per_epoch)
        for si, plan in enumerate(self.plans):
            if si < start_stage:
                continue
            self._train_stage(si, plan, ck if (ck is not None and si == start_stage) else None, out)
        nets.set_requires_grad(self.model, False)
        self.model.eval()
        return out

    def _train_stage(self, si: int, plan: StagePlan, ck: Checkpoint | None, out: PhaseOutcome) -> None:
        cfg = self.cfg
        plan.setup()
        params = [p for p in plan.forward.parameters() if p.requires_grad]
        n_params = sum(p.numel() for p in params)
        if not params:
            raise ValueError(f"stage {plan.name}: nothing to train (every layer frozen)")
        optim = make_optimizer(params, cfg)
        use_scaler = self.amp_dtype == torch.float16 and self.device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        es = EarlyStopping(cfg.patience, cfg.min_delta)
        best: dict[str, torch.Tensor] | None = None
        start_epoch = 0
        if ck is not None:
            if ck.rng is not None:
                restore_rng(*ck.rng)
            start_epoch = int(ck.meta.get("epoch", 0))
            if start_epoch > 0:
                es.load(ck.meta.get("early_stopping", {}))
                best = ck.best
                if ck.meta.get("best_is_current"):
                    best = {k: v.detach().clone() for k, v in plan.state_module.state_dict().items()}
                if ck.optimizer is not None:
                    optim.load_state_dict(ck.optimizer)
                if use_scaler and ck.meta.get("scaler"):
                    scaler.load_state_dict(ck.meta["scaler"])
        if start_epoch == 0 and plan.init is not None:
            plan.init()
        ema = None
        if cfg.ema > 0:
            resumed = ck if start_epoch > 0 else None
            ema = WeightEMA(
                plan.state_module,
                cfg.ema,
                resumed.ema if resumed is not None else None,
                start_epoch * self.steps_per_epoch if resumed is not None else 0,
            )
        self.tracker.advance(start_epoch * self.steps_per_epoch)

        fwd: nn.Module = plan.forward
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            fwd = DistributedDataParallel(plan.forward, device_ids=ids)
        sampler = self._sampler(si)
        loader = make_loader(self.train_ds, cfg.batch_size, cfg.num_workers, sampler=sampler, device=self.device)
        val_loader = make_loader(self.val_ds, cfg.eval_batch_size, cfg.num_workers, device=self.device)
        criterion = self._criterion()
        steps = self.steps_per_epoch
        total_steps, warmup_steps = cfg.epochs * steps, cfg.warmup_epochs * steps
        val_patients = [smp.patient for smp in self.val_ds.samples]
        self.emit(StageStarted(self.phase, plan.name, cfg.epochs, steps, n_params, start_epoch + 1))

        epoch = start_epoch
        while epoch < cfg.epochs and not es.should_stop:
            self.current = (plan.name, epoch + 1)
            self.emit(EpochStarted(plan.name, epoch + 1, cfg.epochs, self.phase))
            sampler.set_epoch(epoch)  # type: ignore[attr-defined]
            set_train_mode(self.model, plan)
            t_epoch = time.monotonic()
            loss_sum, n_seen = 0.0, 0
            for step, (x, y, _) in enumerate(loader):
                if step >= steps:
                    break
                self.check_cancel()
                t0 = time.monotonic()
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
                y2, lam = None, 1.0
                if cfg.mixup > 0 and x.shape[0] > 1:
                    lam = float(np.random.beta(cfg.mixup, cfg.mixup))
                    perm = torch.randperm(x.shape[0], device=x.device)
                    x, y2 = lam * x + (1.0 - lam) * x[perm], y[perm]
                factor = lr_factor(epoch * steps + step, total_steps, warmup_steps, cfg.schedule)
                for group in optim.param_groups:
                    group["lr"] = cfg.lr * factor
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                    outputs = fwd(x)
                loss = self._loss(criterion, outputs, y, y2, lam)
                optim.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optim)
                scaler.update()
                if ema is not None:
                    ema.update()
                lv = float(loss.item())
                loss_sum += lv * int(y.numel())
                n_seen += int(y.numel())
                dt = time.monotonic() - t0
                self._step_s = dt if self._step_s is None else 0.8 * self._step_s + 0.2 * dt
                self.tracker.advance()
                remaining = (cfg.epochs - epoch - 1) * steps + (steps - step - 1)
                self.emit(
                    StepDone(
                        plan.name,
                        epoch + 1,
                        step + 1,
                        steps,
                        lv,
                        remaining * self._step_s,
                        self.phase,
                        self.tracker.fraction,
                    )
                )
            self.check_cancel()
            train_loss = ddp.mean_across(loss_sum / max(n_seen, 1), self.dist, self.device)
            if ema is not None:
                ema.swap()  # validate (and keep as best) the averaged weights
            probs, labels, val_loss = predict_loader(
                plan.forward, val_loader, self.device, self.amp_dtype, self.check_cancel, self.val_class_weight
            )
            val = binary_metrics(labels.tolist(), probs.tolist(), cfg.threshold, roc=False)
            val_metrics = {k: val[k] for k in ("accuracy", "sensitivity", "specificity", "auc")}
            val_metrics["patient_auc"] = patient_auc(val_patients, labels.tolist(), probs.tolist())
            val_loss = float(ddp.broadcast_object(val_loss, self.dist))
            score = val_loss
            if cfg.early_stop == "val_auc" and math.isfinite(val_metrics["patient_auc"]):
                score = -float(val_metrics["patient_auc"]) + 1e-3 * val_loss  # the loss only breaks ties
            improved = es.update(score, epoch + 1)
            if improved:
                best = {k: v.detach().clone() for k, v in plan.state_module.state_dict().items()}
            if ema is not None:
                ema.swap()
            epoch_s = time.monotonic() - t_epoch
            record = {
                "phase": self.phase,
                "stage": plan.name,
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "best": improved,
                "epoch_s": epoch_s,
            } | {f"val_{k}": v for k, v in val_metrics.items()}
            out.history.append(record)
            self.emit(
                EpochDone(
                    plan.name, epoch + 1, cfg.epochs, train_loss, val_loss, val_metrics, improved, epoch_s, self.phase
                )
            )
            epoch += 1
            if es.should_stop:
                self.tracker.advance((cfg.epochs - epoch) * steps)
            self._save(
                {
                    "stage_index": si,
                    "stage": plan.name,
                    "epoch": epoch,
                    "early_stopping": es.to_dict(),
                    "history": out.history,
                    "stages": out.stages,
                    "scaler": scaler.state_dict() if use_scaler else None,
                    "best_is_current": improved and ema is None,  # then the best weights are the model's
                },
                None if (improved and ema is None) else best,
                optim,
                ema.state if ema is not None else None,
            )

        stopped_early = es.should_stop and epoch < cfg.epochs
        if best is not None:
            plan.state_module.load_state_dict(best)
        summary = {
            "stage": plan.name,
            "epochs_run": epoch,
            "best_epoch": es.best_epoch,
            "best_val_loss": es.best_loss if math.isfinite(es.best_loss) else None,
            "stopped_early": stopped_early,
            "trainable_params": n_params,
            "early_stop": cfg.early_stop,
        }
        out.stages.append(summary)
        self._save(
            {"stage_index": si + 1, "stage": None, "epoch": 0, "history": out.history, "stages": out.stages},
            None,
            None,
        )
        self.emit(
            StageDone(
                self.phase,
                plan.name,
                epoch,
                es.best_epoch,
                es.best_loss if math.isfinite(es.best_loss) else float("nan"),
                stopped_early,
            )
        )
