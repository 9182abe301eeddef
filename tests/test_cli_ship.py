"""`busviewer models ship` and `use-default`, and `predict` on a fresh user folder that only
has a shipped model. The shipped folder is a temporary one (``BUSVIEWER_SHIPPED_MODELS``),
with a small VGG-16 'bn' built in the test, never the repository's models/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic import labelled_pngs

from busviewer.cli import main
from busviewer.core.store import Store


@pytest.fixture
def site_model() -> str:
    """A random-weight VGG-16 'bn' (input 32) registered in the test's user folder."""
    import torch

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model
    from busviewer.ai.registry import ModelRegistry

    torch.manual_seed(0)
    entry = ModelRegistry().save(
        build_model("vgg16", pretrained=False, variant="bn"),
        ModelCard("site-vgg", 1, "vgg16", input_size=32, variant="bn", pretrained_init="random"),
    )
    return entry.ref


def test_ship_then_use_default_with_audit(
    site_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = labelled_pngs(tmp_path / "check")
    shipped = tmp_path / "shipped"
    db = str(tmp_path / "s.sqlite")
    args = [
        "models",
        "ship",
        site_model,
        "--out",
        str(shipped),
        "--check-data",
        str(manifest),
        "--max-images",
        "6",
        "--as",
        "vgg-default:3",
        "--max-shard-mb",
        "20",
    ]
    assert main(["--store", db, *args]) == 0
    out = capsys.readouterr().out
    card = json.loads((shipped / "vgg-default" / "vgg-default-v3.json").read_text())
    files = sorted(p.name for p in (shipped / "vgg-default").glob("*.safetensors"))
    assert len(files) == 2 and files == [s["file"] for s in card["shipping"]["shards"]]  # 30 MB of fp16
    assert all(s["sha256"] in out for s in card["shipping"]["shards"])
    assert card["shipping"]["command"] == (
        f"busviewer models ship site-vgg:1 --quantize int8 --out {shipped} --check-data {manifest} "
        "--max-images 6 --as vgg-default:3 --max-shard-mb 20"
    )
    assert card["shipping"]["compression"]["effect"]["images"] == 6
    assert "Al-Dhabyani" in card["training"]["data"]["citation"]

    monkeypatch.setenv("BUSVIEWER_SHIPPED_MODELS", str(shipped))
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "* vgg-default:3" in listing and "shipped" in listing and "  site-vgg:1" in listing
    assert main(["--store", db, "models", "activate", "site-vgg:1"]) == 0
    capsys.readouterr()
    assert main(["--store", db, "models", "use-default", "vgg16"]) == 0
    assert "vgg-default:3 (shipped) is now the active vgg16 model (was site-vgg:1)" in capsys.readouterr().out
    from busviewer.ai.registry import ModelRegistry

    assert ModelRegistry().active("vgg16").ref == "vgg-default:3"
    store = Store(db)
    last = store.audit_log(entity="model")[-1]
    store.close()
    assert (last.action, last.field, last.old_value, last.new_value) == (
        "use_default_model",
        "vgg16",
        "site-vgg:1",
        "vgg-default:3",
    )
    assert main(["models", "use-default", "ensemble"]) == 1
    assert "no shipped ensemble model" in capsys.readouterr().err
    assert main(["models", "delete", "vgg-default:3"]) == 1
    assert "shipped model and cannot be deleted" in capsys.readouterr().err

    shard = shipped / "vgg-default" / files[1]
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0x10
    shard.write_bytes(bytes(data))
    assert main(["models", "use-default"]) == 1
    err = capsys.readouterr().err
    assert str(shard) in err and "sha256 mismatch" in err and "Traceback" not in err


def test_predict_on_a_fresh_user_folder_uses_the_shipped_model(
    site_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = labelled_pngs(tmp_path / "check", n=4, normal=0)
    shipped = tmp_path / "shipped"
    assert (
        main(["models", "ship", site_model, "--out", str(shipped), "--quantize", "fp16", "--as", "vgg-default:1"]) == 0
    )
    assert "no --check-data" in capsys.readouterr().out
    monkeypatch.setenv("BUSVIEWER_SHIPPED_MODELS", str(shipped))
    monkeypatch.setenv("BUSVIEWER_HOME", str(tmp_path / "fresh-home"))  # nothing chosen, nothing trained
    assert (
        main(
            [
                "--store",
                str(tmp_path / "fresh.sqlite"),
                "predict",
                str(manifest.parent / "images"),
                "--json",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert set(out["models"]) == {"vgg16"}
    images = [im for p in out["patients"] for im in p["images"]]
    assert len(images) == 4
    assert all(set(im["predictions"]) == {"vgg16"} for im in images)
    assert "vgg-default" in json.dumps(out["models"])
