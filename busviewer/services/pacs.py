"""PACS use cases: test a node, query it, retrieve a study into the store, send files, and
the listener that imports pushed studies.

Received instances are written whole into a staging folder, moved to
``<data dir>/dicom/<Study UID>/<SOP UID>.dcm`` (where network imports live) and imported
with :func:`busviewer.core.importer.import_paths` like any file (duplicates skipped). A
retrieve that ends early (peer abort, timeout, cancel) imports the whole instances it got
and says what is missing; a file the importer cannot read moves to ``dicom/rejected``
with its reason beside it, so nothing received is lost.
"""

from __future__ import annotations

import hashlib
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from busviewer.core import paths
from busviewer.core.imageio import sha256_file
from busviewer.core.importer import ImportProgress, ImportReport, import_paths
from busviewer.core.store import Store
from busviewer.dicomnet import dimse, web
from busviewer.dicomnet.dimse import FindResult, Query, StoreReport
from busviewer.dicomnet.errors import PeerError, RetrieveIncomplete
from busviewer.dicomnet.nodes import LocalAE, NetworkSettings, RemoteNode, load_settings, save_settings
from busviewer.dicomnet.storage import ReceivedFile, StorageServer

__all__ = [
    "FindResult",
    "Listener",
    "ListenerEvent",
    "NetworkSettings",
    "PeerError",
    "Query",
    "RemoteNode",
    "RetrieveReport",
    "StoreReport",
    "echo",
    "find",
    "load_settings",
    "received_dir",
    "retrieve",
    "save_settings",
    "send_files",
]

Progress = Callable[[int, int, str], None]


def received_dir() -> Path:
    """Where instances received from the network are kept (the store refers to them)."""
    p = paths.data_dir() / "dicom"
    p.mkdir(parents=True, exist_ok=True)
    return p


@dataclass
class RetrieveReport:
    """What a retrieve brought: instances received, the import, and why it ended early."""

    node: str
    study_uid: str
    received: int = 0
    imported: ImportReport = field(default_factory=ImportReport)
    incomplete: str | None = None
    rejected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.received} instance(s) received from {self.node}; import: {self.imported.summary()}"
        if self.rejected:
            text += f"; {len(self.rejected)} kept in {received_dir() / 'rejected'} (not importable)"
        return text + (f"; INCOMPLETE: {self.incomplete}" if self.incomplete else "")


# ------------------------------------------------------------------ echo / find / send
def echo(settings: NetworkSettings, node_name: str) -> float:
    """Test ``node_name`` (C-ECHO, or a QIDO-RS request); round trip in seconds."""
    node = settings.node(node_name)
    return web.echo(node) if node.transport == "dicomweb" else dimse.echo(settings.local, node)


def find(settings: NetworkSettings, node_name: str, query: Query, level: str = "STUDY") -> list[FindResult]:
    node = settings.node(node_name)
    if node.transport == "dicomweb":
        return web.find(node, query, level)
    return dimse.find(settings.local, node, query, level)


def send_files(
    settings: NetworkSettings,
    node_name: str,
    files: Iterable[Path],
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> StoreReport:
    """Send DICOM files (C-STORE or STOW-RS)."""
    node = settings.node(node_name)
    if node.transport == "dicomweb":
        return web.store_files(node, files, progress)
    return dimse.store_files(settings.local, node, files, progress, cancel)


# ------------------------------------------------------------------ retrieve
def retrieve(
    store: Store,
    settings: NetworkSettings,
    node_name: str,
    study_uid: str,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> RetrieveReport:
    """Retrieve a study (C-GET, C-MOVE to this workstation, or WADO-RS) and import it.

    ``progress(done, total, text)``; ``cancel.is_set()`` stops the transfer (whole
    instances received so far are imported). Raises PeerError when nothing could be had."""
    node = settings.node(node_name)
    report = RetrieveReport(node.describe(), study_uid)
    got: list[ReceivedFile] = []

    def on_file(rec: ReceivedFile) -> None:
        got.append(rec)
        if progress:
            progress(len(got), 0, f"received {len(got)} instance(s)")

    staging_root = received_dir() / ".staging"
    staging_root.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=staging_root, prefix="retrieve-"))
    try:
        try:
            if node.transport == "dicomweb":
                web.get_study(node, study_uid, staging, on_file, cancel)
            elif node.retrieve == "move":
                _move(settings.local, node, study_uid, staging, on_file, cancel)
            else:
                dimse.get_study(settings.local, node, study_uid, staging, on_file, cancel)
        except RetrieveIncomplete as exc:
            if not got:
                raise
            report.incomplete = exc.reason + (
                f" ({len(got)} of {exc.expected} instance(s) received)" if exc.expected else ""
            )
        report.received = len(got)
        _land_and_import(store, got, report, progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _move(
    local: LocalAE,
    node: RemoteNode,
    study_uid: str,
    staging: Path,
    on_file: Callable[[ReceivedFile], None],
    cancel: threading.Event | None,
) -> None:
    """C-MOVE to this workstation: into the running listener, else a temporary one."""
    count = [0]

    def sink(rec: ReceivedFile) -> None:
        count[0] += 1
        on_file(rec)

    listener = Listener.running_on(local.port)
    if listener is not None:
        with listener.divert(study_uid, staging, sink):
            dimse.move_study(local, node, study_uid, local.ae_title, cancel, lambda: count[0])
        return
    problems: list[str] = []
    server = StorageServer(local, staging, sink, problems.append)
    server.start()
    try:
        completed, failed = dimse.move_study(local, node, study_uid, local.ae_title, cancel, lambda: count[0])
    finally:
        server.stop()
    if failed and not count[0]:
        raise RetrieveIncomplete(
            node.describe(),
            f"C-MOVE: {failed} sub-operation(s) failed"
            + (
                f" ({problems[0]})"
                if problems
                else "; does the PACS know this workstation's "
                f"AE title {local.ae_title} with its address and port {local.port}?"
            ),
            0,
            failed,
        )


def _landing_path(rec: ReceivedFile) -> Path:
    """``dicom/<study>/<sop>.dcm``; another name when a different file already has it."""
    target = received_dir() / rec.study_uid / f"{rec.sop_uid}.dcm"
    if target.exists() and sha256_file(target) != sha256_file(rec.path):
        target = target.with_name(f"{rec.sop_uid}-{sha256_file(rec.path)[:12]}.dcm")
    return target


def _reject(path: Path, reason: str) -> Path:
    folder = received_dir() / "rejected"
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    shutil.move(str(path), target)
    target.with_suffix(".reason.txt").write_text(reason + "\n", encoding="utf-8")
    return target


def _land_and_import(store: Store, got: list[ReceivedFile], report: RetrieveReport, progress: Progress | None) -> None:
    landed: list[Path] = []
    for rec in got:
        if not rec.is_image:  # SR, KOS...: kept, not imported (no pixels to review)
            target = received_dir() / rec.study_uid / f"{rec.sop_uid}.dcm"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(rec.path), target)
            continue
        target = _landing_path(rec)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            rec.path.unlink()
        else:
            rec.path.replace(target)
        landed.append(target)

    def on_import(ev: ImportProgress) -> None:
        if progress:
            progress(ev.done, ev.total, f"importing {ev.done} of {ev.total}")

    report.imported = import_paths(store, landed, progress=on_import)
    for problem in report.imported.problems:
        if problem.path.is_file():
            report.rejected.append(f"{_reject(problem.path, problem.reason)}: {problem.reason}")
    for path in landed:  # same SOP already stored from another file: drop the copy
        if path.is_file() and store.find_image(sha256_file(path), path.resolve()) is None:
            path.unlink()


# ------------------------------------------------------------------ the listener
@dataclass(frozen=True)
class ListenerEvent:
    """What the listener reports: ``kind`` is started | imported | problem | stopped."""

    kind: str
    text: str
    patient_key: str | None = None


class Listener:
    """A C-STORE SCP that imports what is pushed to it. :meth:`run` blocks (a CLI's main
    thread or a GUI worker) until ``cancel`` is set; pynetdicom's threads only write whole
    files and queue them, the thread in :meth:`run` imports them."""

    _running: dict[int, Listener] = {}
    _lock = threading.Lock()

    def __init__(self, store: Store, local: LocalAE, folder: Path | None = None) -> None:
        self.store = store
        self.local = local
        self.folder = folder or received_dir()
        self._queue: queue.Queue[ReceivedFile | str] = queue.Queue()
        self._diverted: dict[str, tuple[Path, Callable[[ReceivedFile], None]]] = {}
        self.server = StorageServer(local, self.folder, self._on_file, self._queue.put)

    @classmethod
    def running_on(cls, port: int) -> Listener | None:
        with cls._lock:
            return cls._running.get(int(port))

    def divert(self, study_uid: str, staging: Path, sink: Callable[[ReceivedFile], None]) -> _Divert:
        """While in the ``with`` block, instances of ``study_uid`` go to ``sink`` (a C-MOVE)."""
        return _Divert(self, study_uid, staging, sink)

    def _on_file(self, rec: ReceivedFile) -> None:  # pynetdicom's thread
        diverted = self._diverted.get(rec.study_uid)
        if diverted is not None:
            staging, sink = diverted
            target = staging / rec.path.name
            rec.path.replace(target)
            sink(
                ReceivedFile(
                    target, rec.sop_uid, rec.study_uid, rec.sop_class_uid, rec.patient_id, rec.peer, rec.is_image
                )
            )
            return
        self._queue.put(rec)

    def run(self, cancel: threading.Event, on_event: Callable[[ListenerEvent], None] | None = None) -> None:
        emit = on_event or (lambda _e: None)
        self.server.start()
        with Listener._lock:
            Listener._running[int(self.local.port)] = self
        emit(ListenerEvent("started", f"listening as {self.local.ae_title} on port {self.local.port}"))
        try:
            while not cancel.is_set():
                try:
                    item = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                if isinstance(item, str):
                    emit(ListenerEvent("problem", item))
                else:
                    emit(self._import(item))
        finally:
            with Listener._lock:
                Listener._running.pop(int(self.local.port), None)
            self.server.stop()
            while not self._queue.empty():  # whatever arrived while stopping is imported too
                item = self._queue.get_nowait()
                emit(ListenerEvent("problem", item) if isinstance(item, str) else self._import(item))
            emit(ListenerEvent("stopped", "listener stopped"))

    def _import(self, rec: ReceivedFile) -> ListenerEvent:
        if not rec.is_image:
            return ListenerEvent("imported", f"{rec.path.name} from {rec.peer}: kept (not an image)")
        report = import_paths(self.store, [rec.path])
        if report.problems:
            reason = report.problems[0].reason
            kept = _reject(rec.path, reason) if rec.path.is_file() else rec.path
            return ListenerEvent(
                "problem", f"{rec.peer} sent {rec.sop_uid}, which cannot be imported ({reason}); kept as {kept}"
            )
        patient = next(iter(report.patients), None)
        what = "added" if report.added else "already in the store"
        return ListenerEvent("imported", f"{rec.sop_uid} from {rec.peer}: {what}", patient)


class _Divert:
    def __init__(self, listener: Listener, study_uid: str, staging: Path, sink: Callable[[ReceivedFile], None]) -> None:
        self.listener, self.study_uid, self.staging, self.sink = listener, study_uid, staging, sink

    def __enter__(self) -> _Divert:
        self.listener._diverted[self.study_uid] = (self.staging, self.sink)
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener._diverted.pop(self.study_uid, None)


def content_key(path: Path) -> str:
    """SHA-256 of the decoded pixels (equal for the same image however it was encoded)."""
    from busviewer.core.imageio import read_image

    return hashlib.sha256(read_image(path).frames.tobytes()).hexdigest()
