"""Patient-wise splits, manifests and datasets (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from busviewer.training.data import Sample, class_weights, load_samples, samples_from_items, summarize
from busviewer.training.splits import (
    Split,
    SplitPlan,
    kfold_splits,
    limit_patients,
    make_plan,
    patient_labels,
    split_patients,
)


def fake_samples(n_patients: int = 60, seed: int = 1) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for p in range(n_patients):
        label = int(rng.random() < 0.35)
        for i in range(int(rng.integers(1, 5))):
            out.append(Sample(Path(f"/x/{p}_{i}.png"), label, f"pat-{p:03d}"))
    # a patient with conflicting labels
    out += [Sample(Path("/x/mix_0.png"), 0, "pat-mix"), Sample(Path("/x/mix_1.png"), 1, "pat-mix")]
    return out


def _assert_patientwise(samples: list[Sample], split: Split) -> None:
    split.check_disjoint()
    parts = {p: name for name in ("train", "val", "test") for p in split.part(name)}
    for s in samples:
        if s.patient in parts:
            # every image of a patient is in the patient's part
            assert all(parts[t.patient] == parts[s.patient] for t in samples if t.patient == s.patient)


def test_fixed_split_is_patientwise_stratified_and_complete() -> None:
    samples = fake_samples()
    plan = make_plan(samples, val_fraction=0.15, test_fraction=0.15, seed=0)
    split = plan.fixed
    _assert_patientwise(samples, split)
    everyone = {s.patient for s in samples}
    assert set(split.train) | set(split.val) | set(split.test) == everyone
    assert len(split.test) == round(0.15 * len(everyone)) and len(split.val) == round(0.15 * len(everyone))
    labels = patient_labels(samples)
    assert labels["pat-mix"] == 1  # any malignant image -> malignant patient
    overall = np.mean(list(labels.values()))
    for part in ("train", "val", "test"):
        frac = np.mean([labels[p] for p in split.part(part)])
        assert abs(frac - overall) < 0.12, part
    assert plan.counts["test"]["images"] == sum(1 for s in samples if s.patient in set(split.test))


def test_same_seed_same_split_other_seed_other_split() -> None:
    samples = fake_samples()
    a = make_plan(samples, folds=5, seed=3)
    b = make_plan(list(reversed(samples)), folds=5, seed=3)  # input order does not matter
    c = make_plan(samples, folds=5, seed=4)
    assert a.to_dict() == b.to_dict()
    assert a.fixed.to_dict() != c.fixed.to_dict()


def test_kfold_patients_never_cross_folds() -> None:
    samples = fake_samples()
    labels = patient_labels(samples)
    folds = kfold_splits(labels, 5, val_fraction=0.15, seed=0)
    assert len(folds) == 5
    tested: list[str] = []
    for f in folds:
        _assert_patientwise(samples, f)
        assert set(f.train) | set(f.val) | set(f.test) == set(labels)
        assert f.val and f.train and f.test
        tested += f.test
    assert sorted(tested) == sorted(labels)  # each patient is tested exactly once


def test_split_json_roundtrip(tmp_path: Path) -> None:
    plan = make_plan(fake_samples(), folds=3, seed=0)
    plan.save(tmp_path / "split.json")
    again = SplitPlan.load(tmp_path / "split.json")
    assert again.to_dict() == plan.to_dict()
    assert again.fixed.part("test") == plan.fixed.test


def test_small_and_limited() -> None:
    labels = {f"p{i}": i % 2 for i in range(5)}
    s = split_patients(labels, 0.2, 0.2, seed=0)
    assert len(s.train) == 3 and len(s.val) == 1 and len(s.test) == 1
    with pytest.raises(ValueError):
        split_patients({"a": 0, "b": 1}, 0.4, 0.4)
    big = {f"p{i}": int(i % 3 == 0) for i in range(90)}
    sub = limit_patients(big, 30, seed=0)
    assert len(sub) == 30 and sum(sub.values()) == 10
    assert limit_patients(big, 30, seed=0) == sub


def test_manifest_loading(manifest: Path) -> None:
    dropped = load_samples(str(manifest))
    assert dropped.dropped == {"normal": 3}
    assert all(s.path.is_file() for s in dropped.samples)  # relative to the CSV, spaces and parentheses
    assert {s.label for s in dropped.samples} == {0, 1}
    with_normal = load_samples(str(manifest), normal="benign")
    assert len(with_normal.samples) == len(dropped.samples) + 3
    summ = summarize(dropped.samples)
    assert summ["patients_with_conflicting_labels"] == 1
    assert summ["label_sources"] == {"import": len(dropped.samples)}
    bad = manifest.parent / "bad.csv"
    bad.write_text("image,label,patient_id\nimages/x.png,maybe,P1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.csv:2"):
        load_samples(str(bad))
    src = manifest.parent / "sources.csv"
    src.write_text(
        "image,label,patient_id,label_source\n"
        f"{dropped.samples[0].path},benign,P1,import\n{dropped.samples[1].path},malignant,P2,biopsy\n",
        encoding="utf-8",
    )
    only = load_samples(str(src), label_sources=["biopsy"])
    assert [s.patient for s in only.samples] == ["P2"] and only.dropped == {"label_source:import": 1}


def test_store_items_keep_label_source_and_roi() -> None:
    from busviewer.core.store import TrainingItem

    items = [
        TrainingItem(1, Path("/a.dcm"), 0, "P1", "benign", "import", (1, 2, 30, 40), "h1"),
        TrainingItem(2, Path("/b.dcm"), 2, "P2", "malignant", "biopsy", None, "h2"),
        TrainingItem(3, Path("/c.dcm"), 0, "P3", "normal", "reader", None, "h3"),
    ]
    sset = samples_from_items(items, use_rois=True)
    assert [(s.label, s.label_source, s.roi, s.frame) for s in sset.samples] == [
        (0, "import", (1, 2, 30, 40), 0),
        (1, "biopsy", None, 2),
    ]
    assert sset.dropped == {"normal": 1}
    assert samples_from_items(items, use_rois=False).samples[0].roi is None


def test_class_weights() -> None:
    assert class_weights([0, 0, 0, 1]) == [4 / 6, 2.0]
