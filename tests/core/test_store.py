"""Store: labels with audit, append-only audit log, ROIs, predictions, training items."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from store_helpers import new_image as _new

from busviewer.core.store import Store


def test_add_image_groups_and_is_idempotent(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "a.png"
    f.write_bytes(b"x")
    assert store.add_image(_new(1, path=f))[0] == "added"
    assert store.add_image(_new(1, path=f))[0] == "exists"
    store.add_image(_new(2, path=tmp_path / "b.png"))
    store.add_image(_new(3, patient="P2", path=tmp_path / "c.png"))
    c = store.counts()
    assert (c["patients"], c["studies"], c["series"], c["images"]) == (2, 2, 2, 3)
    assert [p.image_count for p in store.patients()] == [2, 1]


def test_same_content_from_a_vanished_path_is_relocated(store: Store, tmp_path: Path) -> None:
    status, first = store.add_image(_new(7, path=tmp_path / "gone.png"))  # path does not exist
    status, second = store.add_image(_new(7, path=tmp_path / "moved.png"))
    assert status == "relocated" and second == first
    assert store.image(first).source_path == tmp_path / "moved.png"


def test_labels_are_audited_and_prioritised(store: Store) -> None:
    _, iid = store.add_image(_new(1, label="benign"))
    assert store.image(iid).label.source == "import"
    store.set_label("malignant", image_id=iid, source="reader", birads="4c", user="dr")
    store.set_label("malignant", image_id=iid, source="reader", birads="5", note="spiculated", user="dr")
    rec = store.image(iid)
    assert rec.label.label == "malignant" and rec.label.source == "reader" and rec.label.birads == "5"
    assert rec.labels["import"].label == "benign"  # the imported truth is kept apart
    changes = [(a.field, a.old_value, a.new_value) for a in store.audit_log("image", iid) if a.action == "set_label"]
    assert ("label[import]", None, "benign") in changes
    assert ("birads[reader]", "4c", "5") in changes
    assert ("note[reader]", None, "spiculated") in changes
    store.clear_label(image_id=iid, source="reader", user="dr")
    assert store.image(iid).label.source == "import"
    with pytest.raises(ValueError):
        store.set_label("maybe", image_id=iid)


def test_patient_label_and_review(store: Store) -> None:
    store.add_image(_new(1))
    store.set_label("malignant", patient_key="P1", source="biopsy", biopsy_confirmed=True)
    assert store.patient("P1").patient_label.label == "malignant"
    store.set_reviewed("P1")
    assert store.patient("P1").reviewed
    assert any(a.action == "review" for a in store.audit_log("patient"))


def test_audit_log_is_append_only(store: Store) -> None:
    store.add_image(_new(1, label="benign"))
    statements = ["UPDATE audit_log SET new_value='x'", "DELETE FROM audit_log"]
    if store.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_log")
    with store.engine.connect() as conn:
        for sql in statements:
            with pytest.raises(DatabaseError, match="append-only"):
                conn.execute(text(sql))
            conn.rollback()
    assert len(store.audit_log()) == 2


def test_rois_are_clamped_updated_and_soft_deleted(store: Store) -> None:
    _, iid = store.add_image(_new(1))
    roi = store.add_roi(iid, (110, 90, 10, -5))
    assert roi.box == (10, 0, 110, 90)
    roi2 = store.add_roi(iid, (0, 0, 500, 500))
    assert roi2.box == (0, 0, 120, 100)
    assert store.update_roi(roi.id, (20, 20, 60, 60)).box == (20, 20, 60, 60)
    store.delete_roi(roi2.id)
    assert [r.id for r in store.rois(iid)] == [roi.id]
    with pytest.raises(ValueError):
        store.add_roi(iid, (5, 5, 5, 50))


def test_latest_prediction_per_architecture(store: Store) -> None:
    _, iid = store.add_image(_new(1))
    base = dict(
        image_id=iid,
        roi_id=None,
        frame=0,
        model_name="m",
        model_version=1,
        model_sha256="s" * 64,
        image_hash="h" * 64,
        probabilities={"benign": 0.3, "malignant": 0.7},
    )
    store.add_predictions([dict(base, architecture="vgg16", label="malignant", malignant_probability=0.7)])
    store.add_predictions(
        [
            dict(
                base,
                architecture="vgg16",
                label="benign",
                malignant_probability=0.2,
                probabilities={"benign": 0.8, "malignant": 0.2},
            )
        ]
    )
    latest = store.latest_predictions([iid])
    assert latest[(iid, "vgg16")].malignant_probability == pytest.approx(0.2)


def test_training_items_follow_sources_and_rois(store: Store) -> None:
    _, a = store.add_image(_new(1, label="benign"))
    _, b = store.add_image(_new(2, label="normal"))
    store.set_label("malignant", image_id=a, source="biopsy")
    items = store.training_items()
    assert [(i.image_id, i.label, i.label_source) for i in items] == [(a, "malignant", "biopsy")]
    assert [i.label for i in store.training_items(label_sources=["import"])] == ["benign"]
    store.add_roi(a, (1, 1, 50, 50))
    rois = store.training_items(use_rois=True)
    assert len(rois) == 1 and rois[0].roi == (1, 1, 50, 50)
    assert b not in [i.image_id for i in store.training_items(classes=("benign", "malignant"))]


def test_failed_write_leaves_no_half_rows(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import busviewer.core.store.bulk as mod

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mod, "set_label", boom)  # the label write fails after the image's rows
    with pytest.raises(RuntimeError):
        store.add_image(_new(1, patient="NEW", label="benign"))
    assert store.counts() == {"patients": 0, "studies": 0, "series": 0, "images": 0, "labels": 0}


def test_unwritable_store_location_is_a_clear_error(tmp_path: Path) -> None:
    from busviewer.core.store import StoreError

    bad = tmp_path / "file"
    bad.write_text("not a database")
    with pytest.raises(StoreError, match=str(bad)):
        Store(bad)
