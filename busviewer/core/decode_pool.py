"""Decoding untrusted pixel data in decoder processes, so a native abort costs one file.

GDCM (and in principle any C/C++ codec) can abort or crash the whole process on a
malformed file; an exception handler cannot catch that. :class:`DecoderPool` keeps a
few long-lived decoder processes (``spawn`` start method: safe next to Qt and torch
threads). Each request sends a path; the decoder runs :func:`imageio.read_image_here`,
writes the frames into a shared-memory block and answers with the metadata; the caller
maps that block (Linux: no copy) and unlinks it. The caller
waits with a watchdog:

* the decoder died (abort, segfault, OOM kill) -> ``ImageReadError(path, "decoder crashed
  on this file (SIGABRT)")``, and a fresh decoder takes its place;
* no answer within the time limit (30 s + 10 s per MB of CPU time by default, or three
  times that in wall-clock time, so a busy machine does not make slow files look hung)
  -> the decoder is killed and ``ImageReadError(path, "decoder did not finish ...")``.

Which files go to a decoder (``BUSVIEWER_DECODE_ISOLATION``): ``native`` (default) sends
DICOM files whose pixel data need a native codec (every compressed transfer syntax);
uncompressed DICOM and PNG/JPEG/BMP/TIFF files (numpy / Pillow) are decoded in the
caller. ``all`` sends every file, ``off`` none. A daemonic process (a DataLoader worker)
may not start processes, so it decodes in place, after the same header checks. A decoder's stderr (GDCM's messages) goes
to the application log file, not the terminal.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import mmap
import multiprocessing as mp
import os
import signal
import threading
import time
from dataclasses import replace
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np

from busviewer.core.imageio import DecodedImage, ImageReadError

__all__ = [
    "ISOLATION_ENV",
    "DecoderPool",
    "configure_default_pool",
    "default_pool",
    "isolation_mode",
    "wants_isolation",
]

log = logging.getLogger(__name__)

ISOLATION_ENV = "BUSVIEWER_DECODE_ISOLATION"
_MODES = ("native", "all", "off")
_MEMORY_LIMIT = 16 * 1024**3  # address-space cap of a decoder process (Linux)
_in_decoder = False  # True inside a decoder process: never delegate again
_START_TIMEOUT_S = 300.0  # a fresh decoder imports numpy/pydicom; generous for loaded machines
_WATCH_INTERVAL_S = 0.25
_WALL_FACTOR = 3.0
try:
    _CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):
    _CLOCK_TICKS = 100.0


def isolation_mode() -> str:
    """``native``, ``all`` or ``off`` (from ``BUSVIEWER_DECODE_ISOLATION``; default ``native``)."""
    mode = os.environ.get(ISOLATION_ENV, "native").strip().lower() or "native"
    return mode if mode in _MODES else "native"


def wants_isolation(path: Path) -> bool:
    """True when ``path`` should be decoded in a decoder process (see the module docstring)."""
    mode = isolation_mode()
    if _in_decoder or mode == "off":
        return False
    if mp.current_process().daemon:  # e.g. a DataLoader worker: may not start processes
        _warn_daemon()
        return False
    if mode == "all":
        return True
    from pydicom.uid import UID

    from busviewer.core import dicom_decode

    try:
        if not path.is_file() or not dicom_decode.is_dicom_file(path):
            return False
        ds, _ = dicom_decode.read_dataset(path, stop_before_pixels=True)
        tsyntax = ds.file_meta.get("TransferSyntaxUID")
        return tsyntax is None or bool(UID(str(tsyntax)).is_compressed)
    except Exception:  # noqa: BLE001 - the in-process reader reports the problem itself
        return False


_warned_daemon = False


def _warn_daemon() -> None:
    global _warned_daemon
    if not _warned_daemon:
        _warned_daemon = True
        log.warning(
            "decoding in this daemonic process (it may not start decoder processes); "
            "a native decoder crash would end it"
        )


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return None


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


# --------------------------------------------------------------------------- decoder side


def _quiet_stderr(log_path: str | None) -> None:
    """Send this process's fd 2 (C/C++ codec messages) to the log file, else /dev/null."""
    target = os.devnull
    if log_path:
        try:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            target = log_path
        except OSError:
            target = os.devnull
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    except OSError:
        pass


def _limit_memory() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = _MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(_MEMORY_LIMIT, hard)
        if soft == resource.RLIM_INFINITY or soft > cap:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, ValueError, OSError):
        pass


def _decoder_main(conn: Connection, header_checks: bool, log_path: str | None) -> None:
    """Loop of a decoder process: ``(path,)`` in, ``("ok", shm, shape, image)`` or ``("error", reason)`` out."""
    global _in_decoder
    _in_decoder = True
    _quiet_stderr(log_path)
    _limit_memory()
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s decoder[{os.getpid()}] %(name)s %(message)s")
    logging.captureWarnings(True)
    from busviewer.core import dicom_checks, imageio

    dicom_checks.set_enabled(header_checks)
    counter = itertools.count()
    try:
        conn.send(("ready",))
    except (OSError, ValueError):
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if msg is None:
            return
        path = Path(msg[0])
        try:  # the caller tells "died before taking the file" from "crashed on it" by this
            conn.send(("took",))
        except (OSError, ValueError):
            return
        try:
            img = imageio.read_image_here(path)
            frames = np.ascontiguousarray(img.frames, dtype=np.uint8)
            name = f"bvdec{os.getpid()}x{next(counter)}"
            shm = SharedMemory(name=name, create=True, size=max(1, frames.nbytes))
            # The caller unlinks the block; keep this process's tracker from doing it too.
            resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
            view = np.ndarray(frames.shape, np.uint8, buffer=shm.buf)
            view[...] = frames
            del view
            shm.close()
            reply: tuple[Any, ...] = ("ok", name, frames.shape, replace(img, frames=np.empty((0,), np.uint8)))
        except ImageReadError as exc:
            reply = ("error", exc.reason)
        except MemoryError:
            reply = ("error", "not enough memory to decode the image")
        except Exception as exc:  # noqa: BLE001 - everything becomes a per-file reason
            reply = ("error", f"unexpected error in the decoder ({type(exc).__name__}: {exc})")
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return


# --------------------------------------------------------------------------- caller side


class _StartFailed(Exception):
    """A decoder process died or hung before it was ready (e.g. an unimportable __main__)."""


def _read_here(p: Path) -> DecodedImage:
    from busviewer.core.imageio import read_image_here

    return read_image_here(p)


class _Decoder:
    """One decoder process and the caller's end of its pipe."""

    def __init__(self, ctx: Any, header_checks: bool, log_path: str | None) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_decoder_main, args=(child, header_checks, log_path), name="busviewer-decoder", daemon=True
        )
        self.process.start()
        child.close()
        self.ready = False

    def stop(self, kill: bool) -> None:
        if kill:
            self.process.kill()
        else:
            with contextlib.suppress(OSError, ValueError):
                self.conn.send(None)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()


def _take_frames(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The decoder's frames; on Linux mapped in place (no copy), elsewhere copied out."""
    count = int(np.prod(shape))
    posix = Path("/dev/shm") / name
    if count and posix.is_file():
        with posix.open("r+b") as f:
            mapped = mmap.mmap(f.fileno(), count)
        posix.unlink()  # the mapping lives on until the array is freed
        return np.frombuffer(mapped, np.uint8, count=count).reshape(shape)
    shm = SharedMemory(name=name)
    try:
        return np.ndarray(shape, np.uint8, buffer=shm.buf).copy()
    finally:
        shm.close()
        shm.unlink()


class DecoderPool:
    """A few decoder processes behind a thread-safe :meth:`read` (see the module docstring).

    ``workers``: decoder processes at most (started on demand). ``timeout_s``: a fixed
    limit per file in CPU seconds (wall-clock: three times that; default 30 s + 10 s per
    MB). ``header_checks=False`` switches off
    :mod:`busviewer.core.dicom_checks` in the decoders (to measure the isolation alone).
    """

    def __init__(
        self,
        workers: int = 2,
        timeout_s: float | None = None,
        header_checks: bool = True,
        log_path: str | Path | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.timeout_s = timeout_s
        self.header_checks = header_checks
        self.log_path = str(log_path) if log_path is not None else _default_log_path()
        self._ctx = mp.get_context("spawn")
        self._idle: list[_Decoder] = []
        self._all: set[_Decoder] = set()
        self._cond = threading.Condition()
        self._closed = False
        self.restarts = 0
        #: Why decoder processes cannot be started here (then files are decoded in place).
        self.broken: str | None = None

    def timeout_for(self, path: Path) -> float:
        """The time limit for decoding ``path``."""
        if self.timeout_s is not None:
            return self.timeout_s
        try:
            mb = path.stat().st_size / 1e6
        except OSError:
            mb = 0.0
        return min(900.0, 30.0 + 10.0 * mb)

    def _acquire(self) -> _Decoder:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("decoder pool is closed")
                if self._idle:
                    return self._idle.pop()
                if len(self._all) < self.workers:
                    decoder = _Decoder(self._ctx, self.header_checks, self.log_path)
                    self._all.add(decoder)
                    return decoder
                self._cond.wait()

    def _release(self, decoder: _Decoder, healthy: bool) -> None:
        if not healthy:
            decoder.stop(kill=True)
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(decoder)
            else:
                self._all.discard(decoder)
                if not healthy:
                    self.restarts += 1
            self._cond.notify()
        if healthy and self._closed:
            decoder.stop(kill=False)

    def read(self, path: str | os.PathLike[str]) -> DecodedImage:
        """Decode ``path`` in a decoder process; every failure is an :class:`ImageReadError`."""
        p = Path(path)
        reply = None
        for attempt in (1, 2):
            try:
                reply = self._attempt(p)
                break
            except BrokenPipeError:  # the decoder had died while idle: once more with a fresh one
                if attempt == 2:
                    raise ImageReadError(p, "decoder process stopped before it could take the file") from None
            except _StartFailed as exc:  # no isolation to be had here: decode in this process
                self.broken = str(exc)
                log.warning(
                    "%s; decoding in the calling process from now on (a native decoder crash would end it)", exc
                )
                break
        if reply is None:
            return _read_here(p)
        if reply[0] == "error":
            raise ImageReadError(p, reply[1])
        _, name, shape, img = reply
        try:
            frames = _take_frames(name, tuple(shape))
        except (OSError, ValueError) as exc:
            raise ImageReadError(p, f"decoder result lost ({exc})") from exc
        return replace(img, path=p, frames=frames)

    def _attempt(self, p: Path) -> tuple[Any, ...] | None:
        """One request to an idle decoder; None when decoders cannot be had (``broken``)."""
        if self.broken:
            return None
        decoder = self._acquire()
        healthy = False
        try:
            # Died while idle (killed from outside)? An idle decoder never writes, so its
            # pipe being readable means it is gone.
            if not decoder.process.is_alive() or (decoder.ready and decoder.conn.poll(0)):
                raise BrokenPipeError
            reply = self._ask(decoder, p)  # BrokenPipeError on send: it died in the meantime
            healthy = True
            return reply
        finally:
            self._release(decoder, healthy)

    def _recv(self, decoder: _Decoder, p: Path) -> tuple[Any, ...]:
        try:
            return decoder.conn.recv()
        except (EOFError, OSError):
            decoder.process.join(timeout=5)
            code = decoder.process.exitcode
            log.info("decoder process %s died on %s (%s)", decoder.process.pid, p, _describe_exit(code))
            raise ImageReadError(p, f"decoder crashed on this file ({_describe_exit(code)})") from None

    def _ask(self, decoder: _Decoder, p: Path) -> tuple[Any, ...]:
        if not decoder.ready:
            started = decoder.conn.poll(_START_TIMEOUT_S)
            try:
                if not started:
                    raise EOFError
                decoder.conn.recv()
            except (EOFError, OSError):
                decoder.process.kill()
                decoder.process.join(timeout=5)
                raise _StartFailed(
                    f"a decoder process could not start ({_describe_exit(decoder.process.exitcode)})"
                ) from None
            decoder.ready = True
        limit = self.timeout_for(p)
        decoder.conn.send((str(p),))  # BrokenPipeError: the decoder died earlier
        try:  # no "took": it died before it read the path (e.g. killed while idle)
            took = decoder.conn.poll(_START_TIMEOUT_S) and decoder.conn.recv() == ("took",)
        except (EOFError, OSError):
            took = False
        if not took:
            decoder.process.kill()
            raise BrokenPipeError
        pid = decoder.process.pid or 0
        cpu0, t0 = _cpu_seconds(pid), time.monotonic()
        while not decoder.conn.poll(_WATCH_INTERVAL_S):
            cpu = _cpu_seconds(pid)
            used = cpu - cpu0 if cpu is not None and cpu0 is not None else None
            wall = time.monotonic() - t0
            if (used is not None and used > limit) or wall > (_WALL_FACTOR if used is not None else 1.0) * limit:
                decoder.process.kill()
                spent = f"{used:.0f} s of CPU time, {wall:.0f} s in all" if used is not None else f"{wall:.0f} s"
                raise ImageReadError(
                    p, f"decoder did not finish within its time limit ({spent}; hung on this file); stopped"
                )
        return self._recv(decoder, p)

    @property
    def pids(self) -> list[int]:
        """Process ids of the running decoders."""
        with self._cond:
            return [d.process.pid for d in self._all if d.process.pid is not None]

    def close(self) -> None:
        """Stop every decoder (busy ones when their current file is done)."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for decoder in idle:
            decoder.stop(kill=False)
            with self._cond:
                self._all.discard(decoder)

    def __enter__(self) -> DecoderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _default_log_path() -> str | None:
    try:
        from busviewer.core.applog import log_file

        return str(log_file())
    except Exception:  # noqa: BLE001 - no writable data folder: decoders' stderr is discarded
        return None


_default: DecoderPool | None = None
_default_pid: int | None = None
_default_lock = threading.Lock()


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def default_pool() -> DecoderPool:
    """The process-wide pool (a forked child gets its own, never its parent's decoders)."""
    global _default, _default_pid
    with _default_lock:
        if _default is None or _default_pid != os.getpid():
            _default = DecoderPool(workers=_default_workers())
            _default_pid = os.getpid()
            atexit.register(_default.close)
        return _default


def configure_default_pool(
    workers: int | None = None, timeout_s: float | None = None, header_checks: bool = True
) -> DecoderPool:
    """Replace the process-wide pool (its decoders are stopped) with one made this way."""
    global _default, _default_pid
    pool = DecoderPool(workers=workers or _default_workers(), timeout_s=timeout_s, header_checks=header_checks)
    with _default_lock:
        old = _default if _default_pid == os.getpid() else None
        _default, _default_pid = pool, os.getpid()
        atexit.register(pool.close)
    if old is not None:
        old.close()
        atexit.unregister(old.close)
    return pool
