"""The training recipes and their levers: presets, schedule, EMA, joint ensemble, variants."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from busviewer.ai import networks as nets
from busviewer.ai.modelcard import ModelCard
from busviewer.training.augment import train_transform
from busviewer.training.checkpoint import load_checkpoint, save_checkpoint
from busviewer.training.config import AugmentConfig, TrainConfig
from busviewer.training.loop import JointEnsemble, WeightEMA, lr_factor, make_optimizer, patient_auc, stage_plans
from busviewer.training.recipes import RECIPES, make_config


def test_seed_recipe_is_the_dataclass_defaults() -> None:
    cfg = make_config("seed", data="x")
    ref = TrainConfig(data="x")
    assert cfg.recipe == "seed"
    assert {k: v for k, v in cfg.to_dict().items() if k != "recipe"} == {
        k: v for k, v in ref.to_dict().items() if k != "recipe"
    }
    assert (cfg.lr, cfg.optimizer, cfg.early_stop, cfg.variant) == (1e-4, "adam", "val_loss", "classic")


def test_busviewer_recipe_and_overrides() -> None:
    cfg = make_config("busviewer", data="x", lr=3e-4, augment={"rotation": 5.0})
    assert cfg.recipe == "busviewer"
    assert (cfg.optimizer, cfg.schedule, cfg.early_stop, cfg.variant) == ("adamw", "cosine", "val_auc", "bn")
    assert cfg.lr == 3e-4 and cfg.augment.rotation == 5.0 and cfg.augment.gamma > 0
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown recipe"):
        make_config("imagenet", data="x")
    assert set(RECIPES) == {"seed", "busviewer"}


def test_invalid_levers_are_refused() -> None:
    for bad in (
        {"optimizer": "sgd"},
        {"schedule": "step"},
        {"early_stop": "acc"},
        {"variant": "wide"},
        {"ema": 1.0},
        {"ensemble_schedule": "both"},
    ):
        with pytest.raises(ValueError):
            TrainConfig(data="x", **bad)


def test_lr_factor_warmup_then_cosine() -> None:
    total, warm = 100, 10
    f = [lr_factor(s, total, warm, "cosine") for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[9:], f[10:]))  # non-increasing after warm-up
    assert f[-1] < 0.01
    assert lr_factor(50, total, 0, "constant") == 1.0
    assert lr_factor(55, total, 10, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_adamw_decays_only_weight_matrices() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    opt = make_optimizer(list(model.parameters()), TrainConfig(data="x", optimizer="adamw", weight_decay=0.1))
    decays = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decays[id(model[0].weight)] == 0.1
    assert decays[id(model[0].bias)] == 0.0 and decays[id(model[1].weight)] == 0.0


def test_ema_averages_and_swaps() -> None:
    lin = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(lin.weight)
    ema = WeightEMA(lin, decay=0.5, updates=100)  # past the warm-up: decay 0.5
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema.update()
    assert ema.state["weight"].flatten().tolist() == [0.5, 0.5]
    ema.swap()
    assert lin.weight.flatten().tolist() == [0.5, 0.5]
    ema.swap()
    assert lin.weight.flatten().tolist() == [1.0, 1.0]
    fresh = WeightEMA(lin, decay=0.99)  # first update: decay 1/10, mostly the new weights
    with torch.no_grad():
        lin.weight.fill_(2.0)
    fresh.update()
    assert fresh.state["weight"].flatten().tolist() == pytest.approx([1.9, 1.9])


def test_ema_state_survives_a_checkpoint(tmp_path: Path) -> None:
    lin = torch.nn.Linear(2, 2)
    state = {k: v + 1 for k, v in lin.state_dict().items()}
    save_checkpoint(tmp_path / "c.safetensors", {"epoch": 1}, lin.state_dict(), ema_state=state)
    ck = load_checkpoint(tmp_path / "c.safetensors")
    assert ck.ema is not None and torch.equal(ck.ema["weight"], state["weight"])
    save_checkpoint(tmp_path / "d.safetensors", {"epoch": 1}, lin.state_dict())
    assert load_checkpoint(tmp_path / "d.safetensors").ema is None


def test_joint_ensemble_trains_both_branches_with_deep_supervision() -> None:
    model = nets.build_model("ensemble", pretrained=False, variant="bn")
    cfg = TrainConfig(data="x", ensemble_schedule="joint", variant="bn", input_size=64)
    (plan,) = stage_plans(model, cfg, pretrained_like=False)
    assert plan.name == "joint" and isinstance(plan.forward, JointEnsemble)
    plan.setup()
    assert all(p.requires_grad for p in model.parameters())
    x = torch.randn(2, 3, 64, 64)
    plan.forward.train()
    main, aux_a, aux_r = plan.forward(x)
    assert main.shape == aux_a.shape == aux_r.shape == (2, 2)
    plan.forward.eval()
    assert torch.allclose(plan.forward(x), model(x))


@pytest.mark.parametrize("arch", ["ensemble", "vgg16"])
def test_bn_variant_builds_card_and_cam_layer(arch: str) -> None:
    model = nets.build_model(arch, pretrained=False, variant="bn")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    if arch == "vgg16":
        assert sum(p.numel() for p in model.parameters()) < 16_000_000  # GAP + FC(512) + FC(2) head
        assert isinstance(model.cam_layer, torch.nn.Conv2d) and model.cam_layer.out_channels == 512
    else:
        assert model.head.in_features == nets.ALEXNET_FEATURES + nets.RESNET_FEATURES
    card = ModelCard(name="m", version=0, architecture=arch, variant="bn")
    assert ModelCard.from_dict(card.to_dict(), require_registered=False).variant == "bn"
    old = {k: v for k, v in card.to_dict().items() if k != "variant"}
    assert ModelCard.from_dict(old, require_registered=False).variant == "classic"
    with pytest.raises(ValueError):
        nets.build_model(arch, pretrained=False, variant="wide")


def test_patient_auc_uses_mean_probability_per_patient() -> None:
    patients = ["a", "a", "b", "c"]
    assert patient_auc(patients, [1, 1, 0, 0], [0.9, 0.1, 0.4, 0.6]) == pytest.approx(0.5)
    assert patient_auc(patients, [1, 1, 0, 0], [0.9, 0.8, 0.4, 0.6]) == 1.0
    assert math.isnan(patient_auc(["a"], [1], [0.3]))


def test_ultrasound_augmentation_keeps_shape_and_range() -> None:
    import numpy as np

    aug = AugmentConfig(rotation=10, gamma=0.3, noise=0.05, blur=1.0)
    t = train_transform(32, aug, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    out = t(np.full((40, 50, 3), 128, np.uint8))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_busviewer_recipe_trains_registers_bn_and_fine_tuning_keeps_the_variant(
    manifest: Path, tmp_path: Path, fast_config, registry
) -> None:  # type: ignore[no-untyped-def]
    from busviewer.training.recipes import recipe_settings
    from busviewer.training.run import run_training

    bv = {k: v for k, v in recipe_settings("busviewer").items() if k not in ("epochs", "patience", "augment")}
    cfg = fast_config(
        manifest, tmp_path / "bv", recipe="busviewer", alexnet_trainable_last=None, resnet_frozen_first=None, **bv
    )
    first = run_training(cfg, registry=registry)
    assert first.status == "finished"
    card = registry.get(first.model).card
    assert card.variant == "bn" and card.training["recipe"] == "busviewer"
    assert card.training["stages"][0]["stage"] == "joint" and card.training["stages"][0]["early_stop"] == "val_auc"
    # the seed recipe asks for the classic network, but fine-tuning keeps the parent's variant
    second = run_training(fast_config(manifest, tmp_path / "ft", init_from=first.model), registry=registry)
    child = registry.get(second.model).card
    assert child.variant == "bn" and child.parent == first.model
