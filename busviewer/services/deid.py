"""De-identified export for research sharing: DICOM PS3.15 Annex E, Basic Application Level
Confidentiality Profile, with consistent pseudonyms and UIDs, plus a manifest of labels
and ROIs that :func:`busviewer.core.importer.import_paths` reads back.

- The profile's attribute list (Table E.1-1) comes from the ``dicom-anonymizer`` package
  (:data:`PROFILE_TABLE`); every listed attribute, at any depth, gets its action: X
  deleted, Z emptied, D replaced by a dummy, U remapped; combined actions take the first
  that keeps the object usable (Z/D -> Z, X/... -> X, X/Z/U* -> U for UIDs). Private
  attributes are removed.
- Pseudonyms and UIDs are keyed hashes (HMAC-SHA-256 with a secret kept in the data
  folder), so a patient gets the same pseudonym and a UID the same new UID in every
  export from this workstation; the secret and the local list of pseudonyms never leave it.
- Dates are removed (``date_mode="remove"``, the profile) or shifted by a per-patient
  number of days (``"shift"``: the Retain Longitudinal Temporal Information with Modified
  Dates Option).
- Burned-in annotation: images whose Burned In Annotation is YES or absent (and every PNG
  or JPEG, which cannot say) are refused (``burned_in="refuse"``), or with ``"blank"``
  every pixel outside the tissue regions of the Sequence of Ultrasound Regions is set to
  black (images without such a region are refused). Refusals are listed in the report;
  nothing flagged is exported as it was.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from busviewer.core import paths
from busviewer.core.fileio import atomic_write_text
from busviewer.core.store import Store

PROFILE_TABLE = "dicomfields_2026c"
DATE_MODES = ("remove", "shift")
BURNED_IN = ("refuse", "blank")
_TISSUE = 1


def profile_actions() -> tuple[dict[int, str], list[tuple[int, int, int, int, str]]]:
    """Table E.1-1 as ``({tag: action}, [(group, element, group mask, element mask, action)])``."""
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    table = dicom_anonymization_database_selector(PROFILE_TABLE)
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for key, action in (
        ("D_TAGS", "D"),
        ("Z_TAGS", "Z"),
        ("X_TAGS", "X"),
        ("U_TAGS", "U"),
        ("Z_D_TAGS", "Z/D"),
        ("X_Z_TAGS", "X/Z"),
        ("X_D_TAGS", "X/D"),
        ("X_Z_D_TAGS", "X/Z/D"),
        ("X_Z_U_STAR_TAGS", "X/Z/U*"),
    ):
        for t in table[key]:
            if len(t) == 2:
                exact[int(Tag(t[0], t[1]))] = action
            else:
                masked.append((t[0], t[1], t[2], t[3], action))
    return exact, masked


_EXACT, _MASKED = profile_actions()


def profile_action(tag: int) -> str | None:
    """The Basic Profile action for ``tag``, or None when the profile keeps it."""
    if tag in _EXACT:
        return _EXACT[tag]
    group, elem = tag >> 16, tag & 0xFFFF
    for g, e, gm, em, action in _MASKED:
        if group & gm == g and elem & em == e:
            return action
    return None


@dataclass(frozen=True)
class DeidOptions:
    date_mode: str = "remove"
    burned_in: str = "refuse"

    def checked(self) -> DeidOptions:
        if self.date_mode not in DATE_MODES:
            raise ValueError(f"date mode must be one of {', '.join(DATE_MODES)}")
        if self.burned_in not in BURNED_IN:
            raise ValueError(f"burned-in annotation handling must be one of {', '.join(BURNED_IN)}")
        return self


class Keys:
    """The workstation's de-identification secret: pseudonyms, UIDs and date shifts."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret if secret is not None else _load_secret()

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self.secret, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def pseudonym(self, patient_key: str) -> str:
        return "BUSV-" + self._digest("patient", patient_key).hex()[:12].upper()

    def uid(self, uid: str) -> str:
        return "2.25." + str(int.from_bytes(self._digest("uid", uid)[:16], "big"))

    def shift_days(self, patient_key: str) -> int:
        return -(1 + int.from_bytes(self._digest("date", patient_key)[:4], "big") % 3650)


def _load_secret() -> bytes:
    path = paths.data_dir() / "deid" / "secret.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


# ------------------------------------------------------------------ one dataset
_DUMMY = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "PN": "ANONYMIZED",
    "UI": None,
}
_NUMERIC = {"US", "SS", "UL", "SL", "FL", "FD", "IS", "DS", "UV", "SV", "AT"}


def _shift(value: str, vr: str, days: int) -> str:
    out = []
    for v in str(value).split("\\"):
        try:
            d = dt.datetime.strptime(v[:8], "%Y%m%d") + dt.timedelta(days=days)
            out.append(d.strftime("%Y%m%d") + (v[8:] if vr == "DT" else ""))
        except ValueError:
            out.append("")
    return "\\".join(out)


def deidentify_dataset(ds: Dataset, keys: Keys, patient_key: str, options: DeidOptions = DeidOptions()) -> Dataset:
    """Apply the profile to ``ds`` in place (and return it); see the module docstring."""
    pseudonym, days = keys.pseudonym(patient_key), keys.shift_days(patient_key)
    shift = options.date_mode == "shift"

    def walk(d: Dataset) -> None:
        for elem in list(d):
            if elem.tag.is_private:
                del d[elem.tag]
                continue
            action = profile_action(int(elem.tag))
            vr = elem.VR
            if action is None:
                if vr == "SQ":
                    for item in elem.value:
                        walk(item)
                continue
            if shift and vr in ("DA", "DT") and elem.value not in (None, ""):
                elem.value = _shift(elem.value, vr, days)
                continue
            if action == "X/Z/U*":
                action = "U" if vr == "UI" else "X"
            first = action.split("/")[0]
            if first == "X":
                del d[elem.tag]
            elif first == "U":
                if vr == "SQ":
                    for item in elem.value:
                        walk(item)
                elif elem.value not in (None, ""):
                    elem.value = "\\".join(keys.uid(u) for u in str(elem.value).split("\\"))
            elif elem.keyword in ("PatientID", "PatientName"):
                elem.value = pseudonym
            elif first == "Z":
                elem.value = [] if vr == "SQ" else None
            elif vr == "SQ":
                elem.value = []
            elif vr in _NUMERIC:
                elem.value = 0
            elif vr == "UI":
                elem.value = keys.uid(str(elem.value)) if elem.value else None
            else:
                elem.value = _DUMMY.get(vr, "ANONYMIZED")

    walk(ds)
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if shift else "REMOVED"
    methods = [("113100", "Basic Application Confidentiality Profile")]
    if shift:
        methods.append(("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
    seq = []
    for value, meaning in methods:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        seq.append(item)
    ds.DeidentificationMethodCodeSequence = seq
    ds.DeidentificationMethod = f"busviewer: PS3.15 Annex E Basic Profile ({PROFILE_TABLE}); dates {options.date_mode}d"
    return ds


def tissue_mask(ds: Dataset, rows: int, cols: int) -> np.ndarray | None:
    """True inside the tissue regions of the Sequence of Ultrasound Regions (None: no region)."""
    mask = np.zeros((rows, cols), bool)
    found = False
    for r in ds.get("SequenceOfUltrasoundRegions") or []:
        if int(r.get("RegionDataType", 0) or 0) != _TISSUE:
            continue
        x0, y0 = int(r.RegionLocationMinX0), int(r.RegionLocationMinY0)
        x1, y1 = int(r.RegionLocationMaxX1), int(r.RegionLocationMaxY1)
        mask[max(0, y0) : min(rows, y1 + 1), max(0, x0) : min(cols, x1 + 1)] = True
        found = True
    return mask if found and mask.any() else None


def blank_outside_tissue(ds: Dataset, frames: np.ndarray) -> bool:
    """Replace the pixel data of ``ds`` by ``frames`` (F, H, W, 3) black outside the tissue
    regions, as uncompressed RGB; False when there is no tissue region."""
    mask = tissue_mask(ds, frames.shape[1], frames.shape[2])
    if mask is None:
        return False
    out = np.where(mask[None, :, :, None], frames, 0).astype(np.uint8)
    for kw in (
        "RedPaletteColorLookupTableDescriptor",
        "GreenPaletteColorLookupTableDescriptor",
        "BluePaletteColorLookupTableDescriptor",
        "RedPaletteColorLookupTableData",
        "GreenPaletteColorLookupTableData",
        "BluePaletteColorLookupTableData",
        "ICCProfile",
    ):
        if kw in ds:
            delattr(ds, kw)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.Rows, ds.Columns = int(out.shape[1]), int(out.shape[2])
    if out.shape[0] > 1 or "NumberOfFrames" in ds:
        ds.NumberOfFrames = int(out.shape[0])
    ds.PixelData = out.tobytes()
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.BurnedInAnnotation = "NO"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "113101", "DCM", "Clean Pixel Data Option"
    ds.DeidentificationMethodCodeSequence = list(ds.DeidentificationMethodCodeSequence) + [item]
    return True


# ------------------------------------------------------------------ export
@dataclass
class DeidReport:
    folder: Path
    exported: int = 0
    blanked: int = 0
    patients: int = 0
    refused: list[str] = field(default_factory=list)  # "image <id>: reason" (store ids, no identifiers)
    manifest: Path | None = None

    def summary(self) -> str:
        return (
            f"{self.exported} image(s) of {self.patients} patient(s) exported to {self.folder}"
            f" ({self.blanked} blanked outside the tissue region); {len(self.refused)} refused"
        )


def export_deidentified(
    store: Store,
    patient_keys: Iterable[str],
    out_dir: Path,
    options: DeidOptions = DeidOptions(),
    progress: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
    keys: Keys | None = None,
) -> DeidReport:
    """Export the images of ``patient_keys`` de-identified into ``out_dir`` (``<pseudonym>/
    <new SOP UID>.dcm``, ``manifest.csv`` with labels and ROIs, ``deid_report.json``)."""
    from busviewer.core.imageio import ImageReadError, read_image

    options = options.checked()
    keys = keys or Keys()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = DeidReport(out_dir)
    records = [r for key in patient_keys for r in store.images(key)]
    rows: list[dict[str, str]] = []
    pseudonyms: dict[str, str] = {}
    for i, rec in enumerate(records):
        if cancel is not None and cancel.is_set():
            report.refused.append("export cancelled before the remaining images")
            break
        if progress:
            progress(i, len(records), f"image {rec.id}")
        if rec.sop_uid is None:
            report.refused.append(f"image {rec.id}: PNG/JPEG cannot declare burned-in annotation; not exported")
            continue
        try:
            ds = dcmread(rec.source_path)
        except (OSError, ValueError) as exc:
            report.refused.append(f"image {rec.id}: unreadable ({type(exc).__name__})")
            continue
        flagged = str(ds.get("BurnedInAnnotation", "") or "").upper() != "NO"
        if flagged and options.burned_in == "refuse":
            report.refused.append(
                f"image {rec.id}: Burned In Annotation is {ds.get('BurnedInAnnotation') or 'absent'}; refused"
            )
            continue
        frames = None
        if flagged:
            try:
                frames = read_image(rec.source_path).frames
            except ImageReadError as exc:
                report.refused.append(f"image {rec.id}: pixels unreadable ({exc.reason})")
                continue
            if tissue_mask(ds, frames.shape[1], frames.shape[2]) is None:
                report.refused.append(
                    f"image {rec.id}: burned-in annotation possible and no ultrasound tissue region to keep; refused"
                )
                continue
        deidentify_dataset(ds, keys, rec.patient_key, options)
        ds.file_meta = _file_meta(ds)
        if frames is not None and blank_outside_tissue(ds, frames):
            report.blanked += 1
        pseudonym = pseudonyms.setdefault(rec.patient_key, keys.pseudonym(rec.patient_key))
        rel = Path(pseudonym) / f"{ds.SOPInstanceUID}.dcm"
        (out_dir / pseudonym).mkdir(exist_ok=True)
        ds.save_as(out_dir / rel, enforce_file_format=True)
        report.exported += 1
        rois = [[r.frame, r.x0, r.y0, r.x1, r.y1] for r in store.rois(rec.id)]
        label = rec.label.label if rec.label is not None else ""
        rows.append(
            {"image": rel.as_posix(), "label": label, "patient_id": pseudonym, "rois": json.dumps(rois) if rois else ""}
        )
    report.patients = len(pseudonyms)
    report.manifest = _write_manifest(out_dir, rows)
    atomic_write_text(
        out_dir / "deid_report.json",
        json.dumps(
            {
                "profile": f"DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile ({PROFILE_TABLE})",
                "date_mode": options.date_mode,
                "burned_in": options.burned_in,
                "exported": report.exported,
                "blanked": report.blanked,
                "patients": report.patients,
                "refused": report.refused,
            },
            indent=2,
        )
        + "\n",
    )
    _remember(pseudonyms)
    return report


def _file_meta(ds: Dataset) -> FileMetaDataset:
    old = getattr(ds, "file_meta", None)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    syntax = old.TransferSyntaxUID if old is not None and "TransferSyntaxUID" in old else None
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _write_manifest(out_dir: Path, rows: list[dict[str, str]]) -> Path:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["image", "label", "patient_id", "rois"])
    writer.writeheader()
    writer.writerows(rows)
    path = out_dir / "manifest.csv"
    atomic_write_text(path, buf.getvalue())
    return path


def _remember(pseudonyms: dict[str, str]) -> None:
    """Keep pseudonym -> patient locally (for the exporting site only; never exported)."""
    if not pseudonyms:
        return
    path = paths.data_dir() / "deid" / "pseudonyms.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    known = path.read_text(encoding="utf-8").splitlines() if path.is_file() else ["pseudonym,patient_key"]
    have = set(known)
    known += [line for line in (f"{p},{k}" for k, p in sorted(pseudonyms.items())) if line not in have]
    atomic_write_text(path, "\n".join(known) + "\n")
