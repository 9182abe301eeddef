"""The ``busviewer`` command: the GUI by default, and every GUI action headless.

Subcommand modules each expose ``register(subparsers)``; heavy modules (torch) are
imported only inside the handlers, so ``busviewer`` starts the GUI before torch loads.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from busviewer import __version__
from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.store.errors import StoreError

#: Modules under busviewer.cli that add subcommands.
COMMAND_MODULES = ("data", "review", "models", "predict", "train", "store", "share", "pacs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="busviewer",
        description="Second-reader workstation for breast ultrasound. " + RESEARCH_NOTICE,
    )
    parser.add_argument("--version", action="version", version=f"busviewer {__version__}")
    parser.add_argument("--store", help="store database file, or a department store URL postgresql://USER@HOST/DB "
                        "(default: per-user data dir; env BUSVIEWER_STORE)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    gui = sub.add_parser("gui", help="start the review workstation (the default)")
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


def _run_gui(args: argparse.Namespace) -> int:
    from busviewer.gui.app import run

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if args.store:
        os.environ["BUSVIEWER_STORE"] = args.store if "://" in args.store else os.path.abspath(args.store)
    handler = getattr(args, "handler", _run_gui)
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except StoreError as exc:  # e.g. a store written by a newer busviewer, or a stale edit
        print(f"error: {exc}", file=sys.stderr)
        return 1
