"""Schema versions: a store made before versioning (committed SQL) opens after a later
migration exists, with every row intact and a verified, restorable backup; newer stores
are refused; the migrations build exactly ``schema.py``'s tables; backups round-trip."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from busviewer.core.store import Store
from busviewer.core.store import backup as bk
from busviewer.core.store import schema as t
from busviewer.core.store.engine import make_engine
from busviewer.core.store.errors import StoreError, StoreTooNewError
from busviewer.core.store.migrate import BASELINE, alembic_config, head, known_revisions
from busviewer.services import store_admin

FIXTURE = Path(__file__).parent / "data" / "store_pre_alembic.sql"
#: Columns every revision has (compared row by row before and after migrating).
OLD_TABLES = ("patients", "studies", "series", "images", "labels", "rois", "predictions", "model_versions", "audit_log")


def _fixture_file(tmp_path: Path) -> Path:
    db = tmp_path / "old" / "store.sqlite"
    db.parent.mkdir()
    con = sqlite3.connect(db)
    con.executescript(FIXTURE.read_text(encoding="utf-8"))
    con.close()
    return db


def _norm(value: object) -> object:
    if hasattr(value, "tzinfo") and getattr(value, "tzinfo", None) is not None:
        return value.astimezone(UTC).replace(tzinfo=None)  # type: ignore[union-attr]
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _rows(location: str | Path, columns: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """Every row of the baseline tables (the given columns), values normalised."""
    engine = make_engine(location)
    out: dict[str, list[tuple]] = {}
    with engine.connect() as conn:
        for table in OLD_TABLES:
            names = ", ".join(f'"{c}"' for c in columns[table])
            rows = conn.execute(text(f'SELECT {names} FROM "{table}" ORDER BY id')).all()
            out[table] = [tuple(_norm(v) for v in r) for r in rows]
    engine.dispose()
    return out


def _baseline_columns(db: Path) -> dict[str, list[str]]:
    con = sqlite3.connect(db)
    cols = {tb: [r[1] for r in con.execute(f'PRAGMA table_info("{tb}")')] for tb in OLD_TABLES}
    con.close()
    return cols


def _sqlite_datetimes(rows: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """SQLite hands back DATETIME columns as text through plain SQL; parse them for comparing."""
    from datetime import datetime

    def conv(v: object) -> object:
        if isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] == " ":
            try:
                return datetime.fromisoformat(v)
            except ValueError:
                return v
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        return v

    return {k: [tuple(conv(v) for v in r) for r in rs] for k, rs in rows.items()}


def _check_fixture_content(store: Store) -> None:
    """What the fixture holds, through the store API."""
    p1 = store.patient("PAT1")
    assert p1.reviewed and p1.image_count == 3 and p1.patient_label.label == "malignant"
    images = store.images("PAT1")
    first = images[0]
    assert first.labels["import"].label == "benign"
    reader = first.labels["reader"]
    assert (reader.label, reader.birads, reader.note, reader.user) == ("malignant", "5", "spiculated", "dr_a")
    assert [(lab.source, lab.user) for lab in store.all_labels(image_id=first.id)] == [
        ("import", "importer"),
        ("reader", "dr_a"),
    ]
    assert images[1].labels["biopsy"].biopsy_confirmed and "reader" not in images[2].labels
    rois = store.rois(first.id)
    assert [r.box for r in rois] == [(12, 22, 210, 190)] and store.rois(images[1].id) == []
    latest = store.latest_predictions([first.id])
    assert latest[(first.id, "ensemble")].malignant_probability == pytest.approx(0.81)
    by_roi = store.latest_predictions([first.id], roi_id=rois[0].id)
    assert by_roi[(first.id, "ensemble")].probabilities == {"benign": 0.1, "malignant": 0.9}
    actions = [a.action for a in store.audit_log()]
    assert actions.count("set_label") == 11 and actions.count("update_roi") == 1 and "activate" in actions
    assert store.model_cards()["a" * 64]["name"] == "ens"


def test_pre_versioning_store_is_backed_up_then_migrated(tmp_path: Path) -> None:
    assert head() != BASELINE and known_revisions()[0] == BASELINE  # a later migration exists
    db = _fixture_file(tmp_path)
    columns = _baseline_columns(db)
    before = _sqlite_datetimes(_rows(db, columns))
    store = Store(db, user="admin")
    report = store.opened
    assert report.migrated and report.before.status == "unversioned" and report.backup is not None
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head()
    after = _sqlite_datetimes(_rows(db, columns))
    assert after["audit_log"][: len(before["audit_log"])] == before["audit_log"]  # every old audit row kept
    assert {k: v for k, v in after.items() if k != "audit_log"} == {k: v for k, v in before.items() if k != "audit_log"}
    migration = store.audit_log("store")[-1]
    assert (migration.action, migration.user, migration.old_value, migration.new_value) == (
        "migrate",
        "admin",
        "pre-versioning",
        head(),
    )
    _check_fixture_content(store)
    # reader labels now belong to their reader; a second reader's label is kept beside it
    first = store.images("PAT1")[0].id
    store.set_label("benign", image_id=first, source="reader", user="dr_c")
    assert sorted(lab.user for lab in store.all_labels(image_id=first) if lab.source == "reader") == ["dr_a", "dr_c"]
    store.close()

    # the backup is the store as it was, verified, and restorable
    backup = report.backup
    assert backup.parent == db.parent / "backups" and bk.verify(backup).revision is None
    restored = tmp_path / "restored.sqlite"
    done, replaced = store_admin.restore(backup, restored)
    assert replaced is None and done.revision is None
    assert _sqlite_datetimes(_rows(restored, columns))["labels"] == before["labels"]
    again = Store(restored)
    assert again.opened.migrated
    _check_fixture_content(again)
    again.close()


def test_baseline_store_on_postgresql_is_backed_up_then_migrated(pg_url: str, tmp_path: Path) -> None:
    db = _fixture_file(tmp_path)
    engine = make_engine(pg_url)
    restored, _ = bk.restore(db, engine, tmp_path / "keep")  # the fixture into PostgreSQL at the baseline
    engine.dispose()
    assert restored.revision == BASELINE
    before = _rows(pg_url, _baseline_columns(db))
    store = Store(pg_url, user="admin", backup_dir=tmp_path / "backups")
    assert store.opened.migrated and store.opened.before.revision == BASELINE
    after = _rows(pg_url, _baseline_columns(db))
    assert after["audit_log"][: len(before["audit_log"])] == before["audit_log"]
    assert {k: v for k, v in after.items() if k != "audit_log"} == {k: v for k, v in before.items() if k != "audit_log"}
    _check_fixture_content(store)
    # the guard of the migrated store refuses changes
    with store.engine.connect() as conn, pytest.raises(DatabaseError, match="append-only"):
        conn.execute(text("DELETE FROM audit_log"))
    store.close()
    backup = store.opened.backup
    assert backup is not None and bk.verify(backup).revision == BASELINE
    copy = Store(tmp_path / "from-backup.sqlite")
    copy.close()
    done, replaced = store_admin.restore(backup, tmp_path / "from-backup.sqlite")
    assert replaced is not None  # the file's previous (empty) store was kept
    reopened = Store(tmp_path / "from-backup.sqlite")
    assert reopened.opened.before.revision == BASELINE and reopened.opened.migrated
    _check_fixture_content(reopened)
    reopened.close()


def test_store_newer_than_this_busviewer_is_refused(store_location: str) -> None:
    store = Store(store_location)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(StoreTooNewError, match=r"newer busviewer \(schema revision 9999\).*Update busviewer"):
        Store(store_location)
    report = store_admin.check(store_location)
    assert not report.ok and report.state is not None and report.state.status == "newer"


def test_migrations_build_exactly_the_schema(store_location: str) -> None:
    engine = make_engine(store_location)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), t.Base.metadata) == []
        conn.execute(t.AuditEntry.__table__.insert().values(at=t.utcnow(), user="u", action="a", entity="e"))
        with pytest.raises(DatabaseError, match="append-only"):
            conn.execute(text("UPDATE audit_log SET action = 'x'"))
    engine.dispose()
    fresh = Store(store_location)  # an up-to-date store opens without a backup
    assert fresh.opened.before.status == "current" and fresh.opened.backup is None
    assert store_admin.check(store_location).ok
    fresh.close()


def test_backup_restore_round_trip(store: Store, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from store_helpers import new_image as _new

    _, iid = store.add_image(_new(1, label="benign"))
    store.set_label("malignant", image_id=iid, source="reader", user="dr_a")
    roi = store.add_roi(iid, (1, 1, 40, 40), user="dr_a")
    location = store.engine.url.render_as_string(hide_password=False)
    report = store_admin.backup(location, tmp_path / "b.sqlite")
    assert report.counts["audit_log"] == 4 and bk.verify(report.path, report.counts).path == report.path
    target = tmp_path / "restored.sqlite"
    store_admin.restore(report.path, target, user="admin")
    restored = Store(target)

    def labels(s: Store) -> list[tuple]:
        return [(x.label, x.source, x.user, x.version) for x in s.all_labels(image_id=iid)]

    assert labels(restored) == labels(store) and len(labels(store)) == 2
    assert restored.rois(iid)[0].box == roi.box and restored.rois(iid)[0].version == roi.version
    assert restored.audit_log("store")[-1].action == "restore"
    restored.close()
    if store.engine.dialect.name == "postgresql":  # a server restore needs an empty database
        with pytest.raises(StoreError, match="empty database"):
            store_admin.restore(report.path, location)
        server = request.getfixturevalue("pg_server")
        url = server.url(server.create_database())
        store_admin.restore(report.path, url)
        back = Store(url)
        assert back.roi(roi.id).version == roi.version and back.image(iid).labels["import"].label == "benign"
        assert back.add_roi(iid, (2, 2, 30, 30)).id == roi.id + 1  # id sequences continue after the rows
        back.close()
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(report.path.read_bytes()[:5000])
    with pytest.raises(StoreError):
        bk.verify(broken)
