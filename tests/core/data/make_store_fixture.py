"""Build ``store_pre_alembic.sql``: a store written by busviewer before schema versioning.

The committed SQL was made with this script at commit e800126 (``Store`` created its
tables with ``create_all``, no ``alembic_version`` table): that is what a workstation
has on disk today, and the migration test opens it with the current code. The store
holds image and patient labels of every source, ROIs (one moved, one deleted),
predictions (whole image and ROI), a model version, a review and their audit rows.

    python tests/core/data/make_store_fixture.py tests/core/data/store_pre_alembic.sql
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from pathlib import Path

from busviewer.core.store import NewImage, Store


def _new(i: int, patient: str, label: str | None) -> NewImage:
    return NewImage(
        patient_key=patient,
        patient_name=f"Name {patient}",
        study_uid=f"1.2.3.{patient}",
        study_date="20240131",
        study_description="US breast",
        series_uid=f"1.2.3.{patient}.1",
        series_description="B-mode",
        modality="US",
        source_path=Path(f"/data/{patient}/img{i}.png"),
        content_hash=f"{i:064x}",
        file_size=1000 + i,
        sop_uid=f"1.2.3.{patient}.1.{i}",
        frame_count=1,
        rows=400,
        columns=500,
        is_color=False,
        photometric="MONOCHROME2",
        frame_time_ms=None,
        pixel_spacing_mm=(0.1, 0.1),
        regions=({"x0": 0, "y0": 0, "x1": 499, "y1": 399},),
        label=label,
    )


def build(path: Path) -> None:
    store = Store(path)
    ids = [
        store.add_image(
            _new(i, "PAT1" if i < 3 else "PAT2", ("benign", "malignant", None, "normal")[i]), user="importer"
        )[1]
        for i in range(4)
    ]
    store.set_label("malignant", image_id=ids[0], source="reader", birads="4c", user="dr_a")
    store.set_label("malignant", image_id=ids[0], source="reader", birads="5", note="spiculated", user="dr_a")
    store.set_label("benign", image_id=ids[1], source="biopsy", biopsy_confirmed=True, user="dr_b")
    store.set_label("malignant", patient_key="PAT1", source="reader", user="dr_a")
    store.set_label("benign", image_id=ids[2], source="reader", user="dr_b")
    store.clear_label(image_id=ids[2], source="reader", user="dr_b")
    store.set_reviewed("PAT1", user="dr_a")
    kept = store.add_roi(ids[0], (10, 20, 200, 180), user="dr_a")
    store.update_roi(kept.id, (12, 22, 210, 190), user="dr_a")
    gone = store.add_roi(ids[1], (5, 5, 50, 50), user="dr_b")
    store.delete_roi(gone.id, user="dr_b")
    card = {"name": "ens", "version": 1, "architecture": "ensemble", "sha256": "a" * 64}
    store.record_model_version(card, user="dr_a")
    base = dict(model_name="ens", model_version=1, architecture="ensemble", model_sha256="a" * 64, frame=0)
    store.add_predictions(
        [
            dict(
                base,
                image_id=ids[0],
                roi_id=None,
                image_hash=f"{0:064x}",
                label="malignant",
                malignant_probability=0.81,
                probabilities={"benign": 0.19, "malignant": 0.81},
            ),
            dict(
                base,
                image_id=ids[0],
                roi_id=kept.id,
                image_hash=f"{0:064x}",
                label="malignant",
                malignant_probability=0.9,
                probabilities={"benign": 0.1, "malignant": 0.9},
            ),
            dict(
                base,
                image_id=ids[3],
                roi_id=None,
                image_hash=f"{3:064x}",
                label="benign",
                malignant_probability=0.2,
                probabilities={"benign": 0.8, "malignant": 0.2},
            ),
        ]
    )
    store.log("activate", "model", None, "ensemble", None, "ens:1", user="dr_a")
    store.close()


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "store.sqlite"
        build(db)
        con = sqlite3.connect(db)
        sql = "\n".join(con.iterdump()) + "\n"
        con.close()
    Path(out).write_text(sql, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
