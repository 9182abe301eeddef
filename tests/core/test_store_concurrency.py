"""Two workstations label and edit the same patient 500 times each on one PostgreSQL store.

Afterwards: no acknowledged write is missing, every write has its audit row (with its
reader), both readers' labels are kept, and stale edits were refused - each refused edit
was applied again on the fresh version, so none was lost and none overwrote an edit it
had not seen (every accepted move is based on the version of the move before it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from busviewer.core.store import Store

N = 500
READERS = ("dr_a", "dr_b")


def _seed(url: str) -> int:
    from store_helpers import new_image as _new

    store = Store(url, user="importer")
    ids = [store.add_image(_new(i, patient="SHARED"))[1] for i in range(5)]
    with store.engine.begin() as conn:  # a wide image, so every test box fits unclamped
        conn.exec_driver_sql("UPDATE images SET columns = 10000, rows = 100")
    roi = store.add_roi(ids[0], (0, 0, 20, 20))
    store.close()
    return roi.id


def test_two_workstations_label_and_edit_the_same_patient(pg_url: str, tmp_path: Path) -> None:
    roi_id = _seed(pg_url)
    start = tmp_path / "start"
    worker = Path(__file__).with_name("store_worker.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), pg_url, r, str(N), str(roi_id), str(start), str(tmp_path / f"{r}.json")],
            env=env,
        )
        for r in READERS
    ]
    start.touch()
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    done = {r: json.loads((tmp_path / f"{r}.json").read_text()) for r in READERS}

    store = Store(pg_url)
    audit = store.audit_log()
    # labels: every acknowledged label has its audit row, in order, and both readers' labels are kept
    for reader in READERS:
        acked = done[reader]["labels"]
        assert len(acked) == N
        rows = [
            (a.entity_id, a.new_value)
            for a in audit
            if a.action == "set_label" and a.user == reader and a.field == "label[reader]"
        ]
        assert rows == [(image, label) for image, label in acked]
        last = {image: label for image, label in acked}
        for image, label in last.items():
            mine = [x for x in store.all_labels(image_id=image) if x.source == "reader" and x.user == reader]
            assert [x.label for x in mine] == [label]
    for image in {i for i, _ in done["dr_a"]["labels"]}:
        assert sorted(x.user for x in store.all_labels(image_id=image)) == list(READERS)

    # ROI edits: every acknowledged move is in the audit log as that reader's, with its version
    moves = sorted((m for r in READERS for m in done[r]["moves"]), key=lambda m: m["version"])
    assert len(moves) == 2 * N  # every intended move landed (refused ones were applied again)
    audit_moves = {a.id: a for a in audit if a.action == "update_roi" and a.entity_id == roi_id}
    assert len(audit_moves) == 2 * N
    for reader in READERS:
        for m in done[reader]["moves"]:
            entry = audit_moves[m["version"]]
            assert (entry.user, json.loads(entry.new_value)) == (reader, m["box"])
    # ... each based on the version of the move before it: no edit overwrote one it had not seen
    first_version = min(a.id for a in audit if a.action == "add_roi" and a.entity_id == roi_id)
    assert [m["base"] for m in moves] == [first_version] + [m["version"] for m in moves[:-1]]
    assert store.roi(roi_id).box == tuple(moves[-1]["box"]) and store.roi(roi_id).version == moves[-1]["version"]

    # stale edits were refused with a clear message; none was saved (2 * N audit rows above)
    refused = [x for r in READERS for x in done[r]["refused"]]
    doubles = [x for x in refused if x.get("double")]
    assert len(doubles) == sum(done[r]["double"] for r in READERS) == 2 * len(range(0, N, 25))
    assert all("Reload it and apply your change again" in x["message"] for x in refused)
    print(f"\n{len(refused)} stale edits refused ({len(refused) - len(doubles)} from real races)")
    store.close()
