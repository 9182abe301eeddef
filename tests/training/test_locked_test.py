"""The locked test set: chosen once, persisted atomically, reused by every later split,
never in training or validation, never joined by new patients, reset only explicitly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from busviewer.training.data import Sample
from busviewer.training.locked_test import (
    LockedTestError,
    LockedTestExistsError,
    check_plan,
    choose_locked_patients,
    create_locked_test,
    load_locked_test,
    locked_test_path,
    plan_with_locked_test,
    reset_locked_test,
    save_plan,
)
from busviewer.training.splits import SplitPlan


def samples_for(n: int, prefix: str = "P", per: int = 2) -> list[Sample]:
    return [
        Sample(Path(f"/img/{prefix}{i:03d}_{k}.png"), i % 2, f"{prefix}{i:03d}") for i in range(n) for k in range(per)
    ]


def test_created_once_persisted_and_atomic(tmp_path: Path) -> None:
    from busviewer.core.paths import data_dir

    assert locked_test_path() == data_dir() / "locked_test_set.json"
    assert load_locked_test() is None
    samples = samples_for(40)
    locked = create_locked_test(samples, fraction=0.2, seed=3, store="sqlite:///x")
    path = locked_test_path()
    assert path.is_file() and not list(path.parent.glob(".tmp-*"))
    d = json.loads(path.read_text())
    assert d["format"] == "busviewer-locked-test/1" and d["seed"] == 3 and d["fraction"] == 0.2
    assert d["created"] and d["patients"] == sorted(d["patients"]) and len(d["patients"]) == 8
    assert d["counts"] == {"patients": 8, "benign": 4, "malignant": 4, "images": 16, "candidates": 40}
    assert load_locked_test() == locked
    # never replaced silently
    with pytest.raises(LockedTestExistsError):
        create_locked_test(samples_for(60), fraction=0.5, seed=9)
    assert load_locked_test() == locked
    # deterministic: the same patients, the same seed -> the same choice
    labels = {s.patient: s.label for s in samples}
    assert choose_locked_patients(labels, 0.2, 3) == list(locked.patients)
    assert choose_locked_patients(labels, 0.2, 4) != list(locked.patients)


def test_plans_keep_locked_patients_out_of_training(tmp_path: Path) -> None:
    samples = samples_for(30)
    locked = create_locked_test(samples, fraction=0.2, seed=0)
    lk = set(locked.patients)
    for seed, folds in ((0, 0), (1, 0), (7, 3)):
        plan = plan_with_locked_test(samples, locked, val_fraction=0.2, folds=folds, seed=seed)
        assert set(plan.fixed.test) == lk
        assert not lk & (set(plan.fixed.train) | set(plan.fixed.val))
        assert len(plan.folds) == folds
        for f in plan.folds:  # cross-validation only ever uses the other patients
            assert not lk & (set(f.train) | set(f.val) | set(f.test))
        assert set(plan.fixed.train) | set(plan.fixed.val) | set(plan.fixed.test) == {s.patient for s in samples}
        assert plan.counts["test"]["patients"] == len(lk)

    # new patients arrive later: they go to training/validation, never to the test part
    more = samples + samples_for(10, prefix="N")
    plan = plan_with_locked_test(more, locked, val_fraction=0.2, seed=0)
    assert set(plan.fixed.test) == lk
    new = {s.patient for s in more if s.patient.startswith("N")}
    assert new <= set(plan.fixed.train) | set(plan.fixed.val)
    assert load_locked_test() == locked  # the file is untouched

    # a locked patient filtered out of the data is not tested -- and not trained on either
    gone = sorted(lk)[0]
    plan = plan_with_locked_test([s for s in samples if s.patient != gone], locked, 0.2)
    assert set(plan.fixed.test) == lk - {gone}
    check_plan(plan, locked)

    # the saved plan is a normal split file with a note; a leaked plan is refused
    out = save_plan(plan, locked, tmp_path / "split.json", samples)
    loaded = SplitPlan.load(out)
    assert loaded.fixed.test == plan.fixed.test
    assert json.loads(out.read_text())["locked_test"]["created"] == locked.created
    loaded.fixed.train.append(sorted(lk)[1])
    with pytest.raises(ValueError, match="locked test patient"):
        check_plan(loaded, locked)


def test_reset_archives_and_damaged_file_is_not_replaced(tmp_path: Path) -> None:
    locked = create_locked_test(samples_for(20), fraction=0.25, seed=0)
    archive = reset_locked_test()
    assert archive is not None and archive.is_file() and load_locked_test() is None
    assert json.loads(archive.read_text())["patients"] == list(locked.patients)
    assert reset_locked_test() is None
    again = create_locked_test(samples_for(20), fraction=0.25, seed=1)
    assert again.seed == 1
    locked_test_path().write_text("{not json", encoding="utf-8")
    with pytest.raises(LockedTestError, match="locked_test_set.json"):
        load_locked_test()
    with pytest.raises(LockedTestExistsError):
        create_locked_test(samples_for(20), fraction=0.25)


def test_a_real_run_uses_the_locked_test_patients(
    manifest: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    registry,
    fast_config,
) -> None:
    """Two runs with the same locked set (different seeds): their split.json test parts are
    the locked patients, their train/validation parts never are."""
    from busviewer.training.data import load_samples
    from busviewer.training.run import run_training

    samples = load_samples(str(manifest)).samples
    locked = create_locked_test(samples, fraction=0.25, seed=0)
    for seed in (0, 1):
        run_dir = tmp_path / f"run-{seed}"
        folds = 2 if seed else 0  # cross-validation folds come from the plan, without the locked patients
        plan = plan_with_locked_test(samples, locked, val_fraction=0.2, folds=folds, seed=seed)
        split_file = save_plan(plan, locked, tmp_path / f"plan-{seed}.json", samples)
        cfg = fast_config(
            manifest,
            run_dir,
            split_file=str(split_file),
            register=False,
            checkpoints=False,
            epochs=1,
            seed=seed,
            architecture="ensemble",
            folds=folds,
        )
        result = run_training(cfg, registry=registry)
        assert result.status == "finished"
        saved = json.loads((run_dir / "split.json").read_text())
        parts = saved["parts"]
        assert set(parts["test"]) == set(locked.patients)
        assert not set(locked.patients) & (set(parts["train"]) | set(parts["val"]))
        assert len(saved["folds"]) == folds and len(result.metrics.get("cv", {}).get("folds", [])) == folds
        for f in saved["folds"]:
            assert not set(locked.patients) & (set(f["train"]) | set(f["val"]) | set(f["test"]))
        assert result.metrics["test"]["n_patients"] == len(locked.patients)
