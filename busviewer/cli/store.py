"""``busviewer store check|backup|restore|migrate``: the store's schema, backups and health."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="check, back up, restore or migrate the store (file or postgresql:// URL)")
    ssub = p.add_subparsers(dest="store_command", required=True)
    a = ssub.add_parser("check", help="schema revision, integrity, audit guard, unreachable image files")
    a.add_argument("--no-images", action="store_true", help="do not look for the image files")
    a.set_defaults(handler=cmd_check)
    a = ssub.add_parser("backup", help="a verified backup (one SQLite file)")
    a.add_argument("--out", type=Path, help="backup file (default: the store's backups folder)")
    a.set_defaults(handler=cmd_backup)
    a = ssub.add_parser(
        "restore",
        help="restore a backup (the store's current content is backed up first; a PostgreSQL database must be empty)",
    )
    a.add_argument("backup", type=Path)
    a.set_defaults(handler=cmd_restore)
    a = ssub.add_parser("migrate", help="bring the store to this busviewer's schema (verified backup first)")
    a.set_defaults(handler=cmd_migrate)


def _run(fn) -> int:  # type: ignore[no-untyped-def]
    from busviewer.core.store import StoreError

    try:
        return fn()
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cmd_check(args: argparse.Namespace) -> int:
    from busviewer.services import store_admin

    def go() -> int:
        report = store_admin.check(images=not args.no_images)
        print(report.location)
        for note in report.notes:
            print(f"  {note}")
        rows = {k: v for k, v in report.counts.items() if k != "alembic_version"}
        if rows:
            print("  rows: " + ", ".join(f"{k} {v}" for k, v in rows.items()))
        for problem in report.problems:
            print(f"  PROBLEM: {problem}")
        print("ok" if report.ok else f"{len(report.problems)} problem(s)")
        return 0 if report.ok else 1

    return _run(go)


def cmd_backup(args: argparse.Namespace) -> int:
    from busviewer.services import store_admin

    def go() -> int:
        print(f"backup written and verified: {store_admin.backup(out=args.out).summary()}")
        return 0

    return _run(go)


def cmd_restore(args: argparse.Namespace) -> int:
    from busviewer.services import store_admin

    def go() -> int:
        restored, replaced = store_admin.restore(args.backup)
        if replaced is not None:
            print(f"the store's previous content was backed up first: {replaced.summary()}")
        print(f"restored {args.backup} into {restored.path} ({sum(restored.counts.values())} rows)")
        return 0

    return _run(go)


def cmd_migrate(args: argparse.Namespace) -> int:
    from busviewer.services import store_admin

    def go() -> int:
        report = store_admin.migrate()
        if report.migrated:
            print(
                f"migrated from schema {report.before.revision or 'pre-versioning'} to {report.before.head}; "
                f"verified backup: {report.backup}"
            )
        elif report.created:
            print(f"created a new store at schema {report.before.head}")
        else:
            print(f"already at schema {report.before.head}; nothing to do")
        return 0

    return _run(go)
