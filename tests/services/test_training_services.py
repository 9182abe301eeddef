"""The training wizard's data check, locked test set and runs list, from the command line: the
same services, the same audit entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic import labelled_pngs

from busviewer.cli import main
from busviewer.core.store import Store
from busviewer.services import locked_tests


@pytest.fixture
def labelled_store(tmp_path: Path) -> str:
    """A store (the default one of the test's BUSVIEWER_HOME) with 12 labelled images of 6
    patients (2 images each) and 2 normal ones."""
    manifest = labelled_pngs(tmp_path / "busi", n=12, normal=2)
    assert main(["import", str(manifest), "-q"]) == 0
    return str(manifest)


def test_data_check_reports_counts_and_warnings(labelled_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check"]) == 0
    out = capsys.readouterr().out
    assert "12 images of 6 patients" in out
    assert "warning:" in out and "patients" in out  # 3 patients per class: fewer than the 20 advised
    assert "near" in out.lower()  # the near-duplicate scan ran (and its result is said)


def test_locked_test_create_show_reset_audited(labelled_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "locked-test", "show"]) == 0
    assert "no locked test set" in capsys.readouterr().out
    assert main(["data", "locked-test", "create", "--fraction", "0.34", "--seed", "1"]) == 0
    assert "locked test set created: 2 patients" in capsys.readouterr().out
    locked, problem = locked_tests.load()
    assert locked is not None and not problem and len(locked.patients) == 2
    assert main(["data", "locked-test", "create"]) == 1  # never replaced without a reset
    assert "reset" in capsys.readouterr().err
    assert main(["data", "locked-test", "reset"]) == 1  # needs --yes
    assert main(["data", "locked-test", "reset", "--yes"]) == 0
    assert "archived as" in capsys.readouterr().out
    assert locked_tests.load() == (None, "")
    store = Store()
    try:
        entries = store.audit_log("locked_test")
    finally:
        store.close()
    assert [a.action for a in entries] == ["create_locked_test", "reset_locked_test"]
    assert sorted(json.loads(entries[0].new_value)["patients"]) == sorted(locked.patients)


def test_runs_lists_run_directories(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from busviewer.core.paths import runs_dir

    assert main(["runs"]) == 0
    assert "no runs" in capsys.readouterr().out
    run = runs_dir() / "vgg16-20261205-080000"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"architecture": "vgg16", "name": "vgg16"}), encoding="utf-8")
    (run / "events.jsonl").write_text(json.dumps({"event": "cancelled"}) + "\n", encoding="utf-8")
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert str(run) in out and "VGG-16" in out
