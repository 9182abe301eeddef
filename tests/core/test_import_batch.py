"""Batched import writes (issue 11): the same rows and audit entries as one image per
transaction; a bad image in a batch costs only itself; a cancelled or interrupted import
leaves only whole images and keeps the batches written before."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from busviewer.core import importer
from busviewer.core.importer import import_paths
from busviewer.core.store import Store


def _png(path: Path, seed: int, size: tuple[int, int] = (40, 50)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, size, dtype=np.uint8)).save(path)
    return path


def _manifest(root: Path, n: int, bad_roi: int | None = None, broken: int | None = None) -> Path:
    """``n`` images in 3 patients with labels and a ROI each; row ``bad_roi`` has a ROI outside
    its image, file ``broken`` is a truncated PNG; image 7 duplicates image 2's bytes."""
    lines = ["image,label,patient_id,rois"]
    for i in range(n):
        path = _png(root / "img" / f"{i}.png", i)
        if i == 7:
            path.write_bytes((root / "img" / "2.png").read_bytes())
        if i == broken:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        box = [0, 500, 500, 600, 600] if i == bad_roi else [0, 2, 3, 30, 25]
        label = ("benign", "malignant", "normal")[i % 3]
        lines.append(f'img/{i}.png,{label},P{i % 3},"{json.dumps([box])}"')
    (root / "m.csv").write_text("\n".join(lines) + "\n")
    return root / "m.csv"


def _whole(store: Store) -> None:
    """Every image has its import label and ROI and their audit rows; every patient an image."""
    images = store.images()
    audit = store.audit_log()
    imported = {e.entity_id for e in audit if e.action == "import"}
    label_entry = {e.entity_id: e.id for e in audit if e.action == "set_label"}
    roi_entry = {e.entity_id: e.id for e in audit if e.action == "add_roi"}
    for img in images:
        assert img.label is not None and img.label.source == "import"
        assert img.id in imported and img.label.version == label_entry[img.id]  # version: its audit row
        (roi,) = store.rois(img.id)
        assert roi.version == roi_entry[roi.id]
    assert sum(1 for e in audit if e.action == "add_roi") == len(images)
    assert all(p.image_count > 0 for p in store.patients())
    assert store.counts()["labels"] == len(images)


def _snapshot(store: Store) -> tuple:
    images = [
        (
            i.patient_key,
            i.study_uid,
            i.series_uid,
            i.source_path.name,
            i.content_hash,
            i.rows,
            i.columns,
            i.duplicate_of is not None,
            i.label.label if i.label else None,
            [r.box for r in store.rois(i.id)],
        )
        for i in store.images()
    ]
    audit = [
        (
            e.action,
            e.entity,
            e.entity_id if e.entity == "image" else None,
            e.field,
            e.old_value,
            e.new_value if e.field != "source_path" else Path(e.new_value).name,
        )
        for e in store.audit_log()
    ]
    return store.counts(), sorted(images, key=lambda r: r[3]), sorted(audit)


def test_batched_import_writes_the_rows_of_a_one_by_one_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _manifest(tmp_path / "data", 12, broken=4)
    batched = Store(tmp_path / "batched.sqlite")
    report = import_paths(batched, [manifest])
    monkeypatch.setattr(importer, "BATCH_MAX", 1)  # one transaction per image, as before the batching
    single = Store(tmp_path / "single.sqlite")
    report1 = import_paths(single, [manifest])
    assert (report.added, [p.path.name for p in report.problems]) == (11, ["4.png"])
    assert (report1.added, report1.problems[0].path.name) == (11, "4.png")
    assert report.image_ids == report1.image_ids and -1 not in report.image_ids
    assert _snapshot(batched) == _snapshot(single)
    _whole(batched)
    again = import_paths(batched, [manifest])
    assert (again.added, again.existing) == (0, 11) and again.image_ids == report.image_ids
    batched.close()
    single.close()


def test_a_bad_image_in_a_batch_costs_only_itself(store: Store, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "data", 9, bad_roi=5)
    report = import_paths(store, [manifest])
    assert report.added == 8
    assert [p.path.name for p in report.problems] == ["5.png"] and "ROI" in report.problems[0].reason
    assert "5.png" not in {i.source_path.name for i in store.images()}
    _whole(store)  # the other eight of the batch are stored, whole


def test_cancel_in_a_batch_writes_the_images_decoded_before_it_whole(store: Store, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "data", 9)
    cancel = threading.Event()

    def progress(ev) -> None:  # type: ignore[no-untyped-def]
        if ev.done == 5:
            cancel.set()

    report = import_paths(store, [manifest], progress=progress, cancel=cancel)
    assert report.cancelled and report.added == 5 and store.counts()["images"] == 5
    _whole(store)


def test_an_interrupted_import_keeps_the_written_batches_and_no_half_rows(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _manifest(tmp_path / "data", 9)
    monkeypatch.setattr(importer, "BATCH_MAX", 2)

    def progress(ev) -> None:  # type: ignore[no-untyped-def]
        if ev.done == 5:
            raise KeyboardInterrupt  # the user kills the import: image 4 decoded, not written

    with pytest.raises(KeyboardInterrupt):
        import_paths(store, [manifest], progress=progress)
    assert store.counts()["images"] == 4  # two batches of two: committed, kept
    _whole(store)
    rest = import_paths(store, [manifest])
    assert (rest.added, rest.existing) == (5, 4)
    _whole(store)
