"""End to end headless: import, predict with tiny registered models, ROI, report, models CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from busviewer.cli import main
from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.store import Store


@pytest.fixture
def tiny_models() -> dict[str, str]:
    """Random-weight ensemble and VGG-16 at 64 px, registered and activated in the test home."""
    import torch

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model
    from busviewer.ai.registry import ModelRegistry

    torch.manual_seed(0)
    reg = ModelRegistry()
    refs = {}
    for arch in ("ensemble", "vgg16"):
        model = build_model(arch, pretrained=False)
        entry = reg.save(
            model, ModelCard(name=f"tiny-{arch}", version=1, architecture=arch, input_size=64, pretrained_init="random")
        )
        reg.activate(entry.name, entry.version)
        refs[arch] = entry.ref
    return refs


def _study(root: Path, patient: str, n: int) -> Path:
    folder = root / patient
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(patient) + n)
    for i in range(n):
        Image.fromarray(np.repeat(rng.integers(0, 255, (80, 96, 1), dtype=np.uint8), 3, axis=2)).save(
            folder / f"img{i}.png"
        )
    return folder


def test_predict_patient_json_and_stored(tmp_path: Path, tiny_models, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.sqlite")
    folder = _study(tmp_path / "in", "PAT1", 3)
    assert (
        main(["--store", db, "predict", str(folder), "--json", "--device", "cpu", "--cam-dir", str(tmp_path / "cams")])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["notice"] == RESEARCH_NOTICE
    assert set(out["models"]) == {"ensemble", "vgg16"}
    (patient,) = out["patients"]
    assert patient["patient"] == "PAT1" and len(patient["images"]) == 3
    for img in patient["images"]:
        for probs in img["predictions"].values():
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert Path(img["cams"]["ensemble"]).is_file()
    for arch, v in patient["verdicts"].items():
        low, high = out["calibration"][arch]["indeterminate_band"]
        assert v["indeterminate_band"] == [low, high] and (low, high) == pytest.approx((0.4, 0.6))  # no op. points
        calls = {img["image_id"]: img["calls"][arch] for img in patient["images"]}
        for img in patient["images"]:
            p = img["predictions"][arch]["malignant"]
            assert (calls[img["image_id"]] == "indeterminate") == (low <= p < high)
            assert img["leans"][arch] == ("malignant" if p >= 0.5 else "benign")
        assert sorted(v["indeterminate_images"]) == sorted(i for i, c in calls.items() if c == "indeterminate")
        assert v["benign_votes"] + v["malignant_votes"] + len(v["indeterminate_images"]) == 3
        if v["benign_votes"] + v["malignant_votes"]:
            assert v["label"] == ("benign" if v["benign_votes"] > v["malignant_votes"] else "malignant")
        else:
            assert v["label"] == "indeterminate"
    assert [img["number"] for img in patient["images"]] == [1, 2, 3]
    assert all(img["models_disagree"] == (len(set(img["leans"].values())) > 1) for img in patient["images"])
    cam = np.load(next((tmp_path / "cams").glob("*_vgg16.npy")))
    assert cam.shape == (80, 96) and cam.min() >= 0 and cam.max() <= 1
    store = Store(db)
    latest = store.latest_predictions([i.id for i in store.images("PAT1")])
    assert len(latest) == 6
    for rec in latest.values():
        assert len(rec.model_sha256) == 64 and rec.image_hash == store.image(rec.image_id).content_hash

    # second run by patient id, one model only, human-readable
    assert main(["--store", db, "predict", "PAT1", "--model", tiny_models["vgg16"], "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "verdict vgg16" in text and "verdict ensemble" not in text and RESEARCH_NOTICE in text


def test_predict_reports_changed_source_file(tmp_path: Path, tiny_models, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.sqlite")
    folder = _study(tmp_path / "in", "PAT2", 2)
    assert main(["--store", db, "import", str(folder)]) == 0
    (folder / "img0.png").write_bytes(b"overwritten")
    assert main(["--store", db, "predict", "PAT2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "img0.png: file changed since import" in out


def test_predict_without_models_says_how_to_get_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _study(tmp_path / "in", "PAT3", 1)
    assert main(["--store", str(tmp_path / "s.sqlite"), "predict", str(folder)]) == 1
    assert "No active model" in capsys.readouterr().err


def test_roi_label_review_report_via_cli(tmp_path: Path, tiny_models, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.sqlite")
    folder = _study(tmp_path / "in", "PAT4", 2)
    assert main(["--store", db, "import", str(folder)]) == 0
    image_id = Store(db).images("PAT4")[0].id
    assert main(["--store", db, "roi", "add", str(image_id), "10", "12", "60", "70"]) == 0
    roi_id = Store(db).rois(image_id)[0].id
    capsys.readouterr()
    assert main(["--store", db, "roi", "classify", str(roi_id), "--json", "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["predictions"]) == {"ensemble", "vgg16"}
    assert main(["--store", db, "label", "--image", str(image_id), "malignant", "--birads", "4c"]) == 0
    assert main(["--store", db, "label", "--patient", "PAT4", "malignant", "--biopsy"]) == 0
    assert main(["--store", db, "review", "PAT4"]) == 0
    store = Store(db)
    assert store.image(image_id).label.label == "malignant"
    assert store.patient("PAT4").patient_label.source == "biopsy" and store.patient("PAT4").reviewed
    pdf = tmp_path / "r.pdf"
    assert main(["--store", db, "report", "PAT4", "--out", str(pdf), "--cam", "ensemble", "--device", "cpu"]) == 0
    assert pdf.read_bytes()[:4] == b"%PDF"
    assert main(["--store", db, "roi", "delete", str(roi_id)]) == 0
    assert Store(db).rois(image_id) == []
    assert main(["--store", db, "audit", "--entity", "image", "--id", str(image_id)]) == 0
    assert "birads[reader]" in capsys.readouterr().out


def test_models_cli(tmp_path: Path, tiny_models, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "* tiny-ensemble:1" in listing and "* tiny-vgg16:1" in listing
    assert main(["models", "export", tiny_models["vgg16"], str(tmp_path / "exp")]) == 0
    assert main(["models", "delete", tiny_models["vgg16"]]) == 1  # active
    assert "active" in capsys.readouterr().err
    exported = next((tmp_path / "exp").glob("*.safetensors"))
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)  # a pickle header
    assert main(["models", "import", str(bad)]) == 1
    assert "evil.safetensors" in capsys.readouterr().err
    assert main(["models", "import", str(exported)]) == 0
    assert "imported tiny-vgg16:1" in capsys.readouterr().out  # same weights: the existing entry
    assert main(["models", "show", tiny_models["ensemble"]]) == 0
    assert json.loads(capsys.readouterr().out)["architecture"] == "ensemble"


def test_predict_flags_colour_doppler_and_classify_outside_overrides(
    tmp_path: Path, tiny_models, us_dicom_dir: Path, busi_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "s.sqlite")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "doppler.dcm").write_bytes(next(us_dicom_dir.rglob("color-pl.dcm")).read_bytes())
    (folder / "busi.png").write_bytes((busi_dir / "images" / "benign" / "benign (1).png").read_bytes())
    assert main(["--store", db, "predict", str(folder), "--json", "--device", "cpu"]) == 0
    images = {
        Path(img["file"]).name: (pat, img)
        for pat in json.loads(capsys.readouterr().out)["patients"]
        for img in pat["images"]
    }
    pat, dop = images["doppler.dcm"]
    assert dop["outside"].startswith("outside the model's training data") and dop["predictions"] == {}
    assert set(dop["calls"].values()) == {"outside"} and dop["overridden_by"] is None
    assert {v["label"] for v in pat["verdicts"].values()} == {"not classified"}
    _, busi = images["busi.png"]
    assert busi["outside"] is None and "outside" not in busi["calls"].values() and busi["predictions"]

    assert main(["--store", db, "predict", pat["patient"], "--classify-outside", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "classified on" in text and "override" in text
    assert main(["--store", db, "predict", pat["patient"], "--json", "--device", "cpu"]) == 0
    (again,) = json.loads(capsys.readouterr().out)["patients"]
    (img,) = again["images"]
    assert (
        img["outside"] is None
        and img["overridden_by"]
        and set(img["calls"].values()) <= {"benign", "malignant", "indeterminate"}
    )
