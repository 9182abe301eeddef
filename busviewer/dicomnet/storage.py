"""Receiving DICOM instances: the storage SOP classes accepted, writing each received
instance whole, and the storage SCP (the listener) that C-STORE pushes and C-MOVE use."""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pydicom.uid import JPEGLossless as JPEGLosslessP14
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from busviewer.dicomnet.nodes import LocalAE

log = logging.getLogger(__name__)

#: Ultrasound and other image storage classes fetched by C-GET (with every syntax we decode).
IMAGE_STORAGE = (
    "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image
    "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image (retired)
    "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image (retired)
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture
)
#: Structured reports (sent back by busviewer or others), fetched uncompressed.
OTHER_STORAGE = (
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
)
IMAGE_TRANSFER_SYNTAXES = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessP14,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class ReceivedFile:
    """One instance written whole to ``path``."""

    path: Path
    sop_uid: str
    study_uid: str
    sop_class_uid: str
    patient_id: str
    peer: str
    is_image: bool


def peer_of(event: Any) -> str:
    """``AE@host:port`` of the association's requestor."""
    r = event.assoc.requestor
    return f"{str(r.ae_title).strip()}@{r.address}:{r.port}"


def _uid(ds: Any, keyword: str) -> str:
    value = str(ds.get(keyword) or "").strip()
    if not value or len(value) > 64 or not _UID.match(value):
        raise ValueError(f"{keyword} missing or not a valid UID ({value[:70]!r})")
    return value


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename: readers see
    the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-", suffix=".dcm")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_received(event: Any, folder: Path, peer: str) -> ReceivedFile:
    """Check the dataset of a C-STORE request and write it to ``folder/<study>/<sop>.dcm``.

    ValueError (the dataset is malformed: unparsable, or without valid SOP class / instance /
    study UIDs, or of another class than its presentation context) writes nothing."""
    try:
        ds = event.dataset
        for _elem in ds:  # parse every element: a malformed stream fails here, not later
            pass
        sop, study, cls = _uid(ds, "SOPInstanceUID"), _uid(ds, "StudyInstanceUID"), _uid(ds, "SOPClassUID")
        patient = str(ds.get("PatientID") or "")
        is_image = "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a malformed dataset
        raise ValueError(f"malformed dataset ({type(exc).__name__}: {exc})") from exc
    if "Image Storage" in UID(cls).name and not is_image:
        raise ValueError("an image without pixel data (truncated or malformed dataset)")
    if cls != str(event.context.abstract_syntax):
        raise ValueError(f"SOP Class UID {cls} differs from the presentation context's {event.context.abstract_syntax}")
    path = folder / study / f"{sop}.dcm"
    write_bytes_atomic(path, bytes(event.encoded_dataset()))
    return ReceivedFile(path, sop, study, cls, patient, peer, is_image)


class StorageServer:
    """A C-STORE SCP on the local AE's port. ``on_file`` (on pynetdicom's thread) gets each
    whole file; ``on_problem`` gets a message naming the peer for each refused dataset."""

    def __init__(
        self,
        local: LocalAE,
        folder: Path,
        on_file: Callable[[ReceivedFile], None],
        on_problem: Callable[[str], None],
        host: str | None = None,
    ) -> None:
        self.local = local
        self.folder = Path(folder)
        self.on_file = on_file
        self.on_problem = on_problem
        self.host = host if host is not None else local.host
        self._server: Any = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._server is not None

    def _handle_store(self, event: Any) -> int:
        peer = peer_of(event)
        try:
            rec = write_received(event, self.folder, peer)
        except ValueError as exc:
            self.on_problem(f"refused a dataset pushed by {peer}: {exc}")
            return 0xC210  # cannot understand
        except OSError as exc:
            self.on_problem(f"could not save a dataset pushed by {peer}: {exc.strerror or exc}")
            return 0xA700  # out of resources
        try:
            self.on_file(rec)
        except Exception as exc:  # noqa: BLE001 - the file is safe on disk; report, do not fail the peer
            self.on_problem(f"{rec.path}: received from {peer} but not queued for import ({exc})")
        return 0x0000

    def start(self) -> None:
        """Listen (OSError naming the port when it is taken)."""
        with self._lock:
            if self._server is not None:
                return
            ae = AE(ae_title=self.local.ae_title)
            ae.require_called_aet = True
            ae.add_supported_context("1.2.840.10008.1.1")  # Verification
            for cx in AllStoragePresentationContexts:
                if cx.abstract_syntax is not None:  # always set in pynetdicom's list
                    ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
            try:
                self._server = ae.start_server(
                    (self.host, int(self.local.port)),
                    block=False,
                    evt_handlers=[(evt.EVT_C_STORE, self._handle_store), (evt.EVT_C_ECHO, lambda _e: 0x0000)],
                )
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"cannot listen on port {self.local.port} ({exc.strerror or exc}; is another listener running?)",
                ) from exc
            log.info("listening as %s on port %s", self.local.ae_title, self.local.port)

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
