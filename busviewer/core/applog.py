"""The application log file, and keeping library log noise off the terminal.

Everything busviewer and its libraries log (pydicom's tracebacks for handled errors,
Python warnings, decoder processes' stderr) goes to ``<data dir>/logs/busviewer.log``;
the terminal only shows busviewer's own warnings (``-v``: also its info messages,
``--debug``: everything).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

__all__ = ["LOG_NAME", "log_file", "setup_logging"]

LOG_NAME = "busviewer.log"
_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
_MAX_BYTES = 5 * 1024 * 1024


def log_file() -> Path:
    """``<data dir>/logs/busviewer.log`` (the folder is created)."""
    from busviewer.core import paths

    folder = paths.data_dir() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / LOG_NAME


class _OwnMessages(logging.Filter):
    """Passes busviewer's records (and everything when ``everything``)."""

    def __init__(self, everything: bool) -> None:
        super().__init__()
        self.everything = everything

    def filter(self, record: logging.LogRecord) -> bool:
        return self.everything or record.name == "busviewer" or record.name.startswith("busviewer.")


def setup_logging(verbose: bool = False, debug: bool = False) -> Path | None:
    """Route logging: all records to the log file, busviewer's own to stderr.

    Returns the log file, or None when it cannot be written (then nothing but
    busviewer's messages are shown, on stderr).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_busviewer", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    terminal.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    terminal.addFilter(_OwnMessages(debug))
    terminal._busviewer = True  # type: ignore[attr-defined]
    root.addHandler(terminal)
    logging.captureWarnings(True)  # pydicom's warnings.warn(...) -> the log file
    try:
        path = log_file()
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=_MAX_BYTES, backupCount=2, encoding="utf-8", delay=True
        )
    except OSError:
        return None
    handler.setLevel(logging.DEBUG if debug else logging.INFO)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler._busviewer = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    return path
