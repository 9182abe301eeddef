"""The whole pipeline on tiny synthetic data: cancel, resume, register, evaluate, CLI."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

import pytest

from busviewer.training import events as ev


def check_event_grammar(events: list[ev.Event]) -> None:
    """RunStarted DataLoaded (PhaseStarted (StageStarted (EpochStarted StepDone* EpochDone)*
    StageDone)* PhaseDone)* Registered? terminal -- Notices anywhere; resumed phases only PhaseDone."""
    seq = [e for e in events if not isinstance(e, ev.Notice)]
    assert isinstance(seq[0], ev.RunStarted)
    assert isinstance(seq[-1], ev.TERMINAL_EVENTS)
    assert sum(isinstance(e, ev.TERMINAL_EVENTS) for e in seq) == 1
    state = "run"
    phase = stage = None
    epoch = 0
    for e in seq[1:-1]:
        if isinstance(e, ev.DataLoaded):
            assert state == "run"
            state = "data"
        elif isinstance(e, ev.PhaseStarted):
            assert state in ("data", "phase_done")
            state, phase = "phase", e.phase
        elif isinstance(e, ev.StageStarted):
            assert state in ("phase", "stage_done") and e.phase == phase
            state, stage, epoch = "stage", e.stage, e.start_epoch - 1
        elif isinstance(e, ev.EpochStarted):
            assert state in ("stage", "epoch_done") and (e.phase, e.stage) == (phase, stage)
            assert e.epoch == epoch + 1
            state, epoch, step = "epoch", e.epoch, 0
        elif isinstance(e, ev.StepDone):
            assert state == "epoch" and (e.stage, e.epoch) == (stage, epoch)
            assert e.step == step + 1 and e.step <= e.steps and 0 <= e.progress <= 1 and e.eta_s >= 0
            step = e.step
        elif isinstance(e, ev.EpochDone):
            assert state == "epoch" and e.epoch == epoch and step >= 1
            state = "epoch_done"
        elif isinstance(e, ev.StageDone):
            assert state == "epoch_done" and e.stage == stage and 1 <= e.best_epoch <= e.epochs_run
            state = "stage_done"
        elif isinstance(e, ev.PhaseDone):
            if e.resumed:
                assert state in ("data", "phase_done")
            else:
                assert state == "stage_done" and e.phase == phase
            state = "phase_done"
        elif isinstance(e, ev.Registered):
            assert state == "phase_done"
            state = "registered"
        else:
            raise AssertionError(f"unexpected event {e}")
    if isinstance(seq[-1], ev.RunFinished):
        assert state in ("phase_done", "registered")


def registry_files(registry) -> list[Path]:  # type: ignore[no-untyped-def]
    return sorted(p for p in registry.user_dir.rglob("*") if p.is_file())


def test_cancel_resume_register_evaluate(manifest: Path, tmp_path: Path, registry, fast_config) -> None:  # type: ignore[no-untyped-def]
    from busviewer.cli.train import cmd_evaluate
    from busviewer.training.run import resume_training, run_training
    from busviewer.training.splits import SplitPlan

    run_dir = tmp_path / "run"
    cfg = fast_config(manifest, run_dir, name="tiny-ens")
    cancel = threading.Event()
    events: list[ev.Event] = []

    def on_event(e: ev.Event) -> None:
        events.append(e)
        if isinstance(e, ev.EpochDone) and e.stage == "alexnet" and e.epoch == 1:
            cancel.set()

    result = run_training(cfg, on_event, cancel, registry=registry)
    assert result.status == "cancelled" and result.model is None
    check_event_grammar(events)
    cancelled = events[-1]
    assert isinstance(cancelled, ev.Cancelled) and (cancelled.phase, cancelled.stage, cancelled.epoch) == (
        "final",
        "alexnet",
        2,
    )
    steps_after = [e for e in events if isinstance(e, ev.StepDone) and e.epoch == 2]
    assert steps_after == []  # stopped before the next step
    assert cancelled.checkpoint == run_dir / "final" / "checkpoint.safetensors" and cancelled.checkpoint.is_file()
    assert registry_files(registry) == [] and registry.list() == []
    assert not (run_dir / "registered.json").exists()

    # the split: patient-wise, saved with the run
    plan = SplitPlan.load(run_dir / "split.json")
    plan.fixed.check_disjoint()
    assert "PMIX" in plan.fixed.train + plan.fixed.val + plan.fixed.test

    resumed: list[ev.Event] = []
    result = resume_training(run_dir, resumed.append, registry=registry)
    assert result.status == "finished"
    check_event_grammar(resumed)
    assert resumed[0].resumed
    first_stage = next(e for e in resumed if isinstance(e, ev.StageStarted))
    assert (first_stage.stage, first_stage.start_epoch) == ("alexnet", 2)
    assert [e.epoch for e in resumed if isinstance(e, ev.EpochStarted) and e.stage == "alexnet"] == [2]
    assert [e.stage for e in resumed if isinstance(e, ev.StageDone)] == ["alexnet", "resnet", "head"]

    # registered (not activated), with a complete card
    assert result.model == "tiny-ens:1"
    entry = registry.get("tiny-ens", 1)
    assert not entry.active and registry.active("ensemble") is None
    files = [p.name for p in registry_files(registry)]
    assert files == ["tiny-ens-v1.json", "tiny-ens-v1.safetensors"]
    card = entry.card
    assert card.input_size == 64 and card.classes == ["benign", "malignant"]
    assert card.pretrained_init == "random" and card.parent is None
    assert card.training["data"]["images_per_class"] == {"benign": 17, "malignant": 18}
    assert card.training["data"]["dropped"] == {"normal": 3}
    assert Path(card.training["split"]["file"]) == (run_dir / "split.json").resolve()
    assert card.metrics["test"]["image"]["n"] == result.metrics["test"]["n_images"]
    assert json.loads((run_dir / "registered.json").read_text())["model"] == "tiny-ens:1"
    for name in ("metrics.json", "roc.png", "loss.png", "data_summary.json", "config.json", "events.jsonl"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "final" / "checkpoint.safetensors").exists()
    assert (run_dir / "final" / "predictions.csv").is_file()
    assert not (run_dir / "final" / "model.safetensors").exists()  # moved into the registry
    again = resume_training(run_dir, registry=registry)  # a finished run: nothing to do, same model
    assert again.status == "finished" and again.model == "tiny-ens:1" and len(registry_files(registry)) == 2

    # evaluate the registered model on the run's test patients: same numbers as the run
    out = tmp_path / "eval"
    args = argparse.Namespace(
        model="tiny-ens:1",
        data=str(manifest),
        split_file=str(run_dir / "split.json"),
        part="test",
        include_normal=False,
        label_sources=None,
        rois=False,
        device="cpu",
        batch_size=16,
        threshold=0.5,
        out=str(out),
        json=False,
    )
    assert cmd_evaluate(args) == 0  # the default registry: the same user models folder
    report = json.loads((out / "metrics.json").read_text())
    test = result.metrics["test"]
    auc = test["image"]["auc"]
    assert report["image"]["auc"] == (pytest.approx(auc, abs=1e-6) if auc is not None else None)
    assert report["image"]["confusion_matrix"] == test["image"]["confusion_matrix"]
    assert report["patient"]["confusion_matrix"] == test["patient"]["confusion_matrix"]
    assert report["recognition_rate"] == pytest.approx(test["recognition_rate"])


def test_cli_train_with_folds_without_registering(manifest: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from busviewer.cli import train as cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    run_dir = tmp_path / "cv"
    args = parser.parse_args(
        [
            "train",
            "--model",
            "ensemble",
            "--data",
            str(manifest),
            "--folds",
            "2",
            "--epochs",
            "1",
            "--patience",
            "1",
            "--batch-size",
            "8",
            "--input-size",
            "64",
            "--device",
            "cpu",
            "--seed",
            "1",
            "--max-steps",
            "1",
            "--no-pretrained",
            "--alexnet-trainable",
            "1",
            "--resnet-frozen",
            "6",
            "--out",
            str(run_dir),
            "--no-register",
            "--quiet",
            "--no-augment",
            "--no-checkpoints",
        ]
    )
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "cross-validation, 2 folds" in out and "test patients" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["cv"]["folds"]) == 2
    assert set(metrics["cv"]["mean_sd"]["image"]["auc"]) == {"mean", "sd", "n"}
    assert not (run_dir / "registered.json").exists()
    from busviewer.core.paths import user_models_dir

    assert list(user_models_dir().iterdir()) == []
    split = json.loads((run_dir / "split.json").read_text())
    tested = [p for f in split["folds"] for p in f["test"]]
    assert len(tested) == len(set(tested))
    for f in split["folds"]:
        assert not (set(f["train"]) & set(f["test"])) and not (set(f["val"]) & set(f["test"]))
    assert (run_dir / "cv_roc.png").is_file() or all(r["image"]["auc"] is None for r in metrics["cv"]["folds"])
    assert args.handler(args) == 2  # the run directory is taken


def test_vgg16_schedule() -> None:
    import warnings

    from busviewer.ai.networks import build_model
    from busviewer.training.config import TrainConfig
    from busviewer.training.loop import stage_plans

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model("vgg16", pretrained=False)
    plans = stage_plans(model, TrainConfig(data="x", architecture="vgg16", vgg_frozen_blocks=2), True)
    assert [p.name for p in plans] == ["vgg16"]
    plans[0].setup()
    assert not any(p.requires_grad for p in model.features[:10].parameters())  # blocks 1-2 frozen
    assert all(p.requires_grad for p in model.features[10:].parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())


def test_ensemble_schedule_with_imagenet_like_weights() -> None:
    import warnings

    from busviewer.ai.networks import build_model
    from busviewer.training.config import TrainConfig
    from busviewer.training.loop import set_train_mode, stage_plans

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model("ensemble", pretrained=False)
    alex, res, head = stage_plans(model, TrainConfig(data="x"), pretrained_like=True)
    alex.setup()
    trainable = {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier", "fc"} and not any(p.requires_grad for p in model.resnet.parameters())
    res.setup()
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith("resnet.") for n in names)
    assert not any(n.startswith(("resnet.body.conv1", "resnet.body.layer2")) for n in names)
    assert any(n.startswith("resnet.body.layer3") for n in names)
    set_train_mode(model, res)
    assert model.resnet.training and not model.resnet.body.bn1.training  # frozen BN keeps its statistics
    import torch

    x = torch.randn(2, 3, 64, 64)
    head.init()  # the joint head starts as the average of the branch heads
    model.eval()
    with torch.no_grad():
        expected = (model.alexnet(x) + model.resnet(x)) / 2
        assert torch.allclose(model(x), expected, atol=1e-5)
    head.setup()
    set_train_mode(model, head)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}
    assert not model.alexnet.training and not model.resnet.training
