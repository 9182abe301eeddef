"""Import DICOM files, PNG/JPEG folders (one folder per patient) and CSV manifests.

Every file is decoded once to prove it is readable; a bad file is reported with its
path and the reason and skipped, and the rest of the import goes on (a decoder that
crashes on a file costs only that file: :mod:`busviewer.core.decode_pool`). Decoded images
are written in batches (:meth:`Store.add_images`: one transaction per batch of up to
:data:`BATCH_MAX` images or :data:`BATCH_SECONDS` of work), so an interrupted import leaves
only whole images; a batch the store refuses is written again image by image, so a bad
image costs only itself and never rolls back the good ones. A cancelled import writes the
images decoded before the cancel.
Manifest rows may only point inside the manifest's folder unless ``allow_outside``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from busviewer.core.imageio import (
    SUPPORTED_RASTER_SUFFIXES,
    DecodedImage,
    ImageReadError,
    is_dicom,
    read_image,
    sha256_file,
)
from busviewer.core.store import LABELS, NewImage, Store, StoreError
from busviewer.core.validate import check_identifier

MANIFEST_COLUMNS = ("image", "label", "patient_id")
#: Images per store transaction, and the most seconds of decoding before a batch is written
#: (so a long import shows its patients as it goes).
BATCH_MAX = 256
BATCH_SECONDS = 1.0
#: Files hashed ahead and looked up in the store with one query.
LOOKUP_AHEAD = 64
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic"})


@dataclass(frozen=True)
class ImportProblem:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class ImportProgress:
    done: int
    total: int
    path: Path


@dataclass
class ImportReport:
    added: int = 0
    existing: int = 0
    relocated: int = 0
    problems: list[ImportProblem] = field(default_factory=list)
    #: Imported, but spacing / frame time / a region was refused ("not calibrated") and why.
    notes: list[ImportProblem] = field(default_factory=list)
    patients: set[str] = field(default_factory=set)
    image_ids: list[int] = field(default_factory=list)
    cancelled: bool = False
    elapsed_s: float = 0.0

    def summary(self) -> str:
        text = (
            f"{self.added} image(s) added, {self.existing} already in the store, "
            f"{self.relocated} relocated, {len(self.problems)} problem(s); "
            f"{len(self.patients)} patient(s) in {self.elapsed_s:.1f} s"
        )
        return text + (" (cancelled)" if self.cancelled else "")


@dataclass(frozen=True)
class _Task:
    """One file to import, with what the surrounding folder or manifest says about it."""

    path: Path
    kind: str  # "dicom" | "raster"
    patient_key: str | None = None
    label: str | None = None
    rois: tuple[tuple[int, int, int, int, int], ...] = ()  # (frame, x0, y0, x1, y1), optional manifest column


class _Cancel:
    def is_set(self) -> bool:
        return False


def import_paths(
    store: Store,
    paths: Iterable[str | Path],
    progress: Callable[[ImportProgress], None] | None = None,
    cancel: object | None = None,
    user: str | None = None,
    allow_outside: bool = False,
) -> ImportReport:
    """Import files, folders and manifests; see the module docstring."""
    started = time.perf_counter()
    report = ImportReport()
    tasks = _collect([Path(p) for p in paths], report.problems, allow_outside)
    cancel = cancel or _Cancel()
    pending: list[_Pending] = []
    last_write = time.perf_counter()
    known: dict[int, tuple[str, tuple[int, str] | None]] = {}  # task index -> (digest, stored (id, patient))
    for i, task in enumerate(tasks):
        if progress:
            progress(ImportProgress(i, len(tasks), task.path))
        if cancel.is_set():  # type: ignore[attr-defined]
            report.cancelled = True
            break
        if i not in known:  # hash the next files and ask the store about them in one query
            known.update(_lookup(store, tasks, i, report.problems))
        digest, stored = known.pop(i, (None, None))
        if digest is None:
            continue  # a problem already reported
        if stored is not None:
            report.existing += 1
            report.image_ids.append(stored[0])
            report.patients.add(stored[1])
            continue
        try:
            new = _prepare(task, digest, report)
        except ImageReadError as exc:
            report.problems.append(ImportProblem(task.path, exc.reason))
            continue
        except OSError as exc:
            report.problems.append(ImportProblem(task.path, exc.strerror or str(exc)))
            continue
        report.image_ids.append(-1)  # filled in when its batch is written
        pending.append(_Pending(task, new, len(report.image_ids) - 1))
        if len(pending) >= BATCH_MAX or time.perf_counter() - last_write >= BATCH_SECONDS:
            _write(store, pending, report, user)
            pending, last_write = [], time.perf_counter()
    _write(store, pending, report, user)
    report.image_ids = [i for i in report.image_ids if i >= 0]
    if progress and not report.cancelled:
        progress(ImportProgress(len(tasks), len(tasks), tasks[-1].path if tasks else Path()))
    report.elapsed_s = time.perf_counter() - started
    return report


@dataclass(frozen=True)
class _Pending:
    task: _Task
    new: NewImage
    slot: int  # its index in report.image_ids


def _write(store: Store, pending: list[_Pending], report: ImportReport, user: str | None) -> None:
    """Write a batch in one transaction; if the store refuses it, image by image."""
    if not pending:
        return
    try:
        results = store.add_images([(p.new, p.task.rois) for p in pending], user=user)
    except (StoreError, ValueError, KeyError):
        if len(pending) == 1:
            results = None
        else:  # rolled back whole: again one transaction per image, so only the bad one is lost
            for p in pending:
                _write(store, [p], report, user)
            return
    if results is None:
        try:
            results = store.add_images([(pending[0].new, pending[0].task.rois)], user=user)
        except (StoreError, ValueError, KeyError) as exc:
            report.problems.append(ImportProblem(pending[0].task.path, str(exc)))
            return
    for p, (status, image_id) in zip(pending, results):
        report.image_ids[p.slot] = image_id
        report.patients.add(p.new.patient_key)
        if status == "added":
            report.added += 1
        elif status == "relocated":
            report.relocated += 1
        else:
            report.existing += 1


def _collect(paths: list[Path], problems: list[ImportProblem], allow_outside: bool = False) -> list[_Task]:
    tasks: list[_Task] = []
    for path in paths:
        if not path.exists():
            problems.append(ImportProblem(path, "no such file or folder"))
        elif path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                if f.name.startswith(".") or f.name.upper() == "DICOMDIR":
                    continue
                task = _classify(f, root=path, problems=problems, allow_outside=allow_outside)
                if isinstance(task, list):
                    tasks.extend(task)
                elif task is not None:
                    tasks.append(task)
        else:
            task = _classify(path, root=None, problems=problems, allow_outside=allow_outside)
            if isinstance(task, list):
                tasks.extend(task)
            elif task is not None:
                tasks.append(task)
    return tasks


def _classify(
    path: Path, root: Path | None, problems: list[ImportProblem], allow_outside: bool = False
) -> _Task | list[_Task] | None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_manifest(path, problems, allow_outside)
    if suffix in DICOM_SUFFIXES:
        return _Task(path, "dicom")
    if suffix in SUPPORTED_RASTER_SUFFIXES:
        # Folder per patient: the folder holding the image names the patient.
        return _Task(path, "raster", patient_key=path.parent.name or path.stem)
    if is_dicom(path):
        return _Task(path, "dicom")
    problems.append(ImportProblem(path, "not a DICOM, PNG or JPEG file (skipped)"))
    return None


def _inside(file: Path, folder: Path) -> bool:
    try:
        file.resolve().relative_to(folder)
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _read_manifest(path: Path, problems: list[ImportProblem], allow_outside: bool = False) -> list[_Task]:
    """Rows of a CSV manifest ``image,label,patient_id`` (paths relative to the CSV)."""
    tasks: list[_Task] = []
    folder = path.parent.resolve()
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                problems.append(ImportProblem(path, f"manifest lacks column(s) {', '.join(missing)}"))
                return []
            for line_no, row in enumerate(reader, start=2):
                image = (row.get("image") or "").strip()
                label = (row.get("label") or "").strip().lower() or None
                patient = (row.get("patient_id") or "").strip()
                where = f"{path} line {line_no}"
                if not image or not patient:
                    problems.append(ImportProblem(Path(where), "empty image or patient_id"))
                    continue
                if label is not None and label not in LABELS:
                    problems.append(
                        ImportProblem(Path(where), f"unknown label {label!r} (expected {', '.join(LABELS)})")
                    )
                    continue
                try:
                    patient = check_identifier(patient)
                except ValueError as exc:
                    problems.append(ImportProblem(Path(where), str(exc)))
                    continue
                file = Path(image) if Path(image).is_absolute() else path.parent / image
                if not allow_outside and not _inside(file, folder):
                    problems.append(
                        ImportProblem(
                            Path(where),
                            (
                                f"image {image!r} is outside the manifest's folder {folder}; not imported "
                                "(allow it with --allow-outside)"
                            ),
                        )
                    )
                    continue
                kind = "dicom" if file.suffix.lower() in DICOM_SUFFIXES else "raster"
                try:
                    rois = _manifest_rois(row.get("rois"))
                except ValueError as exc:
                    problems.append(ImportProblem(Path(where), str(exc)))
                    continue
                tasks.append(_Task(file, kind, patient_key=patient, label=label, rois=rois))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(ImportProblem(path, f"cannot read manifest ({exc})"))
    return tasks


def _lookup(
    store: Store, tasks: list[_Task], start: int, problems: list[ImportProblem]
) -> dict[int, tuple[str, tuple[int, str] | None]]:
    """Digest and stored ``(id, patient key)`` (None: not stored) of up to :data:`LOOKUP_AHEAD`
    files from ``start``; a file that cannot be read is a problem and is left out."""
    digests: dict[int, str] = {}
    for j in range(start, min(start + LOOKUP_AHEAD, len(tasks))):
        path = tasks[j].path
        try:
            if not path.is_file():
                raise ImageReadError(path, "file not found")
            digests[j] = sha256_file(path)
        except ImageReadError as exc:
            problems.append(ImportProblem(path, exc.reason))
        except OSError as exc:
            problems.append(ImportProblem(path, exc.strerror or str(exc)))
    try:
        found = store.find_images((d, tasks[j].path.resolve()) for j, d in digests.items())
    except StoreError as exc:
        for j in digests:
            problems.append(ImportProblem(tasks[j].path, str(exc)))
        return {}
    return {j: (d, found.get((d, tasks[j].path.resolve()))) for j, d in digests.items()}


def _prepare(task: _Task, digest: str, report: ImportReport) -> NewImage:
    """Decode a file: what to store."""
    decoded = read_image(task.path)
    new = _describe(task, decoded, digest)
    for issue in decoded.calibration_issues:
        report.notes.append(ImportProblem(task.path, issue))
    return new


def _manifest_rois(text: str | None) -> tuple[tuple[int, int, int, int, int], ...]:
    """The optional ``rois`` column: JSON ``[[frame, x0, y0, x1, y1], ...]`` (a de-identified export's)."""
    if not text or not text.strip():
        return ()
    try:
        rois = tuple(tuple(int(v) for v in r) for r in json.loads(text))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"rois column is not [[frame, x0, y0, x1, y1], ...] ({exc})") from None
    if any(len(r) != 5 for r in rois):
        raise ValueError("rois column is not [[frame, x0, y0, x1, y1], ...]")
    return rois  # type: ignore[return-value]


def _short_hash(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


def _describe(task: _Task, img: DecodedImage, digest: str) -> NewImage:
    meta = img.meta
    path = task.path.resolve()
    if task.kind == "dicom":
        patient_key = task.patient_key or meta.patient_id or f"ANON-{_short_hash(meta.study_uid or digest)}"
        study_uid = meta.study_uid or f"local-study:{_short_hash(patient_key, str(path.parent))}"
        series_uid = meta.series_uid or f"local-series:{_short_hash(study_uid, str(path.parent))}"
    else:
        patient_key = task.patient_key or path.parent.name
        study_uid = f"local-study:{patient_key}"
        series_uid = f"local-series:{patient_key}"
    try:
        patient_key = check_identifier(patient_key)
        study_uid = check_identifier(study_uid, "study uid")
        series_uid = check_identifier(series_uid, "series uid")
        if meta.sop_uid is not None:
            check_identifier(meta.sop_uid, "SOP instance uid")
    except ValueError as exc:
        raise ImageReadError(task.path, str(exc)) from None
    return NewImage(
        patient_key=patient_key,
        patient_name=meta.patient_name,
        study_uid=study_uid,
        study_date=meta.study_date,
        study_description=meta.study_description,
        series_uid=series_uid,
        series_description=meta.series_description,
        modality=meta.modality or "US",
        source_path=path,
        content_hash=digest,
        file_size=path.stat().st_size,
        sop_uid=meta.sop_uid,
        frame_count=img.frame_count,
        rows=int(img.frames.shape[1]),
        columns=int(img.frames.shape[2]),
        is_color=img.is_color,
        photometric=meta.photometric,
        frame_time_ms=img.frame_time_ms,
        pixel_spacing_mm=img.pixel_spacing_mm,
        regions=tuple(_region_dict(r) for r in img.regions),
        label=task.label,
        label_source="import",
    )


def _region_dict(region: object) -> dict:
    from dataclasses import asdict

    return asdict(region)  # type: ignore[call-overload]
