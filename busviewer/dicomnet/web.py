"""DICOMweb through dicomweb-client: QIDO-RS (search), WADO-RS (retrieve), STOW-RS (store).

For nodes that only speak HTTP. Failures are :class:`PeerError` naming the node's URL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from busviewer.dicomnet.dimse import FindResult, Query, StoreReport
from busviewer.dicomnet.errors import PeerError, RetrieveIncomplete
from busviewer.dicomnet.nodes import RemoteNode
from busviewer.dicomnet.storage import ReceivedFile, write_bytes_atomic

_STUDY_FIELDS = (
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "StudyDate",
    "StudyDescription",
    "ModalitiesInStudy",
    "AccessionNumber",
    "NumberOfStudyRelatedInstances",
)


def _client(node: RemoteNode) -> Any:
    if node.transport != "dicomweb":
        raise PeerError(node.describe(), "is a DIMSE node; this operation needs DICOMweb")
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=node.url.rstrip("/"), timeout=node.timeout_s)
    # A couple of retries on 429/503-like answers; a refused connection fails at once.
    client.set_http_retry_params(retry=True, max_attempts=2, wait_exponential_multiplier=200)
    return client


@contextmanager
def _peer_errors(node: RemoteNode, what: str) -> Iterator[None]:
    """Turn requests' and dicomweb-client's exceptions into PeerError naming the node."""
    import requests

    try:
        yield
    except PeerError:
        raise
    except requests.exceptions.ConnectTimeout as exc:
        raise PeerError(node.describe(), f"{what}: no connection within {node.timeout_s:g} s (timeout)") from exc
    except requests.exceptions.Timeout as exc:
        raise PeerError(node.describe(), f"{what}: no answer within {node.timeout_s:g} s (timeout)") from exc
    except requests.exceptions.ConnectionError as exc:
        text = str(exc)
        why = (
            "connection refused (is the server running?)"
            if "refused" in text.lower()
            else f"connection failed ({text[:200]})"
        )
        raise PeerError(node.describe(), f"{what}: {why}") from exc
    except requests.exceptions.HTTPError as exc:
        resp = exc.response
        code = resp.status_code if resp is not None else "?"
        reason = resp.reason if resp is not None else str(exc)
        hint = " (check the URL: it should end with the DICOMweb root, e.g. /dicom-web)" if code == 404 else ""
        hint = " (credentials needed)" if code in (401, 403) else hint
        raise PeerError(node.describe(), f"{what}: HTTP {code} {reason}{hint}") from exc
    except (ValueError, TypeError) as exc:  # malformed answers
        raise PeerError(node.describe(), f"{what}: unexpected answer ({exc})") from exc


def _value(item: dict, keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    entry = item.get(f"{tag:08X}") if tag is not None else None
    values = (entry or {}).get("Value") or []
    out = []
    for v in values:
        out.append(v.get("Alphabetic", "") if isinstance(v, dict) else str(v))
    return "\\".join(out)


def echo(node: RemoteNode) -> float:
    """A QIDO-RS request that returns at most one study; the round trip in seconds."""
    import time

    start = time.perf_counter()
    with _peer_errors(node, "QIDO-RS"):
        _client(node).search_for_studies(limit=1)
    return time.perf_counter() - start


def find(node: RemoteNode, query: Query, level: str = "STUDY") -> list[FindResult]:
    """QIDO-RS study search (patient level: the studies grouped by patient)."""
    filters: dict[str, Any] = {}
    for key, value in (
        ("PatientID", query.patient_id),
        ("PatientName", query.patient_name),
        ("StudyDate", query.study_date),
        ("ModalitiesInStudy", query.modality),
        ("StudyInstanceUID", query.study_uid),
    ):
        if value:
            filters[key] = value
    with _peer_errors(node, "QIDO-RS"):
        items = _client(node).search_for_studies(
            search_filters=filters, fields=list(_STUDY_FIELDS), fuzzymatching=False
        )
    studies = [
        FindResult(
            level="STUDY",
            patient_id=_value(i, "PatientID"),
            patient_name=_value(i, "PatientName"),
            study_uid=_value(i, "StudyInstanceUID"),
            study_date=_value(i, "StudyDate"),
            study_description=_value(i, "StudyDescription"),
            modalities=_value(i, "ModalitiesInStudy"),
            accession=_value(i, "AccessionNumber"),
            instances=int(_value(i, "NumberOfStudyRelatedInstances") or 0) or None,
        )
        for i in items
    ]
    if level.upper() != "PATIENT":
        return studies
    patients: dict[str, FindResult] = {}
    for s in studies:
        prev = patients.get(s.patient_id)
        patients[s.patient_id] = FindResult(
            "PATIENT", s.patient_id, s.patient_name, instances=(prev.instances or 0) + 1 if prev else 1
        )
    return list(patients.values())


def get_study(
    node: RemoteNode,
    study_uid: str,
    staging: Path,
    on_file: Callable[[ReceivedFile], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[ReceivedFile]:
    """WADO-RS a study (original transfer syntax where the server allows) into ``staging``."""
    from pydicom.filebase import DicomBytesIO

    files: list[ReceivedFile] = []
    with _peer_errors(node, "WADO-RS"):
        try:
            for ds in _client(node).iter_study(study_uid, media_types=(("application/dicom", "*"),)):
                if cancel is not None and cancel.is_set():
                    raise RetrieveIncomplete(node.describe(), "WADO-RS cancelled", len(files))
                sop = str(ds.SOPInstanceUID)
                buf = DicomBytesIO()
                ds.save_as(buf, enforce_file_format=True)
                path = staging / study_uid / f"{sop}.dcm"
                write_bytes_atomic(path, buf.getvalue())
                rec = ReceivedFile(
                    path,
                    sop,
                    study_uid,
                    str(ds.SOPClassUID),
                    str(ds.get("PatientID") or ""),
                    node.describe(),
                    "PixelData" in ds,
                )
                files.append(rec)
                if on_file is not None:
                    on_file(rec)
        except PeerError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken stream mid-study
            import requests

            if isinstance(exc, (requests.exceptions.RequestException, ValueError, TypeError)) and not files:
                raise
            raise RetrieveIncomplete(
                node.describe(), f"WADO-RS interrupted ({type(exc).__name__}: {exc})", len(files)
            ) from exc
    return files


def store_files(
    node: RemoteNode, files: Iterable[Path], progress: Callable[[int, int, str], None] | None = None
) -> StoreReport:
    """STOW-RS DICOM files to ``node`` (one request per study)."""
    from pydicom import dcmread

    report = StoreReport()
    by_study: dict[str, list[Any]] = {}
    for p in files:
        try:
            ds = dcmread(p)
            by_study.setdefault(str(ds.StudyInstanceUID), []).append(ds)
        except Exception as exc:  # noqa: BLE001 - reported per file
            report.problems.append(f"{Path(p).name}: not sendable ({exc})")
    done = 0
    total = sum(len(v) for v in by_study.values())
    client = _client(node) if by_study else None
    for study, datasets in by_study.items():
        if progress:
            progress(done, total, study)
        with _peer_errors(node, "STOW-RS"):
            answer = client.store_instances(datasets, study_instance_uid=study)  # type: ignore[union-attr]
        failed = {
            str(i.ReferencedSOPInstanceUID): int(i.get("FailureReason", 0)) for i in answer.get("FailedSOPSequence", [])
        }
        for ds in datasets:
            sop = str(ds.SOPInstanceUID)
            if sop in failed:
                report.problems.append(f"{sop}: refused by {node.describe()} (failure reason {failed[sop]:#06x})")
            else:
                report.sent.append(sop)
        done += len(datasets)
    if progress:
        progress(total, total, "")
    return report
