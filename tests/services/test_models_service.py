"""Model use cases (services.models) called directly, and the CLI doing the same: one audit
trail, so a model activated from the command line can be rolled back in the GUI's terms."""

from __future__ import annotations

from pathlib import Path

import pytest

from busviewer.cli import main
from busviewer.core.store import AuditAction, Store
from busviewer.services import models as svc

GOOD = {"test": {"image": {"auc": 0.91, "n": 120}, "patient": {"auc": 0.93, "n": 60}}}
POOR = {"test": {"image": {"auc": 0.55, "n": 120}, "patient": {"auc": 0.52, "n": 60}}}
TINY = {"test": {"image": {"auc": 0.95, "n": 12}, "patient": {"auc": 0.97, "n": 6}}}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One small VGG-16 (bn variant) saved once; tests register copies under other names."""
    import torch

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model
    from busviewer.ai.registry import ModelRegistry

    folder = tmp_path_factory.mktemp("src")
    torch.manual_seed(0)
    reg = ModelRegistry(user_dir=folder, shipped_dir=folder / "none")
    entry = reg.save(
        build_model("vgg16", pretrained=False, variant="bn"),
        ModelCard(name="src", version=1, architecture="vgg16", input_size=64, variant="bn", pretrained_init="random"),
    )
    return entry.weights_path, entry.card_path


@pytest.fixture
def registry(weights: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The default registry of the test's BUSVIEWER_HOME with versions good, poor and tiny."""
    from busviewer.ai.integrity import seal
    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.registry import ModelRegistry

    drop = tmp_path / "drop"
    drop.mkdir()
    reg = ModelRegistry()
    for name, metrics in (("good", GOOD), ("poor", POOR), ("tiny", TINY)):
        card = ModelCard.read(weights[1]).with_updates(name=name, metrics=metrics)
        (drop / f"{name}-v1.safetensors").write_bytes(weights[0].read_bytes())
        (drop / f"{name}-v1.json").write_text(seal(card).to_json(), encoding="utf-8")
        reg.import_model(drop / f"{name}-v1.json")
    return reg


def test_activation_warnings_name_the_reason(registry) -> None:  # type: ignore[no-untyped-def]
    assert svc.activation_question(registry.get("good", 1).card) is None
    poor = svc.activation_question(registry.get("poor", 1).card)
    assert poor is not None and "test AUC is 0.52" in poor
    tiny = svc.activation_question(registry.get("tiny", 1).card)
    assert tiny is not None and "only 6 patients" in tiny
    assert svc.activation_warnings(registry.get("good", 1).card.with_updates(metrics={})) == []


def test_cli_activation_is_audited_and_rolled_back_by_the_service(registry, capsys) -> None:  # type: ignore[no-untyped-def]
    """Bug: `models activate` logged `activate` with old=None, which roll back never read."""
    assert main(["models", "activate", "good:1"]) == 0
    assert main(["models", "activate", "poor:1"]) == 1  # poor test AUC: refused without --yes
    assert "test AUC is 0.52" in capsys.readouterr().err
    assert registry.active("vgg16").ref == "good:1"
    assert main(["models", "activate", "poor:1", "--yes"]) == 0
    store = Store()
    try:
        log = [(a.action, a.old_value, a.new_value) for a in store.audit_log("model")]
        assert log[-2:] == [("activate_model", None, "good:1"), ("activate_model", "good:1", "poor:1")]
        # what Model > Manage models offers: roll back to the previous one
        assert svc.rollback_ref(registry, store, "vgg16") == "good:1"
        change = svc.roll_back(registry, store, "vgg16")
        assert (change.entry.ref, change.previous) == ("good:1", "poor:1")
        assert store.audit_log("model")[-1].action == AuditAction.ROLLBACK_MODEL
        assert svc.rollback_ref(registry, store, "vgg16") is None  # nothing earlier than good:1
    finally:
        store.close()
    assert main(["models", "rollback", "vgg16"]) == 1
    assert "no earlier vgg16 model" in capsys.readouterr().err


def test_cli_import_activate_export_and_delete_are_audited(registry, weights, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from busviewer.ai.integrity import seal
    from busviewer.ai.modelcard import ModelCard

    src = tmp_path / "in"
    src.mkdir()
    (src / "extra-v1.safetensors").write_bytes(weights[0].read_bytes())
    card = ModelCard.read(weights[1]).with_updates(name="extra", metrics=GOOD)
    (src / "extra-v1.json").write_text(seal(card).to_json(), encoding="utf-8")
    assert main(["models", "import", str(src / "extra-v1.json"), "--activate"]) == 0
    assert main(["models", "export", "extra:1", str(tmp_path / "out")]) == 0
    assert main(["models", "activate", "good:1"]) == 0
    assert main(["models", "delete", "extra:1"]) == 0
    store = Store()
    try:
        actions = [a.action for a in store.audit_log("model")]
    finally:
        store.close()
    assert actions[-5:] == ["import_model", "activate_model", "export_model", "activate_model", "delete_model"]
    assert (tmp_path / "out" / "extra-v1.safetensors").is_file()


def test_every_audit_action_is_a_member_of_the_enum(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown audit action 'discard_model'"):
        store.log("discard_model", "model", None, "vgg16", "x:1", None)
    store.log(AuditAction.DELETE_MODEL, "model", None, "vgg16", "x:1", None)
    assert store.audit_log("model")[-1].action == "delete_model"


def test_legacy_actions_still_count_for_the_history() -> None:
    from busviewer.core.store import AuditRecord

    def rec(action: str, old: str | None, new: str | None) -> AuditRecord:
        return AuditRecord(0, None, "u", action, "model", None, "vgg16", old, new)  # type: ignore[arg-type]

    history = svc.activation_history([rec("activate", None, "a:1"), rec("activate_model", "a:1", "b:1")], "vgg16")
    assert history == ["a:1", "b:1"]
    assert svc.rollback_target(history, "b:1", {"a:1", "b:1"}) == "a:1"
