"""Adding imported images inside one store transaction (helpers of :class:`Store`).

:func:`add_image_in` adds one image with the ORM (the general case: duplicates,
relocations). :func:`add_images_in` adds many: images whose content hash and SOP UID are
new to the store and to the batch (the usual import) go in with a few multi-row INSERTs
per table instead of a dozen ORM round trips per image; the others go through
:func:`add_image_in`. Both write exactly the rows and audit entries of a one-by-one import
(image, its patient/study/series when new, the ``import`` audit row, the import label with
its audit row, and the ROIs with theirs). The caller's transaction makes a batch all or
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, insert, or_, select
from sqlalchemy.orm import Session

from busviewer.core.store import schema as t
from busviewer.core.store.labels import audit, bump, flush_edit, set_label
from busviewer.core.store.records import LABEL_SOURCES, LABELS, NewImage

#: (frame, x0, y0, x1, y1) of a ROI given with an imported image.
RoiSpec = tuple[int, int, int, int, int]


def add_image_in(s: Session, new: NewImage, user: str) -> tuple[str, int]:
    """See :meth:`Store.add_image`."""
    same = s.scalars(select(t.Image).where(t.Image.content_hash == new.content_hash)).all()
    for img in same:
        if img.source_path == str(new.source_path) or (new.sop_uid is not None and img.sop_uid == new.sop_uid):
            return "exists", img.id
    for img in same:
        if not Path(img.source_path).exists():
            audit(s, user, "relocate", "image", img.id, "source_path", img.source_path, str(new.source_path))
            img.source_path = str(new.source_path)
            return "relocated", img.id
    if new.sop_uid is not None:
        clash = s.scalar(select(t.Image.id).where(t.Image.sop_uid == new.sop_uid))
        if clash is not None:  # same SOP UID, different bytes (re-encoded copy)
            return "exists", clash
    patient = _get_or_add(s, t.Patient, "patient_key", new.patient_key, name=new.patient_name)
    study = _get_or_add(
        s,
        t.Study,
        "study_uid",
        new.study_uid,
        patient_id=patient.id,
        study_date=new.study_date,
        description=new.study_description,
    )
    series = _get_or_add(
        s,
        t.Series,
        "series_uid",
        new.series_uid,
        study_id=study.id,
        description=new.series_description,
        modality=new.modality,
    )
    image = t.Image(series_id=series.id, duplicate_of=same[0].id if same else None, **_image_values(new))
    s.add(image)
    s.flush()
    audit(s, user, "import", "image", image.id, "source_path", None, str(new.source_path))
    if new.label is not None:
        set_label(s, user, image_id=image.id, patient_id=None, label=new.label, source=new.label_source)
    return "added", image.id


_Row = TypeVar("_Row", t.Patient, t.Study, t.Series)


def _get_or_add(s: Session, model: type[_Row], key: str, value: str, **fields: Any) -> _Row:
    """The row of ``model`` whose unique ``key`` is ``value``, added (with ``fields``) if missing."""
    row = s.scalar(select(model).where(getattr(model, key) == value))
    if row is None:
        row = model(**{key: value}, **fields)
        s.add(row)
        s.flush()
    return row


def add_roi_in(s: Session, image_id: int, box: tuple[int, int, int, int], frame: int, user: str) -> t.Roi:
    """See :meth:`Store.add_roi`; raises ValueError for a box empty inside the image."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    img = s.get(t.Image, image_id)
    if img is None:
        raise KeyError(f"no image {image_id} in the store")
    x0, x1 = max(0, x0), min(img.columns, x1)
    y0, y1 = max(0, y0), min(img.rows, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"ROI {box} is empty inside the {img.columns}x{img.rows} image")
    roi = t.Roi(image_id=image_id, frame=frame, x0=x0, y0=y0, x1=x1, y1=y1, user=user)
    s.add(roi)
    s.flush()
    entry = audit(s, roi.user, "add_roi", "roi", roi.id, "box", None, json.dumps([x0, y0, x1, y1]))
    bump(s, roi, [entry], f"ROI {roi.id}")
    flush_edit(s, f"ROI {roi.id}")
    return roi


def _image_values(new: NewImage) -> dict:
    return dict(
        source_path=str(new.source_path),
        content_hash=new.content_hash,
        sop_uid=new.sop_uid,
        file_size=new.file_size,
        frame_count=new.frame_count,
        rows=new.rows,
        columns=new.columns,
        is_color=new.is_color,
        photometric=new.photometric,
        frame_time_ms=new.frame_time_ms,
        spacing_row_mm=new.pixel_spacing_mm[0] if new.pixel_spacing_mm else None,
        spacing_col_mm=new.pixel_spacing_mm[1] if new.pixel_spacing_mm else None,
        regions=list(new.regions) or None,
    )


def _ids(s: Session, column_key: Any, column_id: Any, keys: set[str]) -> dict[str, int]:
    if not keys:
        return {}
    return {k: i for k, i in s.execute(select(column_key, column_id).where(column_key.in_(keys)))}


def _insert_returning(s: Session, table: Any, rows: list[dict]) -> list[int]:
    if not rows:
        return []
    stmt = insert(table).returning(table.id, sort_by_parameter_order=True)
    return [r[0] for r in s.execute(stmt, rows)]


def _fresh(s: Session, news: Sequence[NewImage]) -> list[bool]:
    """Per image: its content hash and SOP UID are new to the store and to the batch."""
    hashes = {n.content_hash for n in news}
    sops = {n.sop_uid for n in news if n.sop_uid is not None}
    cond: ColumnElement[bool] = t.Image.content_hash.in_(hashes)
    if sops:
        cond = or_(cond, t.Image.sop_uid.in_(sops))
    known = s.execute(select(t.Image.content_hash, t.Image.sop_uid).where(cond)).all()
    seen_hash = {h for h, _ in known}
    seen_sop = {u for _, u in known if u is not None}
    out = []
    for n in news:
        ok = n.content_hash not in seen_hash and (n.sop_uid is None or n.sop_uid not in seen_sop)
        out.append(ok)
        seen_hash.add(n.content_hash)
        if n.sop_uid is not None:
            seen_sop.add(n.sop_uid)
    return out


def _add_fresh(s: Session, bulk: Sequence[NewImage], user: str) -> list[int]:
    """Insert images new to the store (with their patients, studies, series, import audit
    rows and labels) in a few multi-row statements; returns their ids in order."""
    if not bulk:
        return []
    patients = _ids(s, t.Patient.patient_key, t.Patient.id, {n.patient_key for n in bulk})
    todo = {n.patient_key: n for n in bulk if n.patient_key not in patients}
    patients.update(
        zip(
            todo, _insert_returning(s, t.Patient, [{"patient_key": k, "name": n.patient_name} for k, n in todo.items()])
        )
    )
    studies = _ids(s, t.Study.study_uid, t.Study.id, {n.study_uid for n in bulk})
    todo = {n.study_uid: n for n in bulk if n.study_uid not in studies}
    studies.update(
        zip(
            todo,
            _insert_returning(
                s,
                t.Study,
                [
                    {
                        "patient_id": patients[n.patient_key],
                        "study_uid": u,
                        "study_date": n.study_date,
                        "description": n.study_description,
                    }
                    for u, n in todo.items()
                ],
            ),
        )
    )
    series = _ids(s, t.Series.series_uid, t.Series.id, {n.series_uid for n in bulk})
    todo = {n.series_uid: n for n in bulk if n.series_uid not in series}
    series.update(
        zip(
            todo,
            _insert_returning(
                s,
                t.Series,
                [
                    {
                        "study_id": studies[n.study_uid],
                        "series_uid": u,
                        "description": n.series_description,
                        "modality": n.modality,
                    }
                    for u, n in todo.items()
                ],
            ),
        )
    )
    image_ids = _insert_returning(
        s, t.Image, [{"series_id": series[n.series_uid], "duplicate_of": None, **_image_values(n)} for n in bulk]
    )
    # Audit rows in the order a one-by-one import writes them: import, then the label's.
    entries: list[dict] = []
    labelled: list[tuple[int, NewImage, int]] = []  # (image id, image, index of its label's audit row)
    for image_id, n in zip(image_ids, bulk):
        entries.append(
            dict(
                user=user,
                action="import",
                entity="image",
                entity_id=image_id,
                field="source_path",
                old_value=None,
                new_value=str(n.source_path),
            )
        )
        if n.label is not None:
            labelled.append((image_id, n, len(entries)))
            entries.append(
                dict(
                    user=user,
                    action="set_label",
                    entity="image",
                    entity_id=image_id,
                    field=f"label[{n.label_source}]",
                    old_value=None,
                    new_value=n.label,
                )
            )
    entry_ids = _insert_returning(s, t.AuditEntry, entries)
    if labelled:
        s.execute(
            insert(t.Label),
            [
                dict(
                    image_id=image_id,
                    patient_id=None,
                    source=n.label_source,
                    user=user,
                    reader=user if n.label_source == "reader" else "",
                    version=entry_ids[k],
                    label=n.label,
                    birads=None,
                    biopsy_confirmed=False,
                    note=None,
                )
                for image_id, n, k in labelled
            ],
        )
    return image_ids


def add_images_in(s: Session, items: Sequence[tuple[NewImage, Sequence[RoiSpec]]], user: str) -> list[tuple[str, int]]:
    """See :meth:`Store.add_images`. Runs of images new to the store go in together, the
    others one by one in their place, so ids follow the order of ``items``."""
    news = [n for n, _ in items]
    for n in news:
        if n.label is not None and (n.label not in LABELS or n.label_source not in LABEL_SOURCES):
            raise ValueError(f"{n.source_path}: label {n.label!r} from {n.label_source!r} is not valid")
    fresh = _fresh(s, news) if news else []
    out: list[tuple[str, int]] = []
    run: list[NewImage] = []
    for n, f in zip(news, fresh):
        if f:
            run.append(n)
            continue
        out += [("added", i) for i in _add_fresh(s, run, user)]
        run = []
        out.append(add_image_in(s, n, user))
    out += [("added", i) for i in _add_fresh(s, run, user)]
    for (_, rois), (status, image_id) in zip(items, out):
        if status == "added":
            for frame, x0, y0, x1, y1 in rois:
                add_roi_in(s, image_id, (x0, y0, x1, y1), frame, user)
    return out
