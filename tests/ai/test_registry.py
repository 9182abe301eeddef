"""Model registry: round trips, integrity checks, refusal of pickles, active-model rules."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import busviewer.ai as ai_pkg
from busviewer.ai.integrity import seal
from busviewer.ai.modelcard import ModelCard
from busviewer.ai.networks import build_model
from busviewer.ai.registry import (
    ModelEntry,
    ModelFileError,
    ModelNotFoundError,
    ModelProtectedError,
    ModelRegistry,
    check_weights_file,
    file_sha256,
    inspect_safetensors,
)


@pytest.fixture(autouse=True)
def _remove_large_files(tmp_path: Path):
    """Model files are ~270 MB each: delete each test's copies when it ends."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("registry")
    reg = ModelRegistry(user_dir=root / "user", shipped_dir=root / "shipped")
    torch.manual_seed(0)
    model = build_model("ensemble", "bmode", pretrained=False)
    card = ModelCard(
        "ens",
        1,
        "ensemble",
        "bmode",
        input_size=64,
        pretrained_init="random",
        training={"data": "synthetic"},
        metrics={"accuracy": 0.5},
    )
    entry = reg.save(model, card)
    yield reg, entry, model
    shutil.rmtree(root, ignore_errors=True)


def _copy_model(entry: ModelEntry, folder: Path, **card_changes) -> ModelEntry:
    """Copy an entry's files into ``folder`` (card fields optionally changed, the card re-sealed
    as busviewer would write it)."""
    folder.mkdir(parents=True, exist_ok=True)
    card = seal(entry.card.with_updates(**card_changes)) if card_changes else entry.card
    weights = folder / f"{card.stem}.safetensors"
    shutil.copyfile(entry.weights_path, weights)
    (folder / f"{card.stem}.json").write_text(card.to_json())
    return ModelEntry(card, weights, folder / f"{card.stem}.json", "user")


def _fresh(tmp_path: Path, entry: ModelEntry, **card_changes) -> tuple[ModelRegistry, ModelEntry]:
    reg = ModelRegistry(user_dir=tmp_path / "user", shipped_dir=tmp_path / "shipped")
    copied = _copy_model(entry, reg.user_dir, **card_changes)
    return reg, copied


def test_save_load_round_trip(saved) -> None:
    reg, entry, model = saved
    assert (entry.name, entry.version, entry.location, entry.active) == ("ens", 1, "user", False)
    assert entry.weights_path.name == "ens-v1.safetensors" and entry.card_path.name == "ens-v1.json"
    assert entry.card.sha256 == file_sha256(entry.weights_path)
    assert ModelCard.read(entry.card_path) == entry.card
    assert not [p for p in reg.user_dir.iterdir() if p.name.startswith(".tmp")]
    loaded, card = reg.load("ens:1")
    assert card == entry.card and not loaded.training
    ref = model.state_dict()
    got = loaded.state_dict()
    assert set(ref) == set(got)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert [e.ref for e in reg.list()] == ["ens:1"]
    assert reg.get("ens") == reg.get("ens", 1) == reg.get("ens:1")
    with pytest.raises(ModelNotFoundError):
        reg.get("ens", 7)
    with pytest.raises(ModelNotFoundError):
        reg.get("nothing")


def test_save_never_overwrites(saved, tmp_path: Path) -> None:
    _, entry, model = saved
    reg, v1 = _fresh(tmp_path, entry)
    (reg.user_dir / "ens-v2.safetensors").write_bytes(b"orphan from a crashed save")
    before = file_sha256(v1.weights_path)
    new = reg.save(model, entry.card.with_updates(sha256=""))  # asks for version 1 again
    assert new.version == 3
    assert file_sha256(v1.weights_path) == before
    assert (reg.user_dir / "ens-v2.safetensors").read_bytes() == b"orphan from a crashed save"
    assert [e.version for e in reg.list()] == [1, 3]
    with pytest.raises(ModelFileError, match="architecture"):
        reg.save(model, ModelCard("wrong", 0, "vgg16", input_size=64))


def test_sha256_mismatch_rejected(saved, tmp_path: Path) -> None:
    _, entry, _ = saved
    reg, copied = _fresh(tmp_path, entry)
    with copied.weights_path.open("r+b") as f:  # flip one byte of tensor data
        f.seek(-5, 2)
        b = f.read(1)
        f.seek(-5, 2)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(ModelFileError, match=r"ens-v1\.safetensors.*sha256 mismatch"):
        reg.load("ens")
    with pytest.raises(ModelFileError, match="sha256 mismatch"):
        reg.activate("ens", 1)


@pytest.mark.parametrize(
    "changes, words",
    [
        (
            {"input_mode": "bse", "normalisation": None},
            r"alexnet\.features\.0\.weight has shape \[64, 3, 11, 11\], expected \[64, 4, 11, 11\]",
        ),
        ({"architecture": "vgg16"}, "missing tensor.*unexpected tensor"),
        ({"classes": ["benign", "malignant", "normal"]}, r"head\.weight has shape \[2, 4608\], expected \[3, 4608\]"),
    ],
)
def test_wrong_shapes_rejected(saved, tmp_path: Path, changes: dict, words: str) -> None:
    _, entry, _ = saved
    reg, copied = _fresh(tmp_path, entry, **changes)
    with pytest.raises(ModelFileError, match=words) as info:
        reg.load(copied.name)
    assert "ens-v1.safetensors" in str(info.value)
    with pytest.raises(ModelFileError, match=words):
        ModelRegistry(user_dir=tmp_path / "other").import_model(copied.weights_path)


class _Payload:
    """Creating this object when unpickled would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _disguise(tmp_path: Path, data: bytes, entry: ModelEntry, name: str = "evil") -> Path:
    """Write ``data`` as ``<name>-v1.safetensors`` with a card whose sha256 matches it."""
    folder = tmp_path / "incoming"
    folder.mkdir(exist_ok=True)
    weights = folder / f"{name}-v1.safetensors"
    weights.write_bytes(data)
    card = entry.card.with_updates(name=name, version=1, sha256=file_sha256(weights))
    (folder / f"{name}-v1.json").write_text(card.to_json())
    return weights


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickle_renamed_to_safetensors_is_never_unpickled(saved, tmp_path: Path, protocol: int) -> None:
    _, entry, _ = saved
    marker = tmp_path / "PWNED"
    data = pickle.dumps({"weights": _Payload(marker)}, protocol=protocol)
    weights = _disguise(tmp_path, data, entry)
    reg = ModelRegistry(user_dir=tmp_path / "user", shipped_dir=tmp_path / "shipped")
    with pytest.raises(ModelFileError, match="not a safetensors file") as info:
        reg.import_model(weights)
    assert "evil-v1.safetensors" in str(info.value)
    if protocol >= 2:
        assert "pickle" in str(info.value)
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        reg.import_model(weights.with_suffix(".json"))
    # Dropped straight into the models folder, it is still refused at load time.
    shutil.copy(weights, reg.user_dir)
    shutil.copy(weights.with_suffix(".json"), reg.user_dir)
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        reg.load("evil")
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        check_weights_file(weights, entry.card)
    assert not marker.exists()
    assert sorted(reg.user_dir.glob("evil*")) == [reg.user_dir / "evil-v1.json", reg.user_dir / "evil-v1.safetensors"]
    # Control: the payload really is live when unpickled.
    control = tmp_path / "CONTROL"
    pickle.loads(pickle.dumps(_Payload(control), protocol=protocol)).close()
    assert control.exists()


def test_torch_save_checkpoint_rejected(saved, tmp_path: Path) -> None:
    _, entry, _ = saved
    marker = tmp_path / "PWNED"
    pt = tmp_path / "model.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}, "extra": _Payload(marker)}, pt)
    reg = ModelRegistry(user_dir=tmp_path / "user", shipped_dir=tmp_path / "shipped")
    with pytest.raises(ModelFileError, match=r"model\.pt.*torch\.save"):
        reg.import_model(pt)
    weights = _disguise(tmp_path, pt.read_bytes(), entry, name="ckpt")
    with pytest.raises(ModelFileError, match="not a safetensors file.*ZIP.*torch.save"):
        reg.import_model(weights)
    assert not marker.exists()
    assert not list(reg.user_dir.glob("ckpt*"))


def test_truncated_and_malformed_safetensors_rejected(saved, tmp_path: Path) -> None:
    _, entry, _ = saved
    small = tmp_path / "small.safetensors"
    save_file({"a": torch.arange(100, dtype=torch.float32), "b": torch.ones(3, 4)}, str(small))
    tensors, _ = inspect_safetensors(small)
    assert tensors["b"].shape == (3, 4) and tensors["a"].dtype == "F32"
    raw = small.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[:-20])
    with pytest.raises(ModelFileError, match="truncated"):
        inspect_safetensors(cut)
    cut.write_bytes(raw[:6])
    with pytest.raises(ModelFileError, match="only 6 bytes"):
        inspect_safetensors(cut)
    cut.write_bytes(raw + b"junk")
    with pytest.raises(ModelFileError, match="unexpected bytes"):
        inspect_safetensors(cut)
    # A truncated copy of real weights, with a card matching the truncated bytes.
    with entry.weights_path.open("rb") as f:
        head = f.read(5_000_000)
    weights = _disguise(tmp_path, head, entry, name="half")
    reg = ModelRegistry(user_dir=tmp_path / "user", shipped_dir=tmp_path / "shipped")
    with pytest.raises(ModelFileError, match=r"half-v1\.safetensors: truncated"):
        reg.import_model(weights)
    assert not list(reg.user_dir.glob("half*"))


def test_import_export_round_trip(saved, tmp_path: Path) -> None:
    reg, entry, _ = saved
    weights, card = reg.export("ens", 1, tmp_path / "out")
    assert file_sha256(weights) == entry.card.sha256 and ModelCard.read(card) == entry.card
    with pytest.raises(FileExistsError):
        reg.export("ens", 1, tmp_path / "out")
    other = ModelRegistry(user_dir=tmp_path / "other", shipped_dir=tmp_path / "shipped")
    imported = other.import_model(card)
    assert imported.ref == "ens:1" and imported.location == "user"
    assert other.verify(imported) == imported
    assert other.import_model(weights) == imported  # same weights again: nothing new
    assert len(list(other.user_dir.glob("*.safetensors"))) == 1
    # Different weights under an already-taken version get the next number.
    with weights.open("r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    edited = entry.card.with_updates(sha256=file_sha256(weights))
    card.write_text(edited.to_json())  # weights edited, sha256 recomputed, integrity stale
    with pytest.raises(ModelFileError, match="integrity hash mismatch"):
        other.import_model(weights)
    card.write_text(seal(edited).to_json())  # as a busviewer that trained these weights writes it
    second = other.import_model(weights)
    assert second.ref == "ens:2" and second.card.sha256 == file_sha256(weights)
    with pytest.raises(ModelFileError, match="no model card"):
        lonely = tmp_path / "lonely-v1.safetensors"
        shutil.copy(weights, lonely)
        other.import_model(lonely)


def test_activate_active_delete_rules(saved, tmp_path: Path) -> None:
    _, entry, _ = saved
    reg, _ = _fresh(tmp_path, entry)
    _copy_model(entry, reg.user_dir, version=2)
    assert reg.active("ensemble") is None and reg.active("vgg16") is None
    assert reg.activate("ens", 1).active
    assert reg.active("ensemble").ref == "ens:1"
    assert reg.active("vgg16") is None
    assert [(e.ref, e.active) for e in reg.list()] == [("ens:1", True), ("ens:2", False)]
    assert json.loads((reg.user_dir / "active.json").read_text()) == {"ensemble": "ens:1"}
    with pytest.raises(ModelProtectedError, match="active"):
        reg.delete("ens", 1)
    reg.activate("ens", 2)
    reg.delete("ens", 1)
    assert [e.ref for e in reg.list()] == ["ens:2"]
    assert not (reg.user_dir / "ens-v1.safetensors").exists()
    with pytest.raises(ModelNotFoundError):
        reg.activate("ens", 1)
    with pytest.raises(ValueError):
        reg.active("resnet50")


def test_shipped_models_are_read_only_defaults(saved, tmp_path: Path) -> None:
    reg0, entry, model = saved
    shipped = tmp_path / "shipped"
    _copy_model(entry, shipped, name="base")
    reg = ModelRegistry(user_dir=tmp_path / "user", shipped_dir=shipped)
    (base,) = reg.list()
    assert (base.ref, base.location, base.active) == ("base:1", "shipped", True)  # default active
    assert reg.active("ensemble") == base
    with pytest.raises(ModelProtectedError, match="shipped"):
        reg.delete("base", 1)
    _copy_model(entry, reg.user_dir, name="base", version=1)  # a user copy may not shadow it
    assert [e.location for e in reg.list()] == ["shipped"]
    (reg.user_dir / "base-v1.json").unlink()
    (reg.user_dir / "base-v1.safetensors").unlink()
    _copy_model(entry, reg.user_dir, name="mine")
    reg.activate("mine", 1)
    assert reg.active("ensemble").ref == "mine:1"
    reg.activate("base", 1)
    assert reg.active("ensemble").ref == "base:1"
    assert list(shipped.iterdir()) and all(p.name.startswith("base-v1") for p in shipped.iterdir())
    assert reg0.list()[0].ref == "ens:1"


def test_broken_files_do_not_break_listing(saved, tmp_path: Path) -> None:
    _, entry, _ = saved
    reg, _ = _fresh(tmp_path, entry)
    (reg.user_dir / "junk-v1.json").write_text("{not json")
    (reg.user_dir / "nofile-v1.json").write_text(entry.card.with_updates(name="nofile").to_json())
    (reg.user_dir / "renamed-v3.json").write_text(entry.card.to_json())  # says ens:1
    (reg.user_dir / "active.json").write_text("[garbage")
    assert [e.ref for e in reg.list()] == ["ens:1"]
    assert reg.active("ensemble") is None


def test_no_pickle_based_loading_in_ai_package() -> None:
    for src in Path(ai_pkg.__file__).parent.glob("*.py"):
        text = src.read_text()
        assert "torch.load(" not in text, src
        assert "import pickle" not in text and "pickle.load" not in text, src
