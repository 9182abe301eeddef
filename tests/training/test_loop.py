"""Checkpoints, early stopping, resume, cancel and DDP on a tiny network (fast)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from busviewer.training import distributed as ddp
from busviewer.training.checkpoint import load_checkpoint, read_meta, save_checkpoint
from busviewer.training.config import TrainConfig
from busviewer.training.data import ImageCache, ImageDataset, Sample
from busviewer.training.events import EpochDone, EpochStarted, StepDone
from busviewer.training.loop import (
    EarlyStopping,
    PhaseTrainer,
    ProgressTracker,
    StagePlan,
    TrainingCancelled,
)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def tiny_data(n: int = 24, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    rng = np.random.default_rng(seed)
    pixels: dict[str, np.ndarray] = {}
    samples = []
    for i in range(n):
        label = i % 2
        arr = rng.integers(0, 80, (20, 20, 3)).astype(np.uint8)
        if label:
            arr[5:15, 5:15] += 150
        s = Sample(Path(f"/mem/{i}.png"), label, f"p{i}")
        pixels[s.key] = arr
        samples.append(s)
    cache = ImageCache(reader=lambda s: pixels[s.key])
    from busviewer.training.augment import eval_transform, train_transform

    cfg = TrainConfig(data="x")
    tr = train_transform(16, cfg.augment, cfg.mean, cfg.std)
    ev = eval_transform(16, cfg.mean, cfg.std)
    return ImageDataset(samples[:16], tr, cache), ImageDataset(samples[16:], ev, cache)


def make_trainer(
    ckpt: Path,
    events: list,
    cancel=None,
    epochs: int = 3,
    seed: int = 0,
    dist=None,  # type: ignore[no-untyped-def]
    init_seed: int = 0,
    **cfg_kw,
):
    torch.manual_seed(init_seed)
    model = Tiny()
    train_ds, val_ds = tiny_data()

    def setup() -> None:
        for p in model.parameters():
            p.requires_grad_(True)

    plans = [StagePlan("tiny", model, model, setup)]
    cfg = TrainConfig(data="x", input_size=64, epochs=epochs, patience=10, batch_size=4, lr=1e-2, **cfg_kw)
    trainer = PhaseTrainer(
        model=model,
        plans=plans,
        train_ds=train_ds,
        val_ds=val_ds,
        cfg=cfg,
        device=torch.device("cpu"),
        dist=dist or ddp.DistInfo(),
        emit=events.append,
        cancel=cancel,
        phase="final",
        checkpoint_path=ckpt,
        tracker=ProgressTracker(100),
        seed=seed,
    )
    return trainer, model


def test_early_stopping_logic() -> None:
    es = EarlyStopping(patience=2, min_delta=0.01)
    assert es.update(1.0, 1) and not es.should_stop
    assert not es.update(0.995, 2)  # not better by min_delta
    assert es.update(0.9, 3)
    assert not es.update(0.95, 4) and not es.should_stop
    assert not es.update(float("nan"), 5) and es.should_stop
    assert (es.best_epoch, es.best_loss) == (3, 0.9)
    again = EarlyStopping(2)
    again.load(es.to_dict())
    assert again.to_dict() == es.to_dict()


def test_checkpoint_roundtrip_without_pickle(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Tiny()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(2, 3, 16, 16)).sum().backward()
        opt.step()
    path = save_checkpoint(
        tmp_path / "c.safetensors",
        {"epoch": 3, "stage": "tiny"},
        model.state_dict(),
        best_state=model.state_dict(),
        optimizer_state=opt.state_dict(),
    )
    expected_next = torch.rand(5)
    with safe_open(str(path), framework="pt") as f:  # a plain safetensors file
        assert "model.fc.weight" in f.keys()  # noqa: SIM118 - safe_open has keys() but no __contains__
    assert read_meta(path) == {"epoch": 3, "stage": "tiny"}
    torch.manual_seed(123)
    ck = load_checkpoint(path)
    fresh = Tiny()
    fresh.load_state_dict(ck.model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k])
    opt2 = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    opt2.load_state_dict(ck.optimizer)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for pid, st in s1["state"].items():
        for key, val in st.items():
            assert torch.equal(torch.as_tensor(val), torch.as_tensor(s2["state"][pid][key]))
    from busviewer.training.checkpoint import restore_rng

    restore_rng(*ck.rng)
    assert torch.equal(torch.rand(5), expected_next)
    assert not list(tmp_path.glob(".*tmp*"))


def test_weighted_validation_loss() -> None:
    from busviewer.training.evaluate import make_loader, predict_loader

    torch.manual_seed(0)
    model = Tiny()
    _, val_ds = tiny_data()
    w = torch.tensor([0.5, 3.0])
    probs, labels, loss = predict_loader(model, make_loader(val_ds, 3), torch.device("cpu"), class_weight=w)
    logits = torch.log(torch.stack([1 - torch.tensor(probs), torch.tensor(probs)], 1).float())
    expected = nn.functional.cross_entropy(logits, torch.tensor(labels), weight=w)
    assert loss == pytest.approx(float(expected), rel=1e-4)


def test_best_weights_restored(tmp_path: Path) -> None:
    events: list = []
    trainer, model = make_trainer(tmp_path / "c.safetensors", events, epochs=4)
    out = trainer.run()
    best = min(out.history, key=lambda h: h["val_loss"])
    from busviewer.training.evaluate import make_loader, predict_loader

    w = trainer.val_class_weight
    assert w is not None  # class-weighted like the training loss (balance="loss")
    _, _, loss = predict_loader(model, make_loader(trainer.val_ds, 8), torch.device("cpu"), class_weight=w)
    assert loss == pytest.approx(best["val_loss"], rel=1e-5)
    assert out.stages[0]["best_epoch"] == best["epoch"]


def test_resume_continues_exactly(tmp_path: Path) -> None:
    ref_events: list = []
    ref, ref_model = make_trainer(tmp_path / "ref.safetensors", ref_events, epochs=3)
    ref.run()

    cancel = threading.Event()
    events: list = []

    def stop_after_first_epoch(ev) -> None:  # type: ignore[no-untyped-def]
        events.append(ev)
        if isinstance(ev, EpochDone) and ev.epoch == 1:
            cancel.set()

    ck = tmp_path / "run.safetensors"
    first, _ = make_trainer(ck, [], cancel=cancel, epochs=3)
    first.emit = stop_after_first_epoch
    with pytest.raises(TrainingCancelled) as info:
        first.run()
    assert info.value.epoch == 2 and not any(isinstance(e, StepDone) and e.epoch == 2 for e in events)
    assert read_meta(ck)["epoch"] == 1
    saved = load_checkpoint(ck).model

    resumed_events: list = []
    seen_weights: dict = {}
    resumed, model = make_trainer(ck, resumed_events, epochs=3, init_seed=99)  # different init: must be replaced

    def capture(ev) -> None:  # type: ignore[no-untyped-def]
        resumed_events.append(ev)
        if isinstance(ev, EpochStarted) and not seen_weights:
            seen_weights.update({k: v.clone() for k, v in model.state_dict().items()})

    resumed.emit = capture
    resumed.run()
    starts = [e.epoch for e in resumed_events if isinstance(e, EpochStarted)]
    assert starts == [2, 3]  # the epoch counter continues
    for k, v in saved.items():  # weights at the restart are the checkpoint's
        assert torch.equal(seen_weights[k], v), k
    for k, v in ref_model.state_dict().items():  # and training continues exactly as without the break
        assert torch.allclose(v, model.state_dict()[k], atol=1e-6), k


def test_cancel_stops_within_one_step(tmp_path: Path) -> None:
    cancel = threading.Event()
    events: list = []

    def on(ev) -> None:  # type: ignore[no-untyped-def]
        events.append(ev)
        if isinstance(ev, StepDone) and ev.step == 1:
            cancel.set()

    trainer, _ = make_trainer(tmp_path / "c.safetensors", events, cancel=cancel)
    trainer.emit = on
    with pytest.raises(TrainingCancelled):
        trainer.run()
    assert sum(isinstance(e, StepDone) for e in events) == 1
    assert not (tmp_path / "c.safetensors").exists()  # no epoch finished: no checkpoint


def test_weighted_sampler_is_balanced_and_seeded(tmp_path: Path) -> None:
    from busviewer.training.loop import DistributedWeightedSampler

    labels = [0] * 90 + [1] * 10
    from busviewer.training.data import sample_weights

    s = DistributedWeightedSampler(sample_weights(labels), seed=1)
    s.set_epoch(0)
    idx = list(s)
    assert len(idx) == 100 and 30 < sum(labels[i] for i in idx) < 70
    assert list(s) == idx
    s.set_epoch(1)
    assert list(s) != idx
    events: list = []
    trainer, _ = make_trainer(tmp_path / "c.safetensors", events, epochs=1, balance="sampler")
    trainer.run()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_gloo_world_size_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    info = ddp.setup(True, "cpu")
    try:
        assert info.enabled and info.world_size == 1 and info.is_main
        events: list = []
        trainer, _ = make_trainer(tmp_path / "c.safetensors", events, epochs=1, dist=info)
        out = trainer.run()
        assert len(out.history) == 1 and (tmp_path / "c.safetensors").is_file()
    finally:
        ddp.cleanup(info)
    assert not torch.distributed.is_initialized()
