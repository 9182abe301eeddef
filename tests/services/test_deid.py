"""De-identified export: PS3.15 Basic Profile, pseudonyms, burned-in annotation, round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
from pacs_data import us_file

from busviewer.core.imageio import read_image
from busviewer.core.importer import import_paths
from busviewer.core.store import Store
from busviewer.services.deid import DeidOptions, Keys, export_deidentified, profile_action

FILES = ("US1_UNCR.dcm", "OBXXXX1A.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm")


def _profile_values(ds: pydicom.Dataset) -> dict[int, object]:
    """Every attribute of the Basic Profile's list present in ``ds`` (top level and nested)."""
    out: dict[int, object] = {}
    for elem in ds.iterall():
        if profile_action(int(elem.tag)) is not None and elem.VR != "SQ" and elem.value not in (None, ""):
            out.setdefault(int(elem.tag), elem.value)
    return out


def test_export_round_trip_and_profile(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    import_paths(store, [us_file(n) for n in FILES])
    keys = {r.patient_key: r for r in store.images()}
    ob = keys["11-05-25-142825"]
    store.set_label("malignant", image_id=ob.id, source="reader")
    store.add_roi(ob.id, (100, 120, 300, 260))
    patients = sorted(keys)

    refused = export_deidentified(store, patients, tmp_path / "refuse")
    # Burned In Annotation absent on US1 and OBXXXX1A: refused; the JPEG lossless file says NO.
    assert (
        refused.exported == 1
        and len(refused.refused) == 2
        and all("Burned In Annotation" in r for r in refused.refused)
    )

    report = export_deidentified(store, patients, tmp_path / "out", DeidOptions(burned_in="blank"))
    assert report.exported == 2 and report.blanked == 1, report.refused
    assert any("no ultrasound tissue region" in r for r in report.refused)  # US1 has no regions
    assert "13US1" not in (tmp_path / "out" / "deid_report.json").read_text()

    exported = {pydicom.dcmread(p).PatientID: p for p in (tmp_path / "out").rglob("*.dcm")}
    k = Keys()
    assert set(exported) == {
        k.pseudonym("11-05-25-142825"),
        k.pseudonym(keys_jpg := next(p for p in keys if p not in ("13US1", "11-05-25-142825"))),
    }
    for original_key, path in (
        (ob.patient_key, exported[k.pseudonym(ob.patient_key)]),
        (keys_jpg, exported[k.pseudonym(keys_jpg)]),
    ):
        before = _profile_values(pydicom.dcmread(keys[original_key].source_path))
        assert len(before) >= 5  # names, ids, dates, UIDs...
        after = pydicom.dcmread(path)
        after_values = _profile_values(after)
        kept = [pydicom.datadict.keyword_for_tag(t) for t, v in before.items() if after_values.get(t) == v]
        assert kept == [], f"{path.name} keeps {kept}"
        assert after.PatientIdentityRemoved == "YES" and "StudyDate" not in after_values
        assert not any(e.tag.is_private for e in after.iterall())

    blanked = pydicom.dcmread(exported[k.pseudonym(ob.patient_key)])
    assert blanked.BurnedInAnnotation == "NO"
    region = blanked.SequenceOfUltrasoundRegions[0]
    pixels = read_image(exported[k.pseudonym(ob.patient_key)]).frame(0)
    outside = np.ones(pixels.shape[:2], bool)
    outside[
        region.RegionLocationMinY0 : region.RegionLocationMaxY1 + 1,
        region.RegionLocationMinX0 : region.RegionLocationMaxX1 + 1,
    ] = False
    assert pixels[outside].max() == 0 and pixels[~outside].max() > 0

    again = export_deidentified(store, patients, tmp_path / "again", DeidOptions(burned_in="blank"))
    assert again.exported == 2 and sorted(p.name for p in (tmp_path / "again").rglob("*.dcm")) == sorted(
        p.name for p in (tmp_path / "out").rglob("*.dcm")
    )  # consistent UIDs and pseudonyms

    fresh = Store(tmp_path / "fresh.sqlite")
    back = import_paths(fresh, [report.manifest])
    assert back.added == 2 and not back.problems
    (img,) = fresh.images(k.pseudonym(ob.patient_key))
    assert img.label is not None and img.label.label == "malignant"
    assert [r.box for r in fresh.rois(img.id)] == [(100, 120, 300, 260)]


def test_shifted_dates_keep_intervals(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    import_paths(store, [us_file("JPGLosslessP14SV1_1s_1f_8b.dcm")])
    (rec,) = store.images()
    export_deidentified(store, [rec.patient_key], tmp_path / "out", DeidOptions(date_mode="shift"))
    (path,) = (tmp_path / "out").rglob("*.dcm")
    ds, src = pydicom.dcmread(path), pydicom.dcmread(rec.source_path)
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    if src.get("StudyDate"):
        assert ds.StudyDate and ds.StudyDate != src.StudyDate
    manifest = (tmp_path / "out" / "manifest.csv").read_text()
    assert (
        rec.patient_key not in manifest
        and json.loads((tmp_path / "out" / "deid_report.json").read_text())["date_mode"] == "shift"
    )
