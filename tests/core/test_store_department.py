"""Department store rules, on SQLite and PostgreSQL: labels per reader, the reader's
identity on every write, and optimistic concurrency (stale edits refused, not saved)."""

from __future__ import annotations

import pytest
from store_helpers import new_image as _new

from busviewer.core.store import Store
from busviewer.core.store.errors import StaleEditError
from busviewer.core.store.store import current_user, store_url


def test_two_readers_keep_their_own_labels(store_location: str) -> None:
    a, b = Store(store_location, user="dr_a"), Store(store_location, user="dr_b")
    _, iid = a.add_image(_new(1, label="benign"))
    a.set_label("malignant", image_id=iid, birads="4c")
    b.set_label("benign", image_id=iid, birads="3")
    b.set_label("normal", patient_key="P1")
    a.set_label("malignant", patient_key="P1")
    assert a.image(iid).labels["reader"].user == "dr_a" and b.image(iid).labels["reader"].user == "dr_b"
    assert a.image(iid).labels["import"].label == "benign"  # one import label, whoever reads
    readers = {x.user: (x.label, x.birads) for x in a.all_labels(image_id=iid) if x.source == "reader"}
    assert readers == {"dr_a": ("malignant", "4c"), "dr_b": ("benign", "3")}
    assert {x.user for x in a.all_labels(patient_key="P1")} == {"dr_a", "dr_b"}
    assert a.patient("P1").patient_label.label == "malignant" and b.patient("P1").patient_label.label == "normal"
    b.clear_label(image_id=iid)  # clears dr_b's label only
    assert [x.user for x in a.all_labels(image_id=iid) if x.source == "reader"] == ["dr_a"]
    entries = [(e.user, e.field, e.new_value) for e in a.audit_log("image", iid) if e.action != "import"]
    assert ("dr_a", "label[reader]", "malignant") in entries and ("dr_b", "label[reader]", "benign") in entries
    assert any(e.user == "dr_b" and e.action == "clear_label" for e in a.audit_log("image", iid))
    a.close()
    b.close()


def test_stale_roi_edit_is_refused_and_not_saved(store_location: str) -> None:
    a, b = Store(store_location, user="dr_a"), Store(store_location, user="dr_b")
    _, iid = a.add_image(_new(1))
    seen_by_a = a.add_roi(iid, (10, 10, 50, 50))
    seen_by_b = b.roi(seen_by_a.id)
    moved = b.update_roi(seen_by_b.id, (20, 20, 60, 60), expected_version=seen_by_b.version)
    assert moved.version > seen_by_b.version == seen_by_a.version
    audit_before = len(a.audit_log())
    with pytest.raises(StaleEditError, match=r"ROI \d+ was changed by dr_b .*Reload it and apply your change again"):
        a.update_roi(seen_by_a.id, (0, 0, 30, 30), expected_version=seen_by_a.version)
    with pytest.raises(StaleEditError):
        a.delete_roi(seen_by_a.id, expected_version=seen_by_a.version)
    assert a.roi(seen_by_a.id).box == (20, 20, 60, 60) and len(a.audit_log()) == audit_before
    fresh = a.roi(seen_by_a.id)
    assert a.update_roi(fresh.id, (0, 0, 30, 30), expected_version=fresh.version).box == (0, 0, 30, 30)
    last = a.audit_log("roi", fresh.id)[-1]
    assert (last.user, last.old_value, a.roi(fresh.id).version) == ("dr_a", "[20, 20, 60, 60]", last.id)
    a.close()
    b.close()


def test_stale_label_edit_is_refused(store_location: str) -> None:
    a, b = Store(store_location, user="dr_a"), Store(store_location, user="dr_b")
    _, iid = a.add_image(_new(1))
    a.set_label("benign", image_id=iid, source="biopsy", expected_version=0)  # 0: "there was no label"
    with pytest.raises(StaleEditError, match="biopsy label of image"):
        b.set_label("malignant", image_id=iid, source="biopsy", expected_version=0)
    seen = b.image(iid).labels["biopsy"]
    a.set_label("benign", image_id=iid, source="biopsy", biopsy_confirmed=True, expected_version=seen.version)
    with pytest.raises(StaleEditError, match="changed by dr_a"):
        b.set_label("malignant", image_id=iid, source="biopsy", expected_version=seen.version)
    with pytest.raises(StaleEditError):
        b.clear_label(image_id=iid, source="biopsy", expected_version=seen.version)
    now = b.image(iid).labels["biopsy"]
    assert (now.label, now.biopsy_confirmed, now.user) == ("benign", True, "dr_a")
    b.set_label("malignant", image_id=iid, source="biopsy", expected_version=now.version)
    assert a.image(iid).labels["biopsy"].label == "malignant"
    a.close()
    b.close()


def test_every_write_carries_the_reader(store_location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUSVIEWER_USER", "dr_env")
    assert current_user() == "dr_env"
    store = Store(store_location)
    _, iid = store.add_image(_new(1, label="benign"))
    roi = store.add_roi(iid, (1, 1, 20, 20))
    store.add_predictions(
        [
            dict(
                image_id=iid,
                roi_id=None,
                frame=0,
                model_name="m",
                model_version=1,
                architecture="vgg16",
                model_sha256="s" * 64,
                image_hash="h" * 64,
                label="benign",
                malignant_probability=0.1,
                probabilities={"benign": 0.9, "malignant": 0.1},
            )
        ]
    )
    assert roi.user == "dr_env" and store.latest_predictions([iid])[(iid, "vgg16")].user == "dr_env"
    assert {e.user for e in store.audit_log()} == {"dr_env"}
    store.close()


def test_store_urls() -> None:
    assert store_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store_url("/x/store.sqlite") == "sqlite:////x/store.sqlite"
    assert store_url("sqlite:////x/s.sqlite") == "sqlite:////x/s.sqlite"


def test_cli_keeps_a_database_url(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from busviewer.cli import main

    assert main(["--store", pg_url, "store", "migrate"]) == 0
    assert "created a new store" in capsys.readouterr().out
    assert main(["--store", pg_url, "store", "check"]) == 0
    out = capsys.readouterr().out
    assert "postgresql+psycopg://busviewer@127.0.0.1" in out and "(current)" in out and out.strip().endswith("ok")
