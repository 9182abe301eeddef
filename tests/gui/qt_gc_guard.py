"""Catch QObjects finalised outside the GUI thread, and make the cyclic GC try hard to do it.

:class:`FinalisationRecorder` attaches a :func:`weakref.finalize` to every PySide QObject
wrapper it sees (shiboken's list of live wrappers, read when installed, at the start of
every cyclic collection in any thread, and every 50 ms on the GUI thread). The finalizer runs in the
thread that frees the wrapper, which is the thread where a Python-owned QObject's C++
destructor runs: a QObject freed by a worker (issue 18's deadlock) is recorded with that
thread's name. It also counts cyclic collections that start outside the GUI thread.

:class:`ForcedWorkerGC` is the stress part: very low GC thresholds, so any thread that
allocates (a worker importing matplotlib, a training step) collects almost at once, while
a GUI-thread timer keeps making cyclic garbage of menus, actions and widgets, the kind the
worker's collection would free.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections import Counter
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QWidget


class FinalisationRecorder:
    """Records the thread in which each QObject wrapper is finalised (install on the GUI thread)."""

    SCAN_MS = 50

    def __init__(self) -> None:
        self.gui_ident = threading.get_ident()
        self.tracked: dict[int, weakref.finalize] = {}
        self.finalised = 0
        self.off_gui: list[str] = []
        self.worker_collections: Counter[str] = Counter()
        self._timer: QTimer | None = None

    # ------------------------------------------------------------------ tracking
    def track(self, obj: QObject) -> None:
        oid = id(obj)
        if oid in self.tracked:
            return
        try:
            fin = weakref.finalize(obj, self._finalised, oid, type(obj).__qualname__)
        except TypeError:  # not weak-referenceable
            return
        fin.atexit = False
        self.tracked[oid] = fin

    def scan(self) -> None:
        """Track every live QObject wrapper. Shiboken's own list of wrappers, not
        ``gc.get_objects()``: that one holds every object for a moment, e.g. a tuple another
        thread is halfway through building and is about to resize (a SystemError there)."""
        for obj in shiboken6.getAllValidWrappers():
            if isinstance(obj, QObject):
                self.track(obj)

    def _finalised(self, oid: int, name: str) -> None:
        if self.tracked.pop(oid, None) is None:  # a second finalizer from a racing scan
            return
        self.finalised += 1
        if threading.get_ident() != self.gui_ident:
            self.off_gui.append(f"{name} in thread {threading.current_thread().name!r}")

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase != "start":
            return
        if threading.get_ident() != self.gui_ident:  # what the GUI thread frees is fine
            self.worker_collections[threading.current_thread().name] += 1
            self.scan()

    # ------------------------------------------------------------------ lifecycle
    def install(self) -> None:
        self.scan()
        gc.callbacks.append(self._on_gc)
        self._timer = QTimer()
        self._timer.setObjectName("busviewer-test-finalisation-scan")
        self._timer.setInterval(self.SCAN_MS)
        self._timer.timeout.connect(self.scan)
        self._timer.start()

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        for fin in list(self.tracked.values()):
            fin.detach()
        self.tracked.clear()


class ForcedWorkerGC:
    """Low GC thresholds plus GUI-thread churn of menus/widgets in reference cycles."""

    THRESHOLDS = (100, 2, 2)
    CHURN_MS = 50

    def __init__(self, recorder: FinalisationRecorder) -> None:
        self.recorder = recorder
        self.churned = 0
        self._saved = gc.get_threshold()
        self._timer: QTimer | None = None

    def _churn(self) -> None:
        menu = QMenu()
        for i in range(3):
            menu.addAction(QAction(f"action {i}", menu))
        widget = QWidget()
        holder: dict[str, Any] = {"menu": menu, "widget": widget}
        holder["self"] = holder  # a cycle: only the cyclic GC frees these
        menu.holder = holder  # type: ignore[attr-defined]
        for obj in (menu, widget, *menu.actions()):
            self.recorder.track(obj)
        self.churned += 1

    def start(self) -> None:
        gc.set_threshold(*self.THRESHOLDS)
        self._timer = QTimer()
        self._timer.setObjectName("busviewer-test-gc-churn")
        self._timer.setInterval(self.CHURN_MS)
        self._timer.timeout.connect(self._churn)
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        gc.set_threshold(*self._saved)
