"""The ``busviewer`` command: the GUI by default, and every GUI action headless.

Subcommand modules each expose ``register(subparsers)``; heavy modules (torch) are
imported only inside the handlers, so ``busviewer`` starts the GUI before torch loads.

:func:`main` is the one error boundary of every command: bad arguments (ids that do not
fit the database, over-long patient ids, BI-RADS outside the standard categories) and
any error a command does not handle itself (a store that cannot be opened, a folder that
cannot be created, a permission error) print one ``busviewer: error: ...`` line naming
the path or value and the problem, and the exit status is non-zero; ``--debug`` shows
the traceback. Library log messages go to the log file (:mod:`busviewer.core.applog`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Collection, Sequence
from typing import NoReturn

from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.validate import MAX_DB_ID, check_birads, check_identifier

#: Modules under busviewer.cli that add subcommands.
COMMAND_MODULES = ("data", "review", "models", "predict", "train", "trainprep", "store", "share", "pacs", "read")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``busviewer label: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="busviewer",
        description="Second-reader workstation for breast ultrasound. " + RESEARCH_NOTICE,
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        nargs=0,
        help="show the version, git commit, torch/torchvision and shipped models' sha256",
    )
    parser.add_argument(
        "--store",
        help="store database file, or a department store URL postgresql://USER@HOST/DB "
        "(default: per-user data dir; env BUSVIEWER_STORE)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and every library log message")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    gui = sub.add_parser("gui", help="start the review workstation (the default)")
    gui.add_argument("paths", nargs="*", metavar="PATH", help="files or folders to import and open")
    gui.set_defaults(handler=_run_gui)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"busviewer.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"busviewer.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


class _VersionAction(argparse.Action):
    """``--version``: :mod:`busviewer.core.provenance`, computed only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from busviewer.core.provenance import provenance

        print(provenance().text())
        parser.exit(0)


def open_paths_argv(argv: Sequence[str], commands: Collection[str]) -> list[str]:
    """``busviewer PATH...`` (the desktop entry's ``Exec=busviewer %F``) is ``busviewer gui PATH...``:
    when the first argument after the global options is an existing path and no command name."""
    argv = list(argv)
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        i += 2 if argv[i] == "--store" else 1
    if i < len(argv) and argv[i] not in commands and os.path.exists(argv[i]):
        return [*argv[:i], "gui", *argv[i:]]
    return argv


def _run_gui(args: argparse.Namespace) -> int:
    from busviewer.gui.app import run

    return run(args)


#: Argument names holding a patient id, checked (length, characters) for every command.
_PATIENT_ARGS = ("patient", "patient_id", "patient_key")


def _check_args(args: argparse.Namespace) -> None:
    """Refuse values no command can use (ValueError naming the argument and the value)."""
    for name, value in vars(args).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_DB_ID:
            raise ValueError(f"argument {flag}: {value} is out of range (at most {MAX_DB_ID})")
        if name in _PATIENT_ARGS and isinstance(value, str):
            check_identifier(value, f"argument {name}")
    birads = getattr(args, "birads", None)
    if isinstance(birads, str) and birads.strip():  # "" means "clear it"
        args.birads = check_birads(birads)


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_error(exc: BaseException) -> str:
    """One line naming the path or value and the problem."""
    if isinstance(exc, OSError) and (exc.filename or exc.strerror):
        where = f"{exc.filename}: " if exc.filename is not None else ""
        also = f" -> {exc.filename2}" if getattr(exc, "filename2", None) else ""
        return _one_line(f"{where}{exc.strerror or exc}{also}")
    if isinstance(exc, KeyError) and exc.args:
        return _one_line(str(exc.args[0]))
    if isinstance(exc, OverflowError):
        return _one_line(f"a value is too large ({exc})")
    try:
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            orig = getattr(exc, "orig", None)
            return _one_line(f"store {os.environ.get('BUSVIEWER_STORE', '(default)')}: {orig or exc}")
    except ImportError:
        pass
    text = str(exc)
    if type(exc).__module__.startswith("busviewer") or isinstance(exc, ValueError):
        return _one_line(text or type(exc).__name__)
    return _one_line(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    args = parser.parse_args(open_paths_argv(sys.argv[1:] if argv is None else argv, commands))
    from busviewer.core.applog import setup_logging

    setup_logging(verbose=args.verbose, debug=args.debug)
    try:
        _check_args(args)
    except ValueError as exc:
        parser.exit(2, f"busviewer: error: {_one_line(str(exc))}\n")
    if args.store:
        os.environ["BUSVIEWER_STORE"] = args.store if "://" in args.store else os.path.abspath(args.store)
    handler = getattr(args, "handler", _run_gui)
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one error boundary of every command
        if args.debug:
            raise
        logging.getLogger("busviewer.cli").info("command failed: %s", exc, exc_info=True)  # log file only
        print(f"busviewer: error: {describe_error(exc)}", file=sys.stderr)
        return 1
