"""The study store facade: every read returns plain records, every write is one transaction."""

from __future__ import annotations

import getpass
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from busviewer.core import paths
from busviewer.core.store import backup as _backup
from busviewer.core.store import bulk as _bulk
from busviewer.core.store import migrate as _migrate
from busviewer.core.store import schema as t
from busviewer.core.store.actions import AuditAction
from busviewer.core.store.bulk import RoiSpec
from busviewer.core.store.engine import default_backup_dir, display_url, make_engine, sqlite_file, store_name, store_url
from busviewer.core.store.errors import StaleEditError, StoreError, StoreTooNewError
from busviewer.core.store.labels import audit as _audit
from busviewer.core.store.labels import best as _best
from busviewer.core.store.labels import bump, check_version, flush_edit, grouped
from busviewer.core.store.labels import by_source as _by_source
from busviewer.core.store.labels import clear_label as _clear_label
from busviewer.core.store.labels import label_record as _label_record
from busviewer.core.store.labels import set_label as _set_label
from busviewer.core.store.records import (
    LABEL_SOURCES,
    SOURCE_PRIORITY,
    AuditRecord,
    ImageRecord,
    LabelRecord,
    NewImage,
    PatientSummary,
    PredictionRecord,
    RoiRecord,
    StudyRecord,
    TrainingItem,
)

AddStatus = Literal["added", "exists", "relocated"]
_IN_CHUNK = 900


__all__ = ["Store", "StoreError", "StoreTooNewError", "StaleEditError", "current_user", "store_url"]


def current_user() -> str:
    """The reader's identity on every write: ``BUSVIEWER_USER``, else the login name."""
    try:
        return os.environ.get("BUSVIEWER_USER") or getpass.getuser()
    except Exception:  # no login name (containers)
        return "unknown"


class Store:
    """Patients, studies, series, images, labels, ROIs, predictions and the audit log.

    ``location``: a SQLite file, or a SQLAlchemy URL (``postgresql://user@host/db`` for a
    department store). ``user`` is recorded on every write (default :func:`current_user`).
    Opening creates the schema, or migrates an older one after a verified backup into
    ``backup_dir`` (default: ``backups/`` next to a SQLite file, ``data_dir()/backups``
    for a server), and refuses a store written by a newer busviewer (``migrate.py``).
    """

    def __init__(
        self, location: str | Path | None = None, *, user: str | None = None, backup_dir: Path | None = None
    ) -> None:
        if location is None:
            location = paths.store_location()
        url = store_url(location)
        file = sqlite_file(url)
        self.user = user or current_user()
        self.engine: Engine = make_engine(url)
        self.url = display_url(self.engine)
        self.backup_dir = backup_dir or default_backup_dir(url)
        try:
            self.opened = _migrate.prepare(self.engine, self.url, self._backup_before_migration, self.user)
        except DatabaseError as exc:
            self.engine.dispose()
            raise StoreError(f"{self.url if file is None else location}: cannot open the store ({exc.orig})") from exc
        except StoreError as exc:
            self.engine.dispose()
            if isinstance(exc, StoreTooNewError):  # its message names the store already
                raise
            raise type(exc)(f"{self.url if file is None else location}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _backup_before_migration(self, conn: Connection, state: _migrate.SchemaState) -> Path:
        dest = _backup.backup_path(self.backup_dir, store_name(self.url), state.revision)
        return _backup.backup_connection(conn, dest, state.revision).path

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except OperationalError as exc:
                session.rollback()
                raise StoreError(f"{self.url}: write failed ({exc.orig}); nothing was saved") from exc
            except StaleDataError as exc:  # an UPDATE found another version than it loaded
                session.rollback()
                raise StaleEditError(
                    f"{self.url}: the object was changed on another workstation while "
                    "your change was being saved; nothing was saved. Reload it and try again."
                ) from exc
            except BaseException:
                session.rollback()
                raise

    # ------------------------------------------------------------------ import
    def find_image(self, content_hash: str, source_path: Path) -> int | None:
        with self._sessions() as s:
            return s.scalar(
                select(t.Image.id).where(t.Image.content_hash == content_hash, t.Image.source_path == str(source_path))
            )

    def find_images(self, keys: Iterable[tuple[str, Path]]) -> dict[tuple[str, Path], tuple[int, str]]:
        """:meth:`find_image` for many ``(content_hash, source_path)`` at once: the found
        ones, each ``(image id, patient key)``."""
        wanted = {(h, str(p)): (h, p) for h, p in keys}
        if not wanted:
            return {}
        with self._sessions() as s:
            rows = s.execute(
                select(t.Image.id, t.Image.content_hash, t.Image.source_path, t.Patient.patient_key)
                .join(t.Series, t.Image.series_id == t.Series.id)
                .join(t.Study, t.Series.study_id == t.Study.id)
                .join(t.Patient, t.Study.patient_id == t.Patient.id)
                .where(t.Image.content_hash.in_({h for h, _ in wanted}))
            ).all()
        return {wanted[(h, path)]: (image_id, key) for image_id, h, path, key in rows if (h, path) in wanted}

    def add_image(self, new: NewImage, user: str | None = None) -> tuple[AddStatus, int]:
        """Add one imported image with its patient/study/series (and label) atomically.

        Returns ``("exists", id)`` when the same content is already stored from the same
        path (or with the same SOP Instance UID), ``("relocated", id)`` when the same
        content was stored from a path that no longer exists (the path is updated), else
        ``("added", id)``.
        """
        with self._tx() as s:
            return _bulk.add_image_in(s, new, user or self.user)  # type: ignore[return-value]

    def add_images(
        self, items: Sequence[tuple[NewImage, Sequence[RoiSpec]]], user: str | None = None
    ) -> list[tuple[AddStatus, int]]:
        """Add many imported images, each with its ROIs ``(frame, x0, y0, x1, y1)``, in ONE
        transaction: all of them or, on any error (a ROI empty inside its image raises
        ValueError), none. Per image the result of :meth:`add_image`; the rows written are
        those of adding them one by one, with far fewer round trips."""
        with self._tx() as s:
            return _bulk.add_images_in(s, items, user or self.user)  # type: ignore[return-value]

    # ----------------------------------------------------------------- queries
    def patients(self, search: str | None = None, patient_key: str | None = None) -> list[PatientSummary]:
        """All patients, those matching ``search`` (case-insensitive key/name substring),
        or the one with ``patient_key``."""
        with self._sessions() as s:
            q = select(t.Patient).order_by(t.Patient.patient_key)
            if search:
                like = f"%{search}%"
                q = q.where(t.Patient.patient_key.ilike(like) | t.Patient.name.ilike(like))
            if patient_key is not None:
                q = q.where(t.Patient.patient_key == patient_key)
            patients = s.scalars(q).all()
            ids = [p.id for p in patients]
            images_of = (
                select(t.Image.id, t.Study.patient_id)
                .join(t.Series, t.Image.series_id == t.Series.id)
                .join(t.Study, t.Series.study_id == t.Study.id)
            )
            if patient_key is not None:
                images_of = images_of.where(t.Study.patient_id.in_(ids))
            rows = s.execute(images_of).all()
            counts = Counter(pid for _, pid in rows)
            image_labels = _best_image_labels(
                s, self.user, [iid for iid, _ in rows] if patient_key is not None else None
            )
            per_patient: dict[int, Counter] = {}
            for image_id, patient_id in rows:
                if image_id in image_labels:
                    per_patient.setdefault(patient_id, Counter())[image_labels[image_id].label] += 1
            patient_labels = _best_patient_labels(s, self.user)
            return [
                PatientSummary(
                    id=p.id,
                    patient_key=p.patient_key,
                    name=p.name,
                    image_count=counts.get(p.id, 0),
                    label_counts=dict(per_patient.get(p.id, {})),
                    reviewed=p.reviewed,
                    patient_label=patient_labels.get(p.id),
                )
                for p in patients
            ]

    def patient(self, patient_key: str) -> PatientSummary:
        found = self.patients(patient_key=patient_key)
        if not found:
            raise KeyError(f"no patient {patient_key!r} in the store")
        return found[0]

    def studies(self, patient_key: str) -> list[StudyRecord]:
        with self._sessions() as s:
            patient = s.scalar(select(t.Patient).where(t.Patient.patient_key == patient_key))
            if patient is None:
                raise KeyError(f"no patient {patient_key!r} in the store")
            return [
                StudyRecord(
                    study_uid=st.study_uid,
                    study_date=st.study_date,
                    description=st.description,
                    series=tuple((se.series_uid, se.modality, se.description) for se in st.series),
                )
                for st in patient.studies
            ]

    def images(self, patient_key: str | None = None, image_ids: Iterable[int] | None = None) -> list[ImageRecord]:
        """Images of one patient, of given ids, or all images, in import order."""
        with self._sessions() as s:
            q = (
                select(t.Image, t.Series.series_uid, t.Study.study_uid, t.Patient.patient_key)
                .join(t.Series, t.Image.series_id == t.Series.id)
                .join(t.Study, t.Series.study_id == t.Study.id)
                .join(t.Patient, t.Study.patient_id == t.Patient.id)
                .order_by(t.Image.id)
            )
            if patient_key is not None:
                q = q.where(t.Patient.patient_key == patient_key)
            if image_ids is not None:
                q = q.where(t.Image.id.in_(list(image_ids)))
            rows = s.execute(q).all()
            labels = _image_labels(s, [r[0].id for r in rows], self.user)
            return [_image_record(img, se, st, pk, labels.get(img.id, {})) for img, se, st, pk in rows]

    def image(self, image_id: int) -> ImageRecord:
        found = self.images(image_ids=[image_id])
        if not found:
            raise KeyError(f"no image {image_id} in the store")
        return found[0]

    def counts(self) -> dict[str, int]:
        with self._sessions() as s:
            return {
                "patients": s.scalar(select(func.count(t.Patient.id))) or 0,
                "studies": s.scalar(select(func.count(t.Study.id))) or 0,
                "series": s.scalar(select(func.count(t.Series.id))) or 0,
                "images": s.scalar(select(func.count(t.Image.id))) or 0,
                "labels": s.scalar(select(func.count(t.Label.id))) or 0,
            }

    # ------------------------------------------------------------------ labels
    def set_label(
        self,
        label: str,
        *,
        image_id: int | None = None,
        patient_key: str | None = None,
        source: str = "reader",
        birads: str | None = None,
        biopsy_confirmed: bool = False,
        note: str | None = None,
        user: str | None = None,
        expected_version: int | None = None,
    ) -> None:
        """Set (or change) the label of an image or a patient; the change is audited.

        Reader labels are kept per reader (``user``). With ``expected_version`` (the
        :class:`LabelRecord` version the edit is based on; 0 = "there was no label"), a
        label changed since is not overwritten: :class:`StaleEditError`.
        """
        if (image_id is None) == (patient_key is None):
            raise ValueError("give exactly one of image_id or patient_key")
        with self._tx() as s:
            patient_id = None
            if patient_key is not None:
                patient_id = _patient_id(s, patient_key)
            elif s.get(t.Image, image_id) is None:
                raise KeyError(f"no image {image_id} in the store")
            _set_label(
                s,
                user or self.user,
                image_id=image_id,
                patient_id=patient_id,
                label=label,
                source=source,
                birads=birads,
                biopsy_confirmed=biopsy_confirmed,
                note=note,
                expected_version=expected_version,
            )

    def clear_label(
        self,
        *,
        image_id: int | None = None,
        patient_key: str | None = None,
        source: str = "reader",
        user: str | None = None,
        expected_version: int | None = None,
    ) -> None:
        """Remove a label (a reader's own, for source 'reader'); audited; see :meth:`set_label`."""
        with self._tx() as s:
            patient_id = _patient_id(s, patient_key) if patient_key is not None else None
            _clear_label(
                s,
                user or self.user,
                image_id=image_id,
                patient_id=patient_id,
                source=source,
                expected_version=expected_version,
            )

    def patient_label(self, patient_key: str) -> dict[str, LabelRecord]:
        with self._sessions() as s:
            pid = _patient_id(s, patient_key)
            return _by_source(s.scalars(select(t.Label).where(t.Label.patient_id == pid)), self.user)

    def all_labels(self, *, image_id: int | None = None, patient_key: str | None = None) -> list[LabelRecord]:
        """Every label of an image or a patient: each source's, and every reader's."""
        with self._sessions() as s:
            if patient_key is not None:
                q = select(t.Label).where(t.Label.patient_id == _patient_id(s, patient_key))
            else:
                q = select(t.Label).where(t.Label.image_id == image_id)
            return [_label_record(r) for r in s.scalars(q.order_by(t.Label.id))]

    def set_reviewed(self, patient_key: str, reviewed: bool = True, user: str | None = None) -> None:
        with self._tx() as s:
            p = s.get(t.Patient, _patient_id(s, patient_key))
            assert p is not None  # _patient_id found it in this transaction
            if p.reviewed != reviewed:
                _audit(s, user or self.user, "review", "patient", p.id, "reviewed", str(p.reviewed), str(reviewed))
                p.reviewed = reviewed
                p.reviewed_at = t.utcnow() if reviewed else None

    # -------------------------------------------------------------------- ROIs
    def add_roi(
        self, image_id: int, box: tuple[int, int, int, int], frame: int = 0, user: str | None = None
    ) -> RoiRecord:
        with self._tx() as s:
            return _roi_record(_bulk.add_roi_in(s, image_id, box, frame, user or self.user))

    def update_roi(
        self, roi_id: int, box: tuple[int, int, int, int], user: str | None = None, expected_version: int | None = None
    ) -> RoiRecord:
        """Move an ROI; with ``expected_version`` (its :class:`RoiRecord` version) an ROI
        changed since by someone else is not overwritten (:class:`StaleEditError`)."""
        with self._tx() as s:
            roi = s.get(t.Roi, roi_id)
            if roi is None or roi.deleted:
                raise KeyError(f"no ROI {roi_id}")
            check_version(s, roi, expected_version, f"ROI {roi_id}")
            img = s.get(t.Image, roi.image_id)
            if img is None:
                raise KeyError(f"no image {roi.image_id} for ROI {roi_id}")
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            x0, x1 = sorted((max(0, x0), min(img.columns, x1)))
            y0, y1 = sorted((max(0, y0), min(img.rows, y1)))
            old = json.dumps([roi.x0, roi.y0, roi.x1, roi.y1])
            roi.x0, roi.y0, roi.x1, roi.y1 = x0, y0, x1, y1
            entry = _audit(s, user or self.user, "update_roi", "roi", roi.id, "box", old, json.dumps([x0, y0, x1, y1]))
            bump(s, roi, [entry], f"ROI {roi_id}")
            flush_edit(s, f"ROI {roi_id}")
            return _roi_record(roi)

    def delete_roi(self, roi_id: int, user: str | None = None, expected_version: int | None = None) -> None:
        with self._tx() as s:
            roi = s.get(t.Roi, roi_id)
            if roi is None or roi.deleted:
                raise KeyError(f"no ROI {roi_id}")
            check_version(s, roi, expected_version, f"ROI {roi_id}")
            roi.deleted = True
            entry = _audit(s, user or self.user, "delete_roi", "roi", roi.id, "deleted", "False", "True")
            bump(s, roi, [entry], f"ROI {roi_id}")
            flush_edit(s, f"ROI {roi_id}")

    def roi(self, roi_id: int) -> RoiRecord:
        """One live (not deleted) ROI."""
        with self._sessions() as s:
            roi = s.get(t.Roi, roi_id)
            if roi is None or roi.deleted:
                raise KeyError(f"no ROI {roi_id}")
            return _roi_record(roi)

    def rois(self, image_id: int) -> list[RoiRecord]:
        with self._sessions() as s:
            rows = s.scalars(
                select(t.Roi).where(t.Roi.image_id == image_id, t.Roi.deleted.is_(False)).order_by(t.Roi.id)
            ).all()
            return [_roi_record(r) for r in rows]

    # ------------------------------------------------------------- predictions
    def add_predictions(self, rows: Sequence[dict], user: str | None = None) -> list[int]:
        """Store predictions; each dict has the columns of :class:`PredictionRecord` but id/created."""
        with self._tx() as s:
            objs = [t.Prediction(**{"user": user or self.user, **row}) for row in rows]
            s.add_all(objs)
            s.flush()
            return [o.id for o in objs]

    def latest_predictions(
        self, image_ids: Iterable[int], architecture: str | None = None, roi_id: int | None = None
    ) -> dict[tuple[int, str], PredictionRecord]:
        """The newest prediction per (image, architecture) for whole images (or one ROI)."""
        ids = list(image_ids)
        out: dict[tuple[int, str], PredictionRecord] = {}
        with self._sessions() as s:
            for start in range(0, len(ids), _IN_CHUNK):  # stay below the database's bound-parameter limit
                q = select(t.Prediction).where(t.Prediction.image_id.in_(ids[start : start + _IN_CHUNK]))
                q = q.where(t.Prediction.roi_id.is_(None) if roi_id is None else t.Prediction.roi_id == roi_id)
                if architecture:
                    q = q.where(t.Prediction.architecture == architecture)
                for p in s.scalars(q.order_by(t.Prediction.id)):
                    out[(p.image_id, p.architecture)] = _prediction_record(p)
        return out

    # ------------------------------------------------------------------ models
    def record_model_version(self, card: dict, user: str | None = None) -> None:
        """Remember a model version used or produced here (idempotent)."""
        with self._tx() as s:
            exists = s.scalar(
                select(t.ModelVersion.id).where(
                    t.ModelVersion.name == card["name"], t.ModelVersion.version == card["version"]
                )
            )
            if exists is None:
                mv = t.ModelVersion(
                    name=card["name"],
                    version=card["version"],
                    architecture=card["architecture"],
                    sha256=card.get("sha256", ""),
                    card=card,
                )
                s.add(mv)
                s.flush()
                _audit(s, user or self.user, "model_version", "model", mv.id, "sha256", None, mv.sha256)

    def model_cards(self, sha256s: Iterable[str] | None = None) -> dict[str, dict]:
        """The recorded model cards by weights sha256 (all, or only those of ``sha256s``)."""
        wanted = None if sha256s is None else sorted(set(sha256s))
        chunks = [None] if wanted is None else [wanted[i : i + _IN_CHUNK] for i in range(0, len(wanted), _IN_CHUNK)]
        out: dict[str, dict] = {}
        with self._sessions() as s:
            for chunk in chunks:
                q = select(t.ModelVersion.sha256, t.ModelVersion.card)
                if chunk is not None:
                    q = q.where(t.ModelVersion.sha256.in_(chunk))
                out |= {sha: dict(card) for sha, card in s.execute(q) if sha and isinstance(card, dict)}
        return out

    def log(
        self,
        action: str | AuditAction,
        entity: str,
        entity_id: int | None = None,
        field: str | None = None,
        old: str | None = None,
        new: str | None = None,
        user: str | None = None,
    ) -> None:
        """Append a free audit entry (e.g. model activation); ``action`` is one of
        :class:`~busviewer.core.store.actions.AuditAction` (ValueError otherwise)."""
        with self._tx() as s:
            _audit(s, user or self.user, action, entity, entity_id, field, old, new)

    def audit_log(self, entity: str | None = None, entity_id: int | None = None) -> list[AuditRecord]:
        with self._sessions() as s:
            q = select(t.AuditEntry).order_by(t.AuditEntry.id)
            if entity:
                q = q.where(t.AuditEntry.entity == entity)
            if entity_id is not None:
                q = q.where(t.AuditEntry.entity_id == entity_id)
            return [
                AuditRecord(a.id, a.at, a.user, a.action, a.entity, a.entity_id, a.field, a.old_value, a.new_value)
                for a in s.scalars(q)
            ]

    # ---------------------------------------------------------------- training
    def training_items(
        self,
        label_sources: Iterable[str] | None = None,
        use_rois: bool = False,
        classes: Iterable[str] = ("benign", "malignant"),
    ) -> list[TrainingItem]:
        """Labelled images (or their ROI crops) for training.

        Each image takes its most trusted label among ``label_sources``
        (biopsy > reader > import); with ``use_rois`` every saved ROI is one item and
        images without ROIs are left out.
        """
        sources = tuple(label_sources or LABEL_SOURCES)
        wanted = set(classes)
        items: list[TrainingItem] = []
        for rec in self.images():
            chosen = next((rec.labels[src] for src in SOURCE_PRIORITY if src in sources and src in rec.labels), None)
            if chosen is None or chosen.label not in wanted:
                continue
            crops: list[tuple[int, tuple[int, int, int, int] | None]] = (
                [(roi.frame, roi.box) for roi in self.rois(rec.id)] if use_rois else [(0, None)]
            )
            items += [
                TrainingItem(
                    image_id=rec.id,
                    path=rec.source_path,
                    frame=frame,
                    patient_key=rec.patient_key,
                    label=chosen.label,
                    label_source=chosen.source,
                    roi=box,
                    content_hash=rec.content_hash,
                )
                for frame, box in crops
            ]
        return items


# ---------------------------------------------------------------------- helpers
def _patient_id(s: Session, patient_key: str) -> int:
    pid = s.scalar(select(t.Patient.id).where(t.Patient.patient_key == patient_key))
    if pid is None:
        raise KeyError(f"no patient {patient_key!r} in the store")
    return pid


def _image_labels(s: Session, image_ids: list[int], me: str) -> dict[int, dict[str, LabelRecord]]:
    rows: list[t.Label] = []
    for start in range(0, len(image_ids), _IN_CHUNK):
        rows += s.scalars(select(t.Label).where(t.Label.image_id.in_(image_ids[start : start + _IN_CHUNK])))
    return grouped(rows, "image_id", me)


def _best_image_labels(s: Session, me: str, image_ids: list[int] | None = None) -> dict[int, LabelRecord]:
    q = select(t.Label).where(t.Label.image_id.is_not(None))
    if image_ids is not None:
        q = q.where(t.Label.image_id.in_(image_ids))
    return {k: _best(v) for k, v in grouped(s.scalars(q), "image_id", me).items()}  # type: ignore[misc]


def _best_patient_labels(s: Session, me: str) -> dict[int, LabelRecord]:
    rows = s.scalars(select(t.Label).where(t.Label.patient_id.is_not(None)))
    return {k: _best(v) for k, v in grouped(rows, "patient_id", me).items()}  # type: ignore[misc]


def _image_record(
    img: t.Image, series_uid: str, study_uid: str, patient_key: str, labels: dict[str, LabelRecord]
) -> ImageRecord:
    spacing = (
        (img.spacing_row_mm, img.spacing_col_mm)
        if img.spacing_row_mm is not None and img.spacing_col_mm is not None
        else None
    )
    return ImageRecord(
        id=img.id,
        patient_key=patient_key,
        study_uid=study_uid,
        series_uid=series_uid,
        source_path=Path(img.source_path),
        content_hash=img.content_hash,
        sop_uid=img.sop_uid,
        frame_count=img.frame_count,
        rows=img.rows,
        columns=img.columns,
        is_color=img.is_color,
        photometric=img.photometric,
        frame_time_ms=img.frame_time_ms,
        pixel_spacing_mm=spacing,
        regions=tuple(img.regions or ()),
        duplicate_of=img.duplicate_of,
        labels=labels,
    )


def _roi_record(r: t.Roi) -> RoiRecord:
    return RoiRecord(r.id, r.image_id, r.frame, r.x0, r.y0, r.x1, r.y1, r.user, r.created, r.version)


def _prediction_record(p: t.Prediction) -> PredictionRecord:
    return PredictionRecord(
        id=p.id,
        image_id=p.image_id,
        roi_id=p.roi_id,
        frame=p.frame,
        model_name=p.model_name,
        model_version=p.model_version,
        architecture=p.architecture,
        model_sha256=p.model_sha256,
        image_hash=p.image_hash,
        label=p.label,
        malignant_probability=p.malignant_probability,
        probabilities=dict(p.probabilities),
        created=p.created,
        user=p.user,
    )
