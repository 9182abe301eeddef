"""Input guard (issue 14): colour Doppler / non-B-mode images are flagged as outside the
models' training data, BUSI B-mode images are not; findings and overrides in the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from busviewer.ai.results import NOT_CLASSIFIED, ImagePrediction, summarise
from busviewer.core.importer import import_paths
from busviewer.core.input_guard import COLOUR_LIMIT, OUTSIDE_TEXT, assess_file, assess_pixels
from busviewer.core.store import Store
from busviewer.core.store.flags import guard_images, image_flags, record_flag, set_override

DOPPLER = ("color-pl.dcm", "US1_UNCR.dcm")  # cardiac colour Doppler; power Doppler of a lymph node
B_MODE_DICOM = ("OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm")  # palette / grey
BUSI = (
    "benign/benign (1).png",
    "malignant/malignant (6).png",
    "normal/normal (78).png",
    "benign/benign (255).png",
)  # the last has a small Doppler spot and is in the training data


def _find(root: Path, name: str) -> Path:
    return next(root.rglob(name))


@pytest.mark.parametrize("name", DOPPLER)
def test_colour_doppler_from_pydicom_data_is_flagged(us_dicom_dir: Path, name: str) -> None:
    r = assess_file(_find(us_dicom_dir, name))
    assert r.outside and r.reason.startswith(OUTSIDE_TEXT) and "colour Doppler" in r.reason
    assert r.colour_share >= COLOUR_LIMIT


@pytest.mark.parametrize("name", B_MODE_DICOM)
def test_grey_b_mode_dicoms_with_coloured_overlays_pass(us_dicom_dir: Path, name: str) -> None:
    r = assess_file(_find(us_dicom_dir, name))
    assert not r.outside and r.colour_share < COLOUR_LIMIT / 2


@pytest.mark.parametrize("name", BUSI)
def test_busi_images_pass(busi_dir: Path, name: str) -> None:
    r = assess_file(busi_dir / "images" / name)
    assert not r.outside, r.reason


def test_non_b_mode_photometric_content_is_flagged() -> None:
    grey = np.full((64, 64, 3), 90, np.uint8)
    assert not assess_pixels(grey, "MONOCHROME2").outside
    for pi in ("ARGB", "CMYK", "HSV"):
        r = assess_pixels(grey, pi)
        assert r.outside and pi in r.reason
    assert assess_pixels(np.zeros((8, 8, 4), np.uint8)).outside
    tinted = grey.copy()
    tinted[10:50, 10:50] = (200, 30, 30)  # a solid red block covering 39% of the centre
    assert assess_pixels(tinted).outside


def test_findings_and_override_are_stored_and_withhold_the_output(
    tmp_path: Path, us_dicom_dir: Path, busi_dir: Path
) -> None:
    store = Store(tmp_path / "s.sqlite")
    folder = tmp_path / "P1"
    folder.mkdir()
    (folder / "doppler.dcm").write_bytes(_find(us_dicom_dir, "color-pl.dcm").read_bytes())
    (folder / "busi.png").write_bytes((busi_dir / "images" / BUSI[0]).read_bytes())
    import_paths(store, [folder])
    recs = {r.name: r for p in store.patients() for r in store.images(p.patient_key)}
    key = recs["doppler.dcm"].patient_key
    flags = guard_images(store, list(recs.values()))
    dop, busi = recs["doppler.dcm"].id, recs["busi.png"].id
    assert flags[dop].blocks and not flags[busi].outside
    assert image_flags(store, [dop, busi]) == flags

    preds = {
        (i, "vgg16"): ImagePrediction(
            i, 0, None, "vgg16", "m", 1, {"benign": 1 - p, "malignant": p}, p, "benign", "ab" * 32
        )
        for i, p in ((dop, 0.95), (busi, 0.1))
    }
    a = summarise(key, preds, outside={dop: flags[dop].reason})
    v = a.verdicts["vgg16"]
    assert (v.label, v.benign_votes, v.malignant_votes) == ("benign", 1, 0) and a.disagreements == ()
    only = summarise(key, {k: p for k, p in preds.items() if k[0] == dop}, outside={dop: "x"}).verdicts["vgg16"]
    assert only.label == NOT_CLASSIFIED and only.mean_malignant_probability is None
    assert v.mean_malignant_probability == pytest.approx(0.1)  # the outside image's 0.95 is not averaged in

    flag = set_override(store, dop, True, user="dr-a")
    assert flag.overridden_by == "dr-a" and not flag.blocks
    assert [e.new_value for e in store.audit_log("image_flag", dop)] == ["dr-a"]
    from busviewer.ai.results import guard_findings

    outside, overridden = guard_findings(store, store.images(key), check=False)
    assert outside == {} and overridden == {dop: "dr-a"}
    assert guard_findings(store, [recs["busi.png"]], check=False) == ({}, {})
    # a finding made on other content does not count, and re-checking clears the override
    record_flag(store, dop, "0" * 64, assess_file(recs["doppler.dcm"].source_path))
    assert guard_findings(store, store.images(key), check=False) == ({}, {})
    assert guard_images(store, store.images(key))[dop].blocks
