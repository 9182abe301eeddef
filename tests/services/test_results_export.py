"""Results back to a real Orthanc: SR and Grad-CAM Secondary Capture, checked by dciodvfy."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from orthanc_server import Orthanc
from pacs_data import FILES_13US1, STUDY_13US1, us_file

from busviewer.core.importer import import_paths
from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.store import Store
from busviewer.dicomnet import dimse
from busviewer.dicomnet.nodes import NetworkSettings
from busviewer.services.results_export import ResultsError, export_results, send_results
from busviewer.services.results_sr import read_sr

SHA = "ab" * 32
CARD = {
    "name": "tiny-ensemble",
    "version": 3,
    "architecture": "ensemble",
    "sha256": SHA,
    "operating_points": {"high_sensitivity": 0.2, "balanced": 0.4, "high_specificity": 0.7},
}


def _dciodvfy_errors(path: Path) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        message = "dciodvfy not installed (apt-get install -y dicom3tools)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture
def analysed(tmp_path: Path) -> tuple[Store, dict[str, float]]:
    """Patient 13US1 imported, with stored predictions of a model with operating points and a reader label."""
    store = Store(tmp_path / "s.sqlite")
    import_paths(store, [us_file(n) for n in FILES_13US1])
    recs = store.images("13US1")
    store.record_model_version(CARD)
    probs = dict(zip((r.sop_uid for r in recs), (0.3, 0.55)))
    store.add_predictions(
        [
            dict(
                image_id=r.id,
                roi_id=None,
                frame=0,
                model_name="tiny-ensemble",
                model_version=3,
                architecture="ensemble",
                model_sha256=SHA,
                image_hash=r.content_hash,
                label="benign",
                malignant_probability=probs[r.sop_uid],
                probabilities={"benign": 1 - probs[r.sop_uid], "malignant": probs[r.sop_uid]},
            )
            for r in recs
        ]
    )
    store.set_label("malignant", image_id=recs[0].id, source="reader", birads="4", user="dr-reader")
    return store, probs  # type: ignore[return-value]


def test_sr_and_sc_sent_to_orthanc_and_read_back(
    analysed, loaded: Orthanc, net: NetworkSettings, tmp_path: Path
) -> None:
    store, probs = analysed
    cams = {(r.id, "ensemble"): np.linspace(0, 1, 49).reshape(7, 7) for r in store.images("13US1")}
    bundle, sent = send_results(store, net, "orthanc", "13US1", cams=cams)
    assert not sent.problems and len(sent.sent) == 3 and len(bundle.sc_paths) == 2
    for path in bundle.files:
        assert _dciodvfy_errors(path) == [], path.name

    found = dimse.find_instances(net.local, net.node("orthanc"), STUDY_13US1)
    by_class = {}
    for row in found:
        by_class.setdefault(row["sop_class_uid"], []).append(row)
    (sr_row,) = by_class["1.2.840.10008.5.1.4.1.1.88.33"]
    sc_rows = by_class["1.2.840.10008.5.1.4.1.1.7"]
    assert len(sc_rows) == 2 and len({r["series_uid"] for r in sc_rows}) == 1
    assert sc_rows[0]["series_uid"] not in {r["series_uid"] for r in by_class["1.2.840.10008.5.1.4.1.1.6.1"]}

    got = dimse.get_study(net.local, net.node("orthanc"), STUDY_13US1, tmp_path / "back", sop_uids=[sr_row["sop_uid"]])
    sr = pydicom.dcmread(got[0].path)
    values = read_sr(sr)
    assert values["notice"] == RESEARCH_NOTICE and values["operating_point"] == "balanced"
    (model,) = values["models"]
    assert model["Algorithm Name"] == "tiny-ensemble (ensemble)" and model["Algorithm Version"] == "3"
    assert model["Model weights SHA-256"] == SHA and model["Decision threshold"] == pytest.approx(0.4)
    assert model["images"] == pytest.approx(probs)  # every probability references its source SOP UID
    assert (model["Patient vote"], model["Images called malignant"], model["Images called benign"]) == (
        "malignant",
        1,
        1,
    )
    assert model["Tie counted as malignant"] == "yes"
    (reader,) = values["reader"]
    assert reader[0].startswith("malignant (reader dr-reader, BI-RADS 4") and reader[1] in probs
    evidence = {
        str(i.ReferencedSOPInstanceUID)
        for s in sr.CurrentRequestedProcedureEvidenceSequence
        for se in s.ReferencedSeriesSequence
        for i in se.ReferencedSOPSequence
    }
    assert evidence == set(probs) and sr.PatientID == "13US1" and sr.StudyInstanceUID == STUDY_13US1

    web_bundle, web_sent = send_results(store, net, "orthanc-web", "13US1")  # STOW-RS, no Grad-CAM
    assert web_sent.sent == [web_bundle.sr_path.stem.removeprefix("SR_")] and not web_sent.problems  # type: ignore[union-attr]


def test_results_need_stored_results_and_dicom_sources(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    import_paths(store, [us_file("US1_UNCR.dcm")])
    with pytest.raises(ResultsError, match="13US1: no model results stored"):
        export_results(store, "13US1", tmp_path / "out")
