"""DIMSE services as a user (SCU) through pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE.

Every failure is a :class:`PeerError` naming the node: the association refused (with the
peer's reason: unknown called or calling AE title...), no connection (refused, unreachable),
no answer within the node's timeout, an abort by the peer, or a failure status.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from busviewer.dicomnet.errors import PeerError, RetrieveIncomplete
from busviewer.dicomnet.nodes import LocalAE, RemoteNode
from busviewer.dicomnet.storage import (
    IMAGE_STORAGE,
    IMAGE_TRANSFER_SYNTAXES,
    OTHER_STORAGE,
    ReceivedFile,
    write_received,
)

#: A-ASSOCIATE-RJ reasons (PS3.8 9.3.4), by (source, diagnostic).
_REJECT_REASONS = {
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title {calling!r} not recognised by the peer (register this workstation's AE title there)",
    (1, 7): "called AE title {called!r} not recognised (check the node's AE title)",
    (2, 1): "rejected by the peer without a reason",
    (2, 2): "protocol version not supported",
    (3, 1): "the peer is temporarily congested",
    (3, 2): "the peer's local limit was exceeded",
}


@dataclass(frozen=True)
class FindResult:
    """One C-FIND (or QIDO) match at patient or study level."""

    level: str
    patient_id: str
    patient_name: str
    study_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    modalities: str = ""
    accession: str = ""
    instances: int | None = None


@dataclass(frozen=True)
class Query:
    """C-FIND filters; empty strings match everything (``*`` wildcards allowed in names)."""

    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""  # YYYYMMDD or a range YYYYMMDD-YYYYMMDD
    modality: str = "US"
    study_uid: str = ""


@dataclass
class StoreReport:
    sent: list[str] = field(default_factory=list)  # SOP Instance UIDs
    problems: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ association
def _reject_text(assoc: Association, local: LocalAE, node: RemoteNode) -> str:
    rsp = getattr(assoc.acceptor, "primitive", None)
    source, diag = getattr(rsp, "result_source", None), getattr(rsp, "diagnostic", None)
    template = _REJECT_REASONS.get((source, diag)) if source is not None and diag is not None else None
    if template:
        return "association rejected: " + template.format(calling=local.ae_title, called=node.ae_title)
    return f"association rejected ({getattr(rsp, 'reason_str', 'no reason given')})"


def _unreachable_text(node: RemoteNode) -> str:
    """Why no association could be made: probe the socket for the precise reason."""
    try:
        with socket.create_connection((node.host, int(node.port)), timeout=min(node.timeout_s, 10)):
            return f"no answer to the association request within {node.timeout_s:g} s (timeout)"
    except ConnectionRefusedError:
        return "connection refused (nothing listens on that port; is the PACS running?)"
    except TimeoutError:
        return f"no connection within {min(node.timeout_s, 10):g} s (host unreachable or firewalled)"
    except socket.gaierror as exc:
        return f"unknown host {node.host!r} ({exc.strerror})"
    except OSError as exc:
        return f"cannot connect ({exc.strerror or exc})"


def make_ae(local: LocalAE, node: RemoteNode) -> AE:
    ae = AE(ae_title=local.ae_title)
    ae.acse_timeout = node.timeout_s
    ae.dimse_timeout = node.timeout_s
    ae.network_timeout = node.timeout_s
    ae.connection_timeout = min(node.timeout_s, 10)
    return ae


@contextmanager
def associate(ae: AE, local: LocalAE, node: RemoteNode, **kwargs: Any) -> Iterator[Association]:
    """An established association with ``node`` (released or aborted after), else PeerError."""
    if node.transport != "dimse":
        raise PeerError(node.describe(), "is a DICOMweb node; this operation needs DIMSE")
    assoc = ae.associate(node.host, int(node.port), ae_title=node.ae_title, **kwargs)
    if not assoc.is_established:
        if assoc.is_rejected:
            raise PeerError(node.describe(), _reject_text(assoc, local, node))
        raise PeerError(node.describe(), _unreachable_text(node))
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _check_alive(assoc: Association, node: RemoteNode, what: str) -> None:
    if assoc.is_aborted or not assoc.is_established:
        raise PeerError(node.describe(), f"the peer aborted the association during {what}")


# ------------------------------------------------------------------ C-ECHO
def echo(local: LocalAE, node: RemoteNode) -> float:
    """C-ECHO ``node``; returns the round-trip time in seconds."""
    ae = make_ae(local, node)
    ae.add_requested_context(Verification)
    start = time.perf_counter()
    with associate(ae, local, node) as assoc:
        status = assoc.send_c_echo()
        _check_alive(assoc, node, "C-ECHO")
        if not status or status.Status != 0x0000:
            code = getattr(status, "Status", None)
            raise PeerError(
                node.describe(),
                f"C-ECHO failed (status {code:#06x})" if code is not None else "no C-ECHO response (timeout)",
            )
    return time.perf_counter() - start


# ------------------------------------------------------------------ C-FIND
def _identifier(query: Query, level: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    ds.PatientID = query.patient_id
    ds.PatientName = query.patient_name
    if level == "PATIENT":
        ds.NumberOfPatientRelatedStudies = ""
        return ds
    ds.StudyInstanceUID = query.study_uid
    ds.StudyDate = query.study_date
    ds.StudyDescription = ""
    ds.AccessionNumber = ""
    ds.ModalitiesInStudy = query.modality
    ds.NumberOfStudyRelatedInstances = ""
    return ds


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__") and not hasattr(value, "family_name"):
        return "\\".join(str(v) for v in value)
    return str(value)


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def find(local: LocalAE, node: RemoteNode, query: Query, level: str = "STUDY") -> list[FindResult]:
    """C-FIND at ``level`` ``"PATIENT"`` (patient root) or ``"STUDY"`` (study root)."""
    level = level.upper()
    if level not in ("PATIENT", "STUDY"):
        raise ValueError(f"level must be PATIENT or STUDY, not {level!r}")
    model = (
        PatientRootQueryRetrieveInformationModelFind
        if level == "PATIENT"
        else StudyRootQueryRetrieveInformationModelFind
    )
    ae = make_ae(local, node)
    ae.add_requested_context(model)
    out: list[FindResult] = []
    started = time.perf_counter()
    with associate(ae, local, node) as assoc:
        for status, ident in assoc.send_c_find(_identifier(query, level), model):
            _check_alive(assoc, node, "C-FIND")
            if not status:
                quick = time.perf_counter() - started < node.timeout_s * 0.9
                what = (
                    "the peer aborted the C-FIND"
                    if assoc.is_aborted or not assoc.is_established
                    else "the peer answered the C-FIND without a status"
                    if quick
                    else f"no C-FIND response within {node.timeout_s:g} s (timeout)"
                )
                raise PeerError(
                    node.describe(),
                    f"{what}; a PACS refuses queries from a calling AE title it "
                    f"does not know: is {local.ae_title!r} registered there with this workstation's address?",
                )
            code = int(status.Status)
            if code in (0xFF00, 0xFF01) and ident is not None:
                out.append(
                    FindResult(
                        level=level,
                        patient_id=_text(ident, "PatientID"),
                        patient_name=_text(ident, "PatientName"),
                        study_uid=_text(ident, "StudyInstanceUID"),
                        study_date=_text(ident, "StudyDate"),
                        study_description=_text(ident, "StudyDescription"),
                        modalities=_text(ident, "ModalitiesInStudy"),
                        accession=_text(ident, "AccessionNumber"),
                        instances=_int(
                            ident,
                            "NumberOfStudyRelatedInstances" if level == "STUDY" else "NumberOfPatientRelatedStudies",
                        ),
                    )
                )
            elif code != 0x0000:
                comment = _text(status, "ErrorComment")
                raise PeerError(
                    node.describe(),
                    f"C-FIND refused (status {code:#06x}"
                    + (f": {comment})" if comment else ")")
                    + (
                        "; is this workstation's AE title registered there?"
                        if code in (0xA700, 0xC000, 0xA900, 0x0124)
                        else ""
                    ),
                )
    return out


def find_instances(local: LocalAE, node: RemoteNode, study_uid: str) -> list[dict[str, str]]:
    """Series and SOP Instance UIDs and SOP classes of a study (series, then image level)."""
    ae = make_ae(local, node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    series: list[tuple[str, str]] = []
    out: list[dict[str, str]] = []
    with associate(ae, local, node) as assoc:
        q = Dataset()
        q.QueryRetrieveLevel, q.StudyInstanceUID, q.SeriesInstanceUID, q.Modality = "SERIES", study_uid, "", ""
        for status, ident in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind):
            _check_alive(assoc, node, "C-FIND")
            if status and int(status.Status) in (0xFF00, 0xFF01) and ident is not None:
                series.append((_text(ident, "SeriesInstanceUID"), _text(ident, "Modality")))
        for uid, modality in series:
            q = Dataset()
            q.QueryRetrieveLevel, q.StudyInstanceUID, q.SeriesInstanceUID = "IMAGE", study_uid, uid
            q.SOPInstanceUID, q.SOPClassUID = "", ""
            for status, ident in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind):
                _check_alive(assoc, node, "C-FIND")
                if status and int(status.Status) in (0xFF00, 0xFF01) and ident is not None:
                    out.append(
                        {
                            "series_uid": uid,
                            "modality": modality,
                            "sop_uid": _text(ident, "SOPInstanceUID"),
                            "sop_class_uid": _text(ident, "SOPClassUID"),
                        }
                    )
    return out


# ------------------------------------------------------------------ C-GET / C-MOVE
def _retrieve_identifier(study_uid: str, sop_uids: Iterable[str] = ()) -> Dataset:
    ds = Dataset()
    sops = list(sop_uids)
    ds.QueryRetrieveLevel = "IMAGE" if sops else "STUDY"
    ds.StudyInstanceUID = study_uid
    if sops:
        ds.SeriesInstanceUID = ""
        ds.SOPInstanceUID = sops
    return ds


def _sub_ops(ident: Any) -> tuple[int, int, int, int]:
    def n(k: str) -> int:
        try:
            return int(getattr(ident, k, 0) or 0)
        except (TypeError, ValueError):
            return 0

    return (
        n("NumberOfRemainingSuboperations"),
        n("NumberOfCompletedSuboperations"),
        n("NumberOfFailedSuboperations"),
        n("NumberOfWarningSuboperations"),
    )


def _follow(
    assoc: Association,
    node: RemoteNode,
    responses: Iterator[tuple[Any, Any]],
    what: str,
    cancel: threading.Event | None,
    received: Callable[[], int],
) -> tuple[int, int]:
    """Drain C-GET/C-MOVE responses; returns (completed, failed) or raises RetrieveIncomplete."""
    completed = failed = 0
    expected: int | None = None
    for status, _ident in responses:
        if cancel is not None and cancel.is_set():
            assoc.abort()
            raise RetrieveIncomplete(node.describe(), f"{what} cancelled", received(), expected)
        if assoc.is_aborted or not status:
            reason = (
                "the peer aborted the association"
                if assoc.is_aborted
                else f"no {what} response within {node.timeout_s:g} s (timeout)"
            )
            if assoc.is_established:
                assoc.abort()
            raise RetrieveIncomplete(node.describe(), f"{what} interrupted: {reason}", received(), expected)
        code = int(status.Status)
        remaining, completed, failed, _warn = _sub_ops(status)
        if code == 0xFF00:
            expected = remaining + completed + failed + _warn
            continue
        if code == 0xFE00:
            raise RetrieveIncomplete(node.describe(), f"{what} cancelled by the peer", received(), expected)
        if code not in (0x0000, 0xB000):
            comment = _text(status, "ErrorComment")
            raise RetrieveIncomplete(
                node.describe(),
                f"{what} failed (status {code:#06x}{': ' + comment if comment else ''})"
                + (
                    "; is this workstation's AE title registered there?"
                    if code in (0xA701, 0xA702, 0xA801, 0xC000)
                    else ""
                ),
                received(),
                expected,
            )
    if assoc.is_aborted:
        raise RetrieveIncomplete(
            node.describe(), f"{what} interrupted: the peer aborted the association", received(), expected
        )
    return completed, failed


def get_study(
    local: LocalAE,
    node: RemoteNode,
    study_uid: str,
    staging: Path,
    on_file: Callable[[ReceivedFile], None] | None = None,
    cancel: threading.Event | None = None,
    sop_uids: Iterable[str] = (),
) -> list[ReceivedFile]:
    """C-GET a study (or some of its instances) into ``staging``; each file is written whole
    (temporary name, then renamed) before ``on_file`` sees it. Raises RetrieveIncomplete
    (with the whole files received so far) when the retrieve ends early."""
    ae = make_ae(local, node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    classes = list(IMAGE_STORAGE) + list(OTHER_STORAGE)
    for uid in IMAGE_STORAGE:
        for ts in IMAGE_TRANSFER_SYNTAXES:
            ae.add_requested_context(uid, ts)
    for uid in OTHER_STORAGE:
        ae.add_requested_context(uid, IMAGE_TRANSFER_SYNTAXES[:3])
    roles = [build_role(uid, scp_role=True) for uid in classes]
    files: list[ReceivedFile] = []
    peer = node.describe()

    def on_store(event: Any) -> int:
        try:
            rec = write_received(event, staging, peer)
        except ValueError:
            return 0xC210
        except OSError:
            return 0xA700
        files.append(rec)
        if on_file is not None:
            on_file(rec)
        return 0x0000

    with associate(ae, local, node, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]) as assoc:
        responses = assoc.send_c_get(
            _retrieve_identifier(study_uid, sop_uids), StudyRootQueryRetrieveInformationModelGet
        )
        completed, failed = _follow(assoc, node, responses, "C-GET", cancel, lambda: len(files))
    if failed and not files:
        raise RetrieveIncomplete(peer, f"C-GET: all {failed} sub-operation(s) failed at the peer", 0, failed)
    return files


def move_study(
    local: LocalAE,
    node: RemoteNode,
    study_uid: str,
    destination: str,
    cancel: threading.Event | None = None,
    received: Callable[[], int] = lambda: 0,
) -> tuple[int, int]:
    """C-MOVE a study to AE ``destination`` (usually this workstation's listener);
    returns (completed, failed) sub-operations."""
    ae = make_ae(local, node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    with associate(ae, local, node) as assoc:
        responses = assoc.send_c_move(
            _retrieve_identifier(study_uid), destination, StudyRootQueryRetrieveInformationModelMove
        )
        return _follow(assoc, node, responses, "C-MOVE", cancel, received)


# ------------------------------------------------------------------ C-STORE
def _header(path: Path) -> tuple[UID, UID, str]:
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
        return UID(ds.SOPClassUID), UID(ds.file_meta.TransferSyntaxUID), str(ds.SOPInstanceUID)
    except (InvalidDicomError, AttributeError, OSError, KeyError) as exc:
        raise ValueError(f"{path}: not a DICOM file with a SOP class and instance ({exc})") from exc


def store_files(
    local: LocalAE,
    node: RemoteNode,
    files: Iterable[Path],
    progress: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> StoreReport:
    """C-STORE DICOM files to ``node``; per-file failures are reported, not raised."""
    report = StoreReport()
    items: list[tuple[Path, UID, UID, str]] = []
    for p in files:
        try:
            items.append((Path(p), *_header(Path(p))))
        except ValueError as exc:
            report.problems.append(str(exc))
    if not items:
        return report
    ae = make_ae(local, node)
    for cls, ts in sorted({(c, t) for _, c, t, _ in items}):
        ae.add_requested_context(cls, [ts] + ([] if ts == "1.2.840.10008.1.2.1" else ["1.2.840.10008.1.2.1"]))
    with associate(ae, local, node) as assoc:
        for i, (path, _cls, _ts, sop) in enumerate(items):
            if cancel is not None and cancel.is_set():
                report.problems.append("cancelled before all files were sent")
                break
            if progress:
                progress(i, len(items), path.name)
            try:
                status = assoc.send_c_store(path)
            except ValueError as exc:  # no accepted context for this class / syntax
                report.problems.append(f"{path.name}: {exc}")
                continue
            _check_alive(assoc, node, "C-STORE")
            code = int(getattr(status, "Status", -1)) if status else -1
            if code in (0x0000, 0xB000, 0xB007, 0xB006):
                report.sent.append(sop)
            elif code == -1:
                raise PeerError(node.describe(), f"no C-STORE response within {node.timeout_s:g} s (timeout)")
            else:
                comment = _text(status, "ErrorComment")
                report.problems.append(
                    f"{path.name}: refused by {node.describe()} (status {code:#06x}"
                    + (f": {comment})" if comment else ")")
                )
        if progress:
            progress(len(items), len(items), "")
    return report
