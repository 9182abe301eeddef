"""kill -9 during label writes (issue 15): every acknowledged label write is in the store
with its audit row, and the database stays intact."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from busviewer.core.importer import import_paths
from busviewer.core.store import Store

WRITER = textwrap.dedent("""
    import sys
    from busviewer.core.store import Store
    store = Store(sys.argv[1])
    ids = [int(v) for v in sys.argv[2].split(",")]
    print("ready", flush=True)
    i = 0
    while True:
        image_id = ids[i % len(ids)]
        label = ("benign", "malignant")[i % 2]
        store.set_label(label, image_id=image_id, note=f"{sys.argv[3]}w{i}", birads="3")
        print(f"ack {i} {image_id} {label}", flush=True)
        i += 1
""")


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, list[int]]:
    for p in range(3):
        folder = tmp_path / "in" / f"P{p}"
        folder.mkdir(parents=True)
        Image.fromarray(np.full((20, 20, 3), 40 * p + 10, np.uint8)).save(folder / "a.png")
    db = tmp_path / "store.sqlite"
    store = Store(db)
    import_paths(store, [tmp_path / "in"])
    ids = [r.id for r in store.images()]
    store.close()
    return db, ids


def test_acknowledged_label_writes_survive_kill_9(images) -> None:
    db, ids = images
    rng = random.Random(15)
    for round_ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), ",".join(map(str, ids)), f"r{round_}"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        acks: list[tuple[int, int, str]] = []
        stop_after = rng.randint(3, 40)
        while len(acks) < stop_after:
            line = proc.stdout.readline()
            assert line, "writer ended early"
            _, i, image_id, label = line.split()
            acks.append((int(i), int(image_id), label))
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()  # acknowledgements printed before the kill landed
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        for line in rest.splitlines():
            _, i, image_id, label = line.split()
            acks.append((int(i), int(image_id), label))

        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        con.close()
        store = Store(db)
        try:
            notes = {a.new_value for a in store.audit_log("image") if a.field == "note[reader]"}
            assert {f"r{round_}w{i}" for i, _, _ in acks} <= notes, (
                f"round {round_}: an acknowledged write lost its audit row"
            )
            last = acks[-1][0]
            for image_id in ids:
                mine = [a for a in acks if a[1] == image_id]
                if not mine:
                    continue
                stored = store.image(image_id).labels["reader"]
                i, _, label = mine[-1]
                # The acknowledged write, or the one in flight when the kill came (committed, unacknowledged).
                in_flight = last + 1
                assert (stored.note, stored.label) == (f"r{round_}w{i}", label) or (
                    stored.note == f"r{round_}w{in_flight}" and ids[in_flight % len(ids)] == image_id
                ), (round_, stored, mine[-1])
        finally:
            store.close()
