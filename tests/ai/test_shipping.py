"""Shipped default models: int8 quantisation bound, shard round trip under a tiny size limit,
`ship` with its measured effect and regression set, and the registry's rules for shipped
models (default when nothing is chosen, user override, use-default, read-only, sha256).

Models are built in the test (VGG-16 'bn', random weights, input 32), never the real
shipped files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from synthetic import labelled_pngs

from busviewer.ai.modelcard import ModelCard
from busviewer.ai.networks import build_model
from busviewer.ai.registry import (
    ACTIVE_FILE,
    ModelFileError,
    ModelNotFoundError,
    ModelProtectedError,
    ModelRegistry,
    file_sha256,
)
from busviewer.ai.shards import (
    PART_MARK,
    SCALE_SUFFIX,
    card_shards,
    decode_state,
    dequantize_int8,
    encode_state,
    index_sha256,
    join_parts,
    quantize_int8,
    write_shards,
)
from busviewer.ai.shipping import ShipError, ShipOptions, plan_encoding, regression_check, ship_model

LIMIT = 3_000_000  # bytes: VGG-16's 512x512x3x3 convolutions (4.7 MB in fp16) must be split
LARGE = 100_000  # int8 from this many weights: the 512x512 classifier layer of VGG-16 'bn'


@pytest.fixture(scope="module")
def vgg():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_model("vgg16", "bmode", pretrained=False, variant="bn").eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so fp32 vs fp16 of them would show
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    card = ModelCard(
        "vgg-bn",
        1,
        "vgg16",
        input_size=32,
        pretrained_init="random",
        variant="bn",
        training={"data": {"images": 12, "patients": 6}, "recipe": "busviewer"},
        calibration={"temperature": 1.5},
        operating_points={"high_sensitivity": 0.3, "balanced": 0.5, "high_specificity": 0.7},
    )
    return model, card


@pytest.fixture(scope="module")
def check_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic labelled PNGs (names with spaces and parentheses) plus two 'normal' rows."""
    return labelled_pngs(tmp_path_factory.mktemp("check"))


@pytest.fixture(scope="module")
def shipped(vgg, check_manifest: Path, tmp_path_factory: pytest.TempPathFactory, one_torch_thread):  # type: ignore[no-untyped-def]
    """``vgg-bn:1`` registered as a user model, then shipped (int8 + fp16, 3 MB shards)."""
    model, card = vgg
    root = tmp_path_factory.mktemp("ship")
    source = ModelRegistry(user_dir=root / "user", shipped_dir=root / "none")
    source.save(model, card)
    result = ship_model(
        source,
        "vgg-bn:1",
        ShipOptions(
            out_dir=root / "shipped",
            check_data=check_manifest,
            max_shard_bytes=LIMIT,
            large_linear_min=LARGE,
            command="busviewer models ship vgg-bn:1 (test)",
        ),
    )
    return result, root / "shipped"


def _copy_shipped(shipped, dst: Path) -> Path:  # type: ignore[no-untyped-def]
    shutil.copytree(shipped[1], dst)
    return dst


def test_int8_dequantisation_error_bound() -> None:
    torch.manual_seed(1)
    w = torch.randn(64, 300) * torch.logspace(-4, 1, 64)[:, None]
    w[5] = 0.0
    w[7, 3] = 50.0  # an outlier only costs its own row precision
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and q.shape == w.shape and scale.shape == (64,) and scale.dtype == torch.float32
    back = dequantize_int8(q, scale)
    err = (back - w).abs()
    assert bool((err <= scale[:, None] / 2 * (1 + 1e-5) + 1e-12).all())
    assert float((err / w.abs().amax(1, keepdim=True).clamp_min(1e-30)).max()) <= 0.5 / 127 + 1e-6
    assert bool((back[5] == 0).all()) and bool((q.abs() <= 127).all())
    nonzero = [r for r in range(64) if r != 5]
    assert bool((q[nonzero].abs().amax(1) == 127).all())  # every row uses the full range
    conv = torch.randn(8, 3, 5, 5)  # per output channel for any weight shape
    qc, sc = quantize_int8(conv)
    assert sc.shape == (8,) and float((dequantize_int8(qc, sc) - conv).abs().max()) <= float(sc.max()) / 2 * 1.0001


def test_shards_round_trip_under_a_tiny_limit(vgg, tmp_path: Path) -> None:
    model, _ = vgg
    state = model.state_dict()
    plan = plan_encoding(model, "int8", LARGE)
    assert plan["classifier.0.weight"] == "int8"  # 512 x 512
    assert plan["features.0.weight"] == "fp16" and plan["features.1.running_var"] == "fp32"
    assert plan["classifier.3.weight"] == "fp16"  # 2 x 512: not large
    assert "features.1.num_batches_tracked" not in plan  # integers are stored as they are
    encoded = encode_state(state, plan)
    assert encoded["classifier.0.weight"].dtype == torch.int8
    assert encoded["classifier.0.weight" + SCALE_SUFFIX].shape == (512,)
    shards = write_shards(encoded, tmp_path, "vgg-bn-v1", LIMIT)
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files] == [s.file for s in shards] and len(shards) >= 6
    assert files[0].name == f"vgg-bn-v1-00001-of-{len(shards):05d}.safetensors"
    assert all(p.stat().st_size <= LIMIT for p in files)
    assert all(
        s.sha256 == file_sha256(tmp_path / s.file) and s.bytes == (tmp_path / s.file).stat().st_size for s in shards
    )
    stored: dict[str, torch.Tensor] = {}
    for p in files:
        stored.update(load_file(str(p)))
    split = sorted({k.rpartition(PART_MARK)[0] for k in stored if PART_MARK in k})
    assert "features.40.weight" in split  # the last 512x512x3x3 convolution, cut along dim 0
    assert set(join_parts(stored)) == set(encoded)
    back = decode_state(stored)
    assert set(back) == set(state)
    for k, t in state.items():
        got = back[k]
        assert got.dtype == t.dtype and got.shape == t.shape, k
        if plan.get(k) == "int8":
            _, scale = quantize_int8(t)
            assert bool(((got - t).abs() <= scale[:, None] / 2 * (1 + 1e-5)).all()), k
        elif plan.get(k) == "fp16":
            assert torch.equal(got, t.half().float()), k
        else:
            assert torch.equal(got, t), k  # fp32 and integer tensors are exact
    assert index_sha256(shards) != index_sha256(shards[::-1])  # the order is part of the identity


def test_ship_records_effect_regression_and_loads_as_default(
    shipped, vgg, check_manifest: Path, tmp_path: Path
) -> None:
    result, shipped_dir = shipped
    model32, src = vgg
    card = result.card
    assert result.mode == "int8" and card.ref == "vgg-bn:1" and result.folder == shipped_dir / "vgg-bn"
    info = card.shipping
    assert info["command"] == "busviewer models ship vgg-bn:1 (test)"
    assert info["source"]["ref"] == "vgg-bn:1" and info["source"]["sha256"] != card.sha256
    assert card.sha256 == index_sha256(info["shards"]) and len(info["shards"]) >= 6
    for s in info["shards"]:
        p = result.folder / s["file"]
        assert p.stat().st_size <= LIMIT and file_sha256(p) == s["sha256"]
    assert sorted(p.name for p in result.folder.iterdir()) == sorted(
        [s["file"] for s in info["shards"]] + ["vgg-bn-v1.json"]
    )  # nothing temporary left
    assert not [p for p in shipped_dir.iterdir() if p.name.startswith(".")]
    comp = info["compression"]
    assert comp["used"] == "int8" and comp["encoding"]["int8_tensors"] == ["classifier.0.weight"]
    assert comp["bytes"] < 0.52 * comp["fp32_bytes"]  # fp16 halves, int8 quarters
    eff = comp["effect"]
    assert eff["images"] == 12 and comp["check_data"]["left_out"] == {"normal": 2}
    assert eff["auc_change"] <= 0.005 and eff["max_probability_change"] <= 0.01
    assert eff["max_probability_change"] > 0  # compression does change the outputs a little
    # recipe, calibration and operating points of the source card are kept; the data is cited
    assert card.training["recipe"] == "busviewer" and card.training["data"]["images"] == 12
    assert (
        "Al-Dhabyani" in card.training["data"]["citation"]
        and "10.1016/j.dib.2019.104863" in card.training["data"]["citation"]
    )
    assert card.temperature == 1.5 and card.operating_points == src.operating_points
    reg_rows = info["regression"]["images"]
    assert len(reg_rows) == 6 and {r["label"] for r in reg_rows} == {"benign", "malignant"}
    assert all(not Path(r["image"]).is_absolute() and (check_manifest.parent / r["image"]).is_file() for r in reg_rows)
    # a fresh user folder: the shipped model is the active VGG-16, loads verified, and
    # reproduces its recorded regression probabilities
    reg = ModelRegistry(user_dir=tmp_path / "fresh", shipped_dir=shipped_dir)
    entry = reg.active("vgg16")
    assert entry is not None and (entry.ref, entry.location) == ("vgg-bn:1", "shipped")
    assert reg.active("ensemble") is None and not (tmp_path / "fresh" / ACTIVE_FILE).exists()
    loaded, loaded_card = reg.load(entry)
    assert loaded_card == card and not loaded.training
    assert regression_check(loaded, loaded_card, check_manifest.parent) <= 1e-6
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert float((loaded(x) - model32(x)).abs().max()) < 0.05


def test_ship_keeps_more_precision_when_over_the_bounds(
    vgg, check_manifest: Path, tmp_path: Path, one_torch_thread
) -> None:
    model, card = vgg
    source = ModelRegistry(user_dir=tmp_path / "user", shipped_dir=tmp_path / "none")
    source.save(model, card)
    result = ship_model(
        source,
        "vgg-bn:1",
        ShipOptions(
            out_dir=tmp_path / "shipped",
            check_data=check_manifest,
            max_images=6,
            max_shard_bytes=40_000_000,
            large_linear_min=LARGE,
            max_probability_change=0.0,
        ),
    )
    tried = result.card.shipping["compression"]["tried"]
    assert [(t["mode"], t["accepted"]) for t in tried] == [("int8", False), ("fp16", False), ("none", True)]
    assert tried[0]["effect"]["images"] == 6 and tried[2]["effect"]["max_probability_change"] == 0.0
    assert result.mode == "none" and len(result.shards) == 2  # 59 MB of float32 in 40 MB shards
    loaded, _ = ModelRegistry(user_dir=tmp_path / "u2", shipped_dir=tmp_path / "shipped").load("vgg-bn:1")
    ref = model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.state_dict().items())
    with pytest.raises(ShipError, match="already shipped"):
        ship_model(source, "vgg-bn:1", ShipOptions(out_dir=tmp_path / "shipped"))


def test_user_activation_overrides_and_use_default_rolls_back(shipped, vgg, tmp_path: Path) -> None:
    model, card = vgg
    reg = ModelRegistry(user_dir=tmp_path / "user", shipped_dir=_copy_shipped(shipped, tmp_path / "shipped"))
    site = reg.save(model, card.with_updates(name="site-vgg", version=0))
    assert not site.active and reg.active("vgg16").ref == "vgg-bn:1"  # registering never activates
    reg.activate("site-vgg", 1)
    assert reg.active("vgg16").ref == "site-vgg:1"
    assert not reg.get("vgg-bn:1").active
    assert reg.shipped_default("vgg16").ref == "vgg-bn:1"
    back = reg.use_default("vgg16")
    assert back.ref == "vgg-bn:1" and back.active and back.location == "shipped"
    assert json.loads((reg.user_dir / ACTIVE_FILE).read_text()) == {}
    assert ModelRegistry(user_dir=tmp_path / "user", shipped_dir=reg.shipped_dir).active("vgg16").ref == "vgg-bn:1"
    with pytest.raises(ModelNotFoundError, match="no shipped ensemble model"):
        reg.use_default("ensemble")


def test_shipped_files_are_read_only(shipped, vgg, tmp_path: Path) -> None:
    model, card = vgg
    folder = _copy_shipped(shipped, tmp_path / "shipped")
    reg = ModelRegistry(user_dir=tmp_path / "user", shipped_dir=folder)
    before = {p.name: file_sha256(p) for p in (folder / "vgg-bn").iterdir()}
    reg.save(model, card.with_updates(name="site", version=0))
    reg.activate("site", 1)  # the shipped model is no longer active: still not deletable
    with pytest.raises(ModelProtectedError, match="shipped model and cannot be deleted"):
        reg.delete("vgg-bn", 1)
    again = reg.save(model, card)  # asks for vgg-bn:1, which is shipped: gets version 2 in the user folder
    assert again.version == 2 and again.location == "user"
    with pytest.raises(ModelFileError, match="shipped \\(sharded\\) model, not imported"):
        reg.import_model(folder / "vgg-bn" / "vgg-bn-v1.json")
    out_folder, out_card = reg.export("vgg-bn", 1, tmp_path / "export")
    assert out_folder == tmp_path / "export" / "vgg-bn" and sorted(p.name for p in out_folder.iterdir()) == sorted(
        before
    )
    other = ModelRegistry(user_dir=tmp_path / "u2", shipped_dir=tmp_path / "export")  # drops into models/ as is
    assert other.active("vgg16").ref == "vgg-bn:1" and other.verify("vgg-bn:1")
    assert {p.name: file_sha256(p) for p in (folder / "vgg-bn").iterdir()} == before


def test_corrupted_or_missing_shard_is_refused_with_its_name(shipped, tmp_path: Path) -> None:
    folder = _copy_shipped(shipped, tmp_path / "shipped")
    reg = ModelRegistry(user_dir=tmp_path / "user", shipped_dir=folder)
    shard = folder / "vgg-bn" / shipped[0].card.shipping["shards"][1]["file"]
    with shard.open("r+b") as f:  # one flipped bit in the tensor data
        f.seek(-7, 2)
        b = f.read(1)
        f.seek(-7, 2)
        f.write(bytes([b[0] ^ 0x01]))
    for action in (
        lambda: reg.load("vgg-bn:1"),
        lambda: reg.verify("vgg-bn:1"),
        lambda: reg.activate("vgg-bn", 1),
        lambda: reg.use_default("vgg16"),
    ):
        with pytest.raises(ModelFileError, match=r"sha256 mismatch") as info:
            action()
        assert str(shard) in str(info.value) and "vgg-bn:1" in str(info.value)
    shard.unlink()
    with pytest.raises(ModelFileError, match="is missing") as info:
        reg.load("vgg-bn:1")
    assert shard.name in str(info.value)


def test_card_index_edits_are_refused(shipped, tmp_path: Path) -> None:
    folder = _copy_shipped(shipped, tmp_path / "shipped")
    card_path = folder / "vgg-bn" / "vgg-bn-v1.json"
    card = ModelCard.read(card_path)
    outside = json.loads(json.dumps(card.shipping))
    outside["shards"][0]["file"] = "../../outside.safetensors"
    with pytest.raises(ModelFileError, match="invalid shard entry"):
        card_shards(card.with_updates(shipping=outside), folder / "vgg-bn")
    reordered = json.loads(json.dumps(card.shipping))
    reordered["shards"].reverse()
    with pytest.raises(ModelFileError, match="not the hash of its shard index"):
        card_shards(card.with_updates(shipping=reordered), folder / "vgg-bn")
    data = json.loads(card_path.read_text())
    data["shipping"] = outside
    card_path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="invalid shard entry|integrity hash mismatch"):
        ModelRegistry(user_dir=tmp_path / "user", shipped_dir=folder).load("vgg-bn:1")
