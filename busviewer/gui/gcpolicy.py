"""Python's cyclic garbage collection runs on the GUI thread only while workers run.

The cyclic GC runs in whichever thread allocates when a generation's threshold is crossed.
If that is a worker and the garbage holds a PySide wrapper that owns a QObject (a menu,
a pyqtgraph item, a dialog caught in a cycle with a closure), ``QObject::~QObject`` runs
in the worker, takes Qt's locks and calls back into Python for the GIL, while the GUI
thread holds the GIL and waits for those locks: a deadlock (issue 18). The worker does
not have to know the object; any GUI garbage will do.

So while any worker may run Python code, automatic collection is off and a timer on the
GUI thread collects instead (same thresholds; full collections at most every
:data:`FULL_EVERY_S`). When every pool is idle again the previous setting comes back.
Code that runs in a worker must never call :func:`gc.collect` itself.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer

TICK_MS = 100
FULL_EVERY_S = 10.0


class _Collector(QObject):
    """Lives on the GUI thread for the rest of the process (a module global keeps it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("busviewer-gc")
        self.busy: Callable[[], bool] = lambda: False
        self.held = False
        self.was_enabled = True
        self.last_full = time.monotonic()
        self.collections = 0
        self.timer = QTimer(self)
        self.timer.setObjectName("busviewer-gc-timer")
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.tick)

    def hold(self, busy: Callable[[], bool]) -> None:
        self.busy = busy
        if not self.held:
            self.was_enabled = gc.isenabled()
            self.held = True
        gc.disable()
        if not self.timer.isActive():
            self.timer.start()

    def tick(self) -> None:
        if gc.isenabled():  # someone turned it back on (a library restoring "its" state)
            gc.disable()
        self.collect_due()
        if not self.busy():
            self.release()

    def collect_due(self) -> None:
        """What the automatic collector would do now, minus too-frequent full collections."""
        t0, t1, t2 = gc.get_threshold()
        c0, c1, c2 = gc.get_count()
        if t0 <= 0 or c0 <= t0:
            return
        gen = 0
        if c1 > t1:
            gen = 1
            if c2 > t2 and time.monotonic() - self.last_full >= FULL_EVERY_S:
                gen = 2
                self.last_full = time.monotonic()
        gc.collect(gen)
        self.collections += 1

    def release(self) -> None:
        self.timer.stop()
        if self.held and self.was_enabled:
            gc.enable()
        self.held = False


_COLLECTOR: _Collector | None = None


def hold(busy: Callable[[], bool]) -> None:
    """Turn automatic collection off until ``busy()`` is false (checked on the GUI thread).

    Call on the GUI thread before a worker starts: from then on only the GUI thread collects.
    """
    global _COLLECTOR
    app = QCoreApplication.instance()
    if app is None or QThread.currentThread() is not app.thread():
        raise RuntimeError("background work must be started from the GUI thread")
    if _COLLECTOR is None:
        _COLLECTOR = _Collector()
    _COLLECTOR.hold(busy)


def holding() -> bool:
    """Is automatic collection held off for workers right now?"""
    return _COLLECTOR is not None and _COLLECTOR.held


def collections() -> int:
    """Collections made by the GUI-thread timer so far (for tests and diagnostics)."""
    return 0 if _COLLECTOR is None else _COLLECTOR.collections


def _after_fork_in_child() -> None:
    # A forked child (e.g. a DataLoader worker) has no Qt event loop to collect for it.
    if _COLLECTOR is not None and _COLLECTOR.held and _COLLECTOR.was_enabled:
        gc.enable()


os.register_at_fork(after_in_child=_after_fork_in_child)
