"""Notice writes to the store by other processes (the CLI, a network listener, another
workstation) so the worklist can refresh without the reader asking.

A SQLite store is watched through its files (every commit touches the ``-wal`` file): no
polling. A server store (PostgreSQL) is polled every few seconds. Either way the check
itself (:func:`busviewer.core.store.changes.change_marker`) runs in a worker, one at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from busviewer.core.store.changes import change_marker
from busviewer.core.store.engine import sqlite_file
from busviewer.gui import workers

POLL_MS = 4000


class StoreWatcher(QObject):
    """Emits ``changed`` after the store's change marker moved (not for the first reading)."""

    changed = Signal()

    def __init__(self, store: Any, parent: QObject | None = None, poll_ms: int = POLL_MS) -> None:
        super().__init__(parent)
        self.store = store
        self.poll_ms = poll_ms
        self.marker: tuple[int, int] | None = None
        self._file: Path | None = sqlite_file(store.url)
        self._fs: QFileSystemWatcher | None = None
        self._timer: QTimer | None = None
        self._pending = False
        self._again = False
        self._running = False

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        if self._file is not None:
            self._fs = QFileSystemWatcher(self)
            self._fs.fileChanged.connect(self.check)
            self._fs.directoryChanged.connect(self._directory_changed)
            self._watch()
        else:
            self._timer = QTimer(self)
            self._timer.setObjectName("busviewer store poll")
            self._timer.timeout.connect(self.check)
            self._timer.start(self.poll_ms)
        self.check()

    def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.stop()
        if self._fs is not None and (self._fs.files() or self._fs.directories()):
            self._fs.removePaths(self._fs.files() + self._fs.directories())

    def _watch(self) -> None:
        """The folder (the -wal file comes and goes) and whichever store files exist now."""
        assert self._fs is not None and self._file is not None
        wanted = [self._file.parent, self._file, self._file.with_name(self._file.name + "-wal")]
        have = set(self._fs.files()) | set(self._fs.directories())
        new = [str(p) for p in wanted if p.exists() and str(p) not in have]
        if new:
            self._fs.addPaths(new)

    def _directory_changed(self, _path: str) -> None:
        self._watch()
        self.check()

    def check(self, *_: Any) -> None:
        """Read the marker in a worker (at most one at a time; a change meanwhile checks again)."""
        if not self._running:
            return
        if self._pending:
            self._again = True
            return
        self._pending = True
        workers.submit(change_marker, self.store, name="store changes", on_result=self._checked, on_error=self._failed)

    def _checked(self, marker: tuple[int, int]) -> None:
        self._pending = False
        before, self.marker = self.marker, marker
        if self._running and before is not None and marker != before:
            self.changed.emit()
        if self._again:
            self._again = False
            self.check()

    def _failed(self, _exc: BaseException) -> None:  # a busy or unreachable store: try on the next change
        self._pending = False
        self._again = False
