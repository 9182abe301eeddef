"""Blinded first read (issue 14): the read is kept before the reveal, locked after it, and
reader vs AI is measured against biopsy / imported ground truth; CLI twin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_helpers import new_image

from busviewer.ai.results import summarise
from busviewer.cli import main
from busviewer.core.store import Store
from busviewer.core.store.reads import ReadLockedError, reads
from busviewer.services.blinded_read import compare, ground_truth, must_read_first, record, reveal

SHA = "aa" * 32


def _rows(image_id: int, p: float) -> list[dict]:
    return [
        dict(
            image_id=image_id,
            frame=0,
            roi_id=None,
            model_name="m-ens",
            model_version=1,
            architecture="ensemble",
            model_sha256=SHA,
            image_hash=f"{image_id:064x}",
            label="malignant" if p >= 0.5 else "benign",
            malignant_probability=p,
            probabilities={"benign": 1 - p, "malignant": p},
        )
    ]


def _patients(store: Store) -> dict[str, int]:
    """P1 biopsy malignant, P2 imported benign, P3 image-level import malignant, P4 no ground truth."""
    ids = {}
    for i, (key, label) in enumerate((("P1", None), ("P2", None), ("P3", "malignant"), ("P4", None)), start=1):
        _, ids[key] = store.add_image(new_image(i, key, label=label))
    store.set_label("malignant", patient_key="P1", source="biopsy", biopsy_confirmed=True)
    store.set_label("benign", patient_key="P2", source="import")
    store.set_label("malignant", patient_key="P4", source="reader")  # the reader's own label is not ground truth
    return ids


def _analysis(key: str, image_id: int, p: float):  # type: ignore[no-untyped-def]
    from busviewer.ai.results import ImagePrediction

    pred = ImagePrediction(
        image_id, 0, None, "ensemble", "m-ens", 1, {"benign": 1 - p, "malignant": p}, p, "benign", SHA
    )
    return summarise(key, {(image_id, "ensemble"): pred})


def test_read_then_reveal_then_compare(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite", user="dr-a")
    ids = _patients(store)
    assert [ground_truth(store, k) for k in ("P1", "P2", "P3", "P4")] == ["malignant", "benign", "malignant", None]
    assert must_read_first(store, "P1")
    with pytest.raises(KeyError, match="record it before the reveal"):
        reveal(store, "P1", _analysis("P1", ids["P1"], 0.9))
    with pytest.raises(ValueError, match="benign or malignant"):
        record(store, "P1", "probably", "4")

    record(store, "P1", "benign", "3")
    record(store, "P1", "malignant", "4b")  # changed before the reveal
    assert not must_read_first(store, "P1")
    rec = reveal(store, "P1", _analysis("P1", ids["P1"], 0.9))
    assert (rec.call, rec.birads, rec.ai_label, rec.revealed) == ("malignant", "4B", "malignant", True)
    assert rec.ai_detail["models"]["ensemble"]["model"] == "m-ens v1"
    with pytest.raises(ReadLockedError, match="stays as recorded"):
        record(store, "P1", "benign", "2")
    assert reveal(store, "P1", _analysis("P1", ids["P1"], 0.1)).ai_label == "malignant"  # the first reveal stays

    record(store, "P2", "malignant", "4A")
    reveal(store, "P2", _analysis("P2", ids["P2"], 0.2))  # AI benign: disagree; AI right, reader wrong
    record(store, "P3", "malignant", "5")
    reveal(store, "P3", _analysis("P3", ids["P3"], 0.5))  # indeterminate: no AI call
    record(store, "P4", "benign", None)  # not revealed, no ground truth
    record(store, "P4", "benign", None, reader="dr-b")

    total, months = compare(store, "dr-a")
    assert (total.reads, total.revealed, total.ai_no_call, total.compared, total.agree) == (4, 3, 1, 2, 1)
    assert total.agreement == 0.5 and total.with_truth == 3
    rates = total.rates()
    assert rates["reader_sensitivity"] == 1.0 and rates["reader_specificity"] == 0.0  # P1, P3 found; P2 called M
    assert rates["ai_sensitivity"] == 1.0 and rates["ai_specificity"] == 1.0  # P1 and P2 (P3 no AI call)
    assert len(months) == 1 and months[0].reads == 4
    assert compare(store)[0].reads == 5 and len(reads(store, "dr-b")) == 1
    assert [e.new_value for e in store.audit_log("reader_read")][:2] == ["benign 3", "malignant 4B"]


def test_cli_read_record_reveal_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.sqlite")
    store = Store(db)
    ids = _patients(store)
    store.add_predictions(_rows(ids["P1"], 0.93))
    assert main(["--store", db, "read", "reveal", "P1"]) == 1
    assert "record your read first" in capsys.readouterr().err
    assert main(["--store", db, "read", "record", "P1", "--call", "benign", "--birads", "3"]) == 0
    out = capsys.readouterr().out
    assert "benign, BI-RADS 3" in out and "malignant" not in out  # nothing of the AI before the reveal
    assert main(["--store", db, "read", "reveal", "P1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["call"], shown["ai_label"]) == ("benign", "malignant") and shown["notice"].startswith("Research")
    assert main(["--store", db, "read", "record", "P1", "--call", "malignant"]) == 1
    assert "stays as recorded" in capsys.readouterr().err
    assert main(["--store", db, "read", "compare", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["all"]
    assert (res["reads"], res["agreement"], res["reader_sensitivity"], res["ai_sensitivity"]) == (1, 0.0, 0.0, 1.0)
    assert main(["--store", db, "read", "compare"]) == 0
    assert "R sens" in capsys.readouterr().out
