"""``busviewer store check|backup|restore|migrate`` on SQLite stores, through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import new_image as _new

from busviewer.cli import main
from busviewer.core.store import Store
from busviewer.services import store_admin


def test_check_names_unreachable_images_and_a_missing_audit_guard(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    store = Store(db)
    there = tmp_path / "a.png"
    there.write_bytes(b"x")
    store.add_image(_new(1, path=there))
    store.add_image(_new(2, path=tmp_path / "gone.png"))
    store.close()
    report = store_admin.check(db)
    assert report.problems == (
        f"1 of 2 image files are not reachable from this workstation (e.g. {tmp_path / 'gone.png'})",
    )
    assert store_admin.check(db, images=False).ok
    with Store(db).engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
    assert any("append-only" in p for p in store_admin.check(db, images=False).problems)


def test_cli_backup_restore_migrate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.sqlite"
    store = Store(db)
    _, iid = store.add_image(_new(1, label="malignant"))
    store.close()
    out = tmp_path / "copy.sqlite"
    assert main(["--store", str(db), "store", "backup", "--out", str(out)]) == 0
    assert "integrity check ok" in capsys.readouterr().out
    assert main(["--store", str(db), "store", "backup", "--out", str(out)]) == 1  # never overwrites
    assert "exists already" in capsys.readouterr().err
    store = Store(db)
    store.set_label("benign", image_id=iid, source="import")
    store.close()
    assert main(["--store", str(db), "store", "restore", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "previous content was backed up first" in printed
    assert Store(db).image(iid).labels["import"].label == "malignant"
    kept = next((tmp_path / "backups").glob("s.replaced.*.sqlite"))
    assert Store(kept).image(iid).labels["import"].label == "benign"  # nothing lost
    assert main(["--store", str(db), "store", "migrate"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["--store", str(db), "store", "check"]) == 1  # the image file does not exist
    assert "not reachable" in capsys.readouterr().out
