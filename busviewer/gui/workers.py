"""Background work for the GUI: small tasks on thread pools with progress and cancel.

A :class:`Task` is a QObject that lives and dies on the GUI thread; its function runs on a
pool thread as a plain :class:`_Job` (function, arguments, task id, cancel event) that
never refers to the task or to any other QObject. The worker reports through the signals
of one bridge object that is created on the GUI thread and kept for the life of the
process; its slots, on the GUI thread, hand the plain data to the task, which calls the
Python callbacks (``on_result``, ``on_error``, ``on_progress``, ``on_partial``,
``on_finished``). So every callback runs on the GUI thread, and no QObject can be
finalised in a worker (issue 18): :func:`submit` refuses functions and arguments that
carry one, results that are QObjects become errors, callbacks are dropped once delivered
(breaking task -> closure -> widget -> task cycles), and while any worker runs, Python's
cyclic GC only runs on the GUI thread (:mod:`busviewer.gui.gcpolicy`).

Two pools:

- ``"io"``: :meth:`QThreadPool.globalInstance` (decoding, import, report export, store
  queries under load);
- ``"ai"``: one thread, so torch work (model loading, inference, Grad-CAM, ROI
  classification) is serialised and never runs the same model from two threads.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from busviewer.gui import gcpolicy

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


# --------------------------------------------------------------- worker side (plain data)
class _Bridge(QObject):
    """The only QObject a worker touches: made once on the GUI thread, never released, so
    it cannot be finalised in a worker. Emitting from a worker queues the call to the GUI
    thread, where the slots look the task up by id."""

    progress = Signal(int, int, int, str)
    partial = Signal(int, object)
    done = Signal(int, object, object, str)

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("busviewer-workers")
        self.progress.connect(self._on_progress)
        self.partial.connect(self._on_partial)
        self.done.connect(self._on_done)

    @Slot(int, int, int, str)
    def _on_progress(self, task_id: int, done: int, total: int, text: str) -> None:
        task = _RUNNING.get(task_id)
        if task is not None:
            task._deliver_progress(done, total, text)

    @Slot(int, object)
    def _on_partial(self, task_id: int, value: Any) -> None:
        task = _RUNNING.get(task_id)
        if task is not None:
            task._deliver_partial(value)

    @Slot(int, object, object, str)
    def _on_done(self, task_id: int, result: Any, error: Any, tb: str) -> None:
        task = _RUNNING.pop(task_id, None)
        if task is not None:
            task._deliver_done(result, error, tb)


_BRIDGE: _Bridge | None = None


def _bridge() -> _Bridge:
    """The bridge; :func:`submit` makes it on the GUI thread before any worker can ask."""
    global _BRIDGE
    if _BRIDGE is None:
        _BRIDGE = _Bridge()
    return _BRIDGE


class TaskContext:
    """What a task function receives as ``ctx``: progress, partial results, cancel.

    Plain data only (the task's id and cancel event): safe to keep in a worker's closures.
    """

    def __init__(self, task_id: int, cancel_event: threading.Event) -> None:
        self.task_id = task_id
        self.cancel_event = cancel_event

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
        _bridge().progress.emit(self.task_id, int(done), int(total), str(text))

    def partial(self, value: Any) -> None:
        """Hand one streamed result (e.g. a thumbnail) to ``on_partial``."""
        _bridge().partial.emit(self.task_id, value)


@dataclass(frozen=True)
class _Job:
    task_id: int
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    cancel_event: threading.Event
    wants_context: bool


def _run_job(job: _Job) -> None:  # pool thread
    result: Any = None
    error: BaseException | None = None
    tb = ""
    if job.cancel_event.is_set():
        error = Cancelled()
    else:
        try:
            if job.wants_context:
                result = job.fn(*job.args, ctx=TaskContext(job.task_id, job.cancel_event), **job.kwargs)
            else:
                result = job.fn(*job.args, **job.kwargs)
            if isinstance(result, QObject):
                raise TypeError(
                    f"a background task returned a QObject ({type(result).__name__}); "
                    "return plain data and build Qt objects on the GUI thread"
                )
        except BaseException as exc:  # noqa: BLE001 - reported to the GUI thread
            result, error = None, exc
            if not isinstance(exc, Cancelled):
                tb = traceback.format_exc()
            error.__traceback__ = None  # the worker's frames stay here
    _bridge().done.emit(job.task_id, result, error, tb)


class _Runnable(QRunnable):
    def __init__(self, job: _Job) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._job = job

    def run(self) -> None:  # pool thread
        _run_job(self._job)


def qobject_in(value: Any, depth: int = 2) -> str | None:
    """Where ``value`` carries a QObject (itself, a bound method's owner, a closure cell,
    a ``functools.partial`` or container item, ``depth`` levels down), else ``None``."""
    if isinstance(value, QObject):
        return type(value).__name__
    if depth <= 0:
        return None
    inner: list[tuple[str, Any]] = []
    owner = getattr(value, "__self__", None) if callable(value) else None
    if owner is not None and not isinstance(owner, (type, ModuleType)):  # a bound method, Python or C++
        inner.append(("bound to", owner))
    if isinstance(value, functools.partial):
        inner += [
            ("partial", value.func),
            *(("partial arg", a) for a in value.args),
            *(("partial arg", a) for a in value.keywords.values()),
        ]
    for cell in getattr(value, "__closure__", None) or ():
        try:
            inner.append((f"closure of {getattr(value, '__qualname__', 'function')}", cell.cell_contents))
        except ValueError:  # empty cell
            continue
    if isinstance(value, (list, tuple, set, frozenset)):
        inner += [("item", v) for v in value]
    elif isinstance(value, dict):
        inner += [("item", v) for v in value.values()]
    for where, v in inner:
        found = qobject_in(v, depth - 1)
        if found:
            return f"{found} ({where})"
    return None


# ------------------------------------------------------------------ GUI side (the Task)
_IDS = itertools.count(1)


class Task(QObject):
    """A unit of background work; signals and callbacks arrive on the GUI thread."""

    progress = Signal(int, int, str)
    partial = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object)
    finished = Signal()

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
        self.id = next(_IDS)
        self.name = name or getattr(fn, "__name__", "task")
        for what, value in (
            ("function", fn),
            *((f"argument {i + 1}", a) for i, a in enumerate(args)),
            *((f"argument {k}", v) for k, v in kwargs.items()),
        ):
            found = qobject_in(value)
            if found:
                raise TypeError(
                    f"task {self.name!r}: its {what} carries a QObject ({found}); workers take "
                    "plain data only (a QObject finalised in a worker deadlocks the GUI)"
                )
        self.cancel_event = threading.Event()
        self.job = _Job(self.id, fn, args, kwargs, self.cancel_event, "ctx" in _parameters(fn))
        self.traceback_text = ""
        self.running = False
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self._callbacks = (on_result, on_error, on_progress, on_partial, on_finished)

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def _deliver_progress(self, done: int, total: int, text: str) -> None:
        if self.cancelled:
            return
        self.progress.emit(done, total, text)
        if self._callbacks[2]:
            self._callbacks[2](done, total, text)

    def _deliver_partial(self, value: Any) -> None:
        if self.cancelled:
            return
        self.partial.emit(value)
        if self._callbacks[3]:
            self._callbacks[3](value)

    def _deliver_done(self, result: Any, error: Any, tb: str) -> None:
        self.running = False
        self.done = True
        self.result, self.error, self.traceback_text = result, error, tb
        on_result, on_error, _, _, on_finished = self._callbacks
        try:
            if error is None:
                # Delivered even after a cancel request: the function chose to return
                # (e.g. a partial import report); callers check that it is still wanted.
                self.succeeded.emit(result)
                if on_result:
                    on_result(result)
            elif not isinstance(error, Cancelled) and not self.cancelled:
                if tb:
                    log.debug("task %s failed:\n%s", self.name, tb)
                self.failed.emit(error)
                if on_error:
                    on_error(error)
        finally:
            self.finished.emit()
            if on_finished:
                on_finished()
            self._callbacks = (None, None, None, None, None)


#: Tasks not yet delivered, by id (keeps their QObjects alive, on the GUI thread, until then).
_RUNNING: dict[int, Task] = {}


def _parameters(fn: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def busy() -> bool:
    """Is any task undelivered or any pool thread still running?"""
    return bool(_RUNNING) or any(p.activeThreadCount() > 0 for p in all_pools())


def submit(fn: Callable[..., Any], *args: Any, pool: str = "io", **kwargs: Any) -> Task:
    """Run ``fn(*args, **kwargs)`` (plus ``ctx=`` if it takes one) on a pool thread.

    Keyword arguments ``name``, ``on_result``, ``on_error``, ``on_progress``,
    ``on_partial`` and ``on_finished`` configure the task; the rest go to ``fn``. Call on
    the GUI thread; ``fn`` and its arguments must not carry a QObject (``TypeError``).
    """
    task = Task(fn, *args, **kwargs)
    _bridge()
    gcpolicy.hold(busy)
    task.running = True
    _RUNNING[task.id] = task
    (ai_pool() if pool == "ai" else io_pool()).start(_Runnable(task.job))
    return task


def running_tasks() -> list[Task]:
    return [t for t in _RUNNING.values() if not t.done]


def cancel_all() -> None:
    for task in list(_RUNNING.values()):
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
