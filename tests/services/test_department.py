"""Two workstations share one department store (PostgreSQL) and one shared folder: a model
trained on one is activated on the other after the same checks; the locked test set is
the department's; publishing never overwrites another workstation's model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from busviewer.core.store import Store
from busviewer.core.store import shared as sh
from busviewer.services import department
from busviewer.services.department import DepartmentError
from busviewer.training.locked_test import LockedTestSet, load_locked_test, save_locked_test


@pytest.fixture
def workstations(pg_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """(store as dr_a, store as dr_b, shared folder): both on the same database."""
    a, b = Store(pg_url, user="dr_a"), Store(pg_url, user="dr_b")
    folder = department.init(a, tmp_path / "share")
    yield a, b, folder
    a.close()
    b.close()


def test_shared_folder_is_recorded_in_the_store(
    workstations,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b, folder = workstations
    assert department.shared_folder(b) == folder and (folder / "models").is_dir()
    assert [(e.user, e.field, e.new_value) for e in b.audit_log("store")] == [("dr_a", "shared_dir", str(folder))]
    mounted = tmp_path / "elsewhere"
    monkeypatch.setenv("BUSVIEWER_SHARED_DIR", str(mounted))
    with pytest.raises(DepartmentError, match="not reachable from this workstation"):
        department.shared_folder(b)
    mounted.mkdir()
    assert department.shared_folder(b) == mounted


def test_model_trained_on_one_workstation_is_activated_on_another(workstations, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model
    from busviewer.ai.registry import ModelRegistry

    a, b, folder = workstations
    reg_a = ModelRegistry(user_dir=tmp_path / "a-models", shipped_dir=tmp_path / "none")
    reg_b = ModelRegistry(user_dir=tmp_path / "b-models", shipped_dir=tmp_path / "none")
    try:
        torch.manual_seed(0)
        card = ModelCard("ens", 1, "ensemble", "bmode", input_size=64, pretrained_init="random")
        trained = reg_a.save(build_model("ensemble", "bmode", pretrained=False), card)
        record, new = department.publish_model(a, reg_a, "ens:1")
        assert new and record.ref == "ens:1" and record.sha256 == trained.card.sha256 and record.user == "dr_a"
        assert department.publish_model(a, reg_a, "ens:1") == (record, False)  # idempotent
        assert [r.ref for r in sh.shared_models(b)] == ["ens:1"]  # visible to every workstation
        assert reg_b.list() == []

        card_file = folder / "models" / "ens-v1.json"  # a changed shared file is refused
        good = card_file.read_text()
        card_file.write_text(json.dumps({**json.loads(good), "sha256": "0" * 64}))
        with pytest.raises(DepartmentError, match="differs from what was published"):
            department.activate_model(b, reg_b, "ens:1")
        card_file.write_text(good)

        active = department.activate_model(b, reg_b, "ens:1")
        assert active.active and active.card.sha256 == trained.card.sha256 and reg_b.active("ensemble") == active
        assert reg_a.active("ensemble") is None  # activation is per workstation
        last = a.audit_log("model")[-1]
        assert (last.action, last.user, last.new_value) == ("activate_model", "dr_b", "ens:1")
    finally:
        shutil.rmtree(tmp_path / "a-models", ignore_errors=True)
        shutil.rmtree(tmp_path / "b-models", ignore_errors=True)
        shutil.rmtree(folder / "models", ignore_errors=True)


def test_same_name_and_version_from_two_workstations_get_two_versions(workstations) -> None:  # type: ignore[no-untyped-def]
    a, b, _folder = workstations
    placed: list[int] = []

    def place(version: int) -> str:
        placed.append(version)
        return f"models/m-v{version}.safetensors"

    card = {"name": "m", "version": 3, "architecture": "vgg16", "sha256": "a" * 64}
    first, _ = sh.add_shared_model(a, card, place)
    second, new = sh.add_shared_model(b, {**card, "sha256": "b" * 64}, place)
    assert (first.ref, second.ref, new, placed) == ("m:3", "m:4", True, [3, 4])
    assert second.card["version"] == 4 and second.user == "dr_b"

    def broken(version: int) -> str:
        raise OSError("shared folder full")

    with pytest.raises(OSError):
        sh.add_shared_model(a, {**card, "sha256": "c" * 64}, broken)
    assert [r.ref for r in sh.shared_models(a)] == ["m:3", "m:4"]  # nothing half-published


def _locked(seed: int) -> LockedTestSet:
    return LockedTestSet(
        patients=("P1", "P7"),
        created=f"2025-01-0{seed}T10:00:00+00:00",
        seed=seed,
        fraction=0.15,
        counts={"patients": 2},
    )


def test_locked_test_set_is_the_departments(workstations, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b, _folder = workstations
    file_a, file_b = tmp_path / "a" / "locked_test_set.json", tmp_path / "b" / "locked_test_set.json"
    file_a.parent.mkdir()
    file_b.parent.mkdir()
    with pytest.raises(DepartmentError, match="no locked test set yet"):
        department.pull_locked_test(b, file_b)
    save_locked_test(_locked(1), file_a)
    assert department.sync_locked_test(a, file_a) == _locked(1)  # published
    assert department.sync_locked_test(b, file_b) == _locked(1)  # pulled
    assert load_locked_test(file_b) == _locked(1)

    other = tmp_path / "c" / "locked_test_set.json"
    other.parent.mkdir()
    save_locked_test(_locked(2), other)
    with pytest.raises(Exception, match="already has a locked test set"):
        department.publish_locked_test(b, other)
    with pytest.raises(DepartmentError, match="another locked test set"):
        department.pull_locked_test(b, other)
    assert department.pull_locked_test(b, other, replace=True) == _locked(1)
    assert load_locked_test(other) == _locked(1) and len(list(other.parent.glob("*.reset-*.json"))) == 1
    assert department.retire_locked_test(a) == _locked(1)
    assert department.department_locked_test(b) is None
    department.publish_locked_test(b, file_b)  # a new set may follow a retired one
    actions = [e.action for e in a.audit_log("locked_test")]
    assert actions == ["publish_locked_test", "replace_locked_test", "retire_locked_test", "publish_locked_test"]
