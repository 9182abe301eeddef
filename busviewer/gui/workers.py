"""Background work for the GUI: small tasks on thread pools with progress and cancel.

A :class:`Task` is a QObject that lives on the GUI thread; its function runs on a pool
thread. The worker only ever *emits* signals of the task; they are delivered, queued, to
the task's own slots on the GUI thread, which then call the plain Python callbacks
(``on_result``, ``on_error``, ``on_progress``, ``on_partial``, ``on_finished``). So every
callback runs on the GUI thread, whatever PySide's rules for lambdas are.

Two pools:

- ``"io"``: :meth:`QThreadPool.globalInstance` (decoding, import, report export, store
  queries under load);
- ``"ai"``: one thread, so torch work (model loading, inference, Grad-CAM, ROI
  classification) is serialised and never runs the same model from two threads.
"""

from __future__ import annotations

import inspect
import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

log = logging.getLogger(__name__)

_AI_POOL: QThreadPool | None = None


def ai_pool() -> QThreadPool:
    """The single-thread pool for torch work (created on first use)."""
    global _AI_POOL
    if _AI_POOL is None:
        _AI_POOL = QThreadPool()
        _AI_POOL.setObjectName("busviewer-ai")
        _AI_POOL.setMaxThreadCount(1)
        _AI_POOL.setExpiryTimeout(60_000)
    return _AI_POOL


def io_pool() -> QThreadPool:
    return QThreadPool.globalInstance()


def all_pools() -> list[QThreadPool]:
    pools = [io_pool()]
    if _AI_POOL is not None:
        pools.append(_AI_POOL)
    return pools


class Cancelled(Exception):
    """Raised inside a task function (via :meth:`TaskContext.check`) when cancelled."""


class TaskContext:
    """What a task function receives as ``ctx``: progress, partial results, cancel."""

    def __init__(self, task: Task) -> None:
        self._task = task
        self.cancel_event = task.cancel_event

    # The Analyzer and importer take ``cancel`` objects with ``is_set()``.
    @property
    def cancel(self) -> threading.Event:
        return self.cancel_event

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()

    def progress(self, done: int, total: int, text: str = "") -> None:
        self._task._sig_progress.emit(int(done), int(total), str(text))

    def partial(self, value: Any) -> None:
        """Hand one streamed result (e.g. a thumbnail) to ``on_partial``."""
        self._task._sig_partial.emit(value)


class _Runnable(QRunnable):
    def __init__(self, task: Task) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._task = task

    def run(self) -> None:  # pool thread
        task = self._task
        result: Any = None
        error: BaseException | None = None
        if task.cancel_event.is_set():
            error = Cancelled()
        else:
            try:
                if task.wants_context:
                    result = task.fn(*task.args, ctx=TaskContext(task), **task.kwargs)
                else:
                    result = task.fn(*task.args, **task.kwargs)
            except BaseException as exc:  # noqa: BLE001 - reported to the GUI thread
                error = exc
                if not isinstance(exc, Cancelled):
                    task.traceback_text = traceback.format_exc()
        task._sig_done.emit(result, error)


class Task(QObject):
    """A unit of background work; signals and callbacks arrive on the GUI thread."""

    progress = Signal(int, int, str)
    partial = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object)
    finished = Signal()

    _sig_progress = Signal(int, int, str)
    _sig_partial = Signal(object)
    _sig_done = Signal(object, object)

    def __init__(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str = "",
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[int, int, str], None] | None = None,
        on_partial: Callable[[Any], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.name = name or getattr(fn, "__name__", "task")
        self.cancel_event = threading.Event()
        self.wants_context = "ctx" in _parameters(fn)
        self.traceback_text = ""
        self.running = False
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self._callbacks = (on_result, on_error, on_progress, on_partial, on_finished)
        self._sig_progress.connect(self._on_progress)
        self._sig_partial.connect(self._on_partial)
        self._sig_done.connect(self._on_done)

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    @Slot(int, int, str)
    def _on_progress(self, done: int, total: int, text: str) -> None:
        if self.cancelled:
            return
        self.progress.emit(done, total, text)
        if self._callbacks[2]:
            self._callbacks[2](done, total, text)

    @Slot(object)
    def _on_partial(self, value: Any) -> None:
        if self.cancelled:
            return
        self.partial.emit(value)
        if self._callbacks[3]:
            self._callbacks[3](value)

    @Slot(object, object)
    def _on_done(self, result: Any, error: Any) -> None:
        self.running = False
        self.done = True
        self.result, self.error = result, error
        on_result, on_error, _, _, on_finished = self._callbacks
        try:
            if error is None:
                # Delivered even after a cancel request: the function chose to return
                # (e.g. a partial import report); callers check that it is still wanted.
                self.succeeded.emit(result)
                if on_result:
                    on_result(result)
            elif not isinstance(error, Cancelled) and not self.cancelled:
                if self.traceback_text:
                    log.debug("task %s failed:\n%s", self.name, self.traceback_text)
                self.failed.emit(error)
                if on_error:
                    on_error(error)
        finally:
            self.finished.emit()
            if on_finished:
                on_finished()
            _RUNNING.discard(self)


#: Tasks not yet finished (keeps their QObjects alive until the result is delivered).
_RUNNING: set[Task] = set()


def _parameters(fn: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def submit(fn: Callable[..., Any], *args: Any, pool: str = "io", **kwargs: Any) -> Task:
    """Run ``fn(*args, **kwargs)`` (plus ``ctx=`` if it takes one) on a pool thread.

    Keyword arguments ``name``, ``on_result``, ``on_error``, ``on_progress``,
    ``on_partial`` and ``on_finished`` configure the task; the rest go to ``fn``.
    """
    task = Task(fn, *args, **kwargs)
    task.running = True
    _RUNNING.add(task)
    (ai_pool() if pool == "ai" else io_pool()).start(_Runnable(task))
    return task


def running_tasks() -> list[Task]:
    return [t for t in _RUNNING if not t.done]


def cancel_all() -> None:
    for task in list(_RUNNING):
        task.cancel()


def wait_all(timeout_ms: int = 30_000) -> bool:
    """Block until every pool is idle (used at shutdown and in tests)."""
    ok = True
    for pool in all_pools():
        ok = pool.waitForDone(timeout_ms) and ok
    return ok


def shutdown(timeout_ms: int = 30_000) -> bool:
    """Cancel every task and wait for the pools (the window's close path)."""
    cancel_all()
    return wait_all(timeout_ms)
