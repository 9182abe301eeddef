"""``busviewer share ...``: what workstations share through a department store.

Models (registry entries in the store, weights in the shared folder) and the locked test
set. Image files are not copied: they stay where they were imported from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("share", help="department store: shared folder, published models, the locked test set")
    ssub = p.add_subparsers(dest="share_command", required=True)
    a = ssub.add_parser("init", help="record the department's shared folder (model weights) in the store")
    a.add_argument("folder", type=Path)
    a.set_defaults(handler=cmd_init)
    a = ssub.add_parser("list", help="models published to the department, and its locked test set")
    a.set_defaults(handler=cmd_list)
    a = ssub.add_parser("publish", help="publish a local model (verified) to every workstation")
    a.add_argument("model", metavar="NAME[:VERSION]")
    a.set_defaults(handler=cmd_publish)
    a = ssub.add_parser("activate", help="pull a published model (verified) and make it active here")
    a.add_argument("model", metavar="NAME[:VERSION]")
    a.set_defaults(handler=cmd_activate)
    a = ssub.add_parser("locked-test", help="the department's locked test set")
    a.add_argument("action", choices=["show", "publish", "pull", "retire"])
    a.add_argument(
        "--replace", action="store_true", help="pull: archive a different local set and use the department's"
    )
    a.set_defaults(handler=cmd_locked_test)


def _run(fn) -> int:  # type: ignore[no-untyped-def]
    from busviewer.ai.modelcard import ModelCardError
    from busviewer.ai.registry import RegistryError
    from busviewer.core.store import StoreError
    from busviewer.training.locked_test import LockedTestError

    try:
        return fn()
    except (StoreError, RegistryError, ModelCardError, LockedTestError, KeyError, OSError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 1


def _store():  # type: ignore[no-untyped-def]
    from busviewer.core.store import Store

    return Store()


def _registry():  # type: ignore[no-untyped-def]
    from busviewer.ai.registry import ModelRegistry

    return ModelRegistry()


def cmd_init(args: argparse.Namespace) -> int:
    from busviewer.services import department

    def go() -> int:
        store = _store()
        folder = department.init(store, args.folder)
        print(f"shared folder of {store.url}: {folder}")
        return 0

    return _run(go)


def cmd_list(args: argparse.Namespace) -> int:
    from busviewer.core.store import shared
    from busviewer.services import department

    def go() -> int:
        store = _store()
        rows = shared.shared_models(store)
        print(f"{len(rows)} published model(s) in {store.url}")
        for r in rows:
            print(f"  {r.ref:<28} {r.architecture:<10} by {r.user:<12} {r.created:%Y-%m-%d %H:%M}  {r.weights_file}")
        locked = department.department_locked_test(store)
        print(
            "locked test set: "
            + ("none" if locked is None else f"{len(locked.patients)} patients, created {locked.created}")
        )
        return 0

    return _run(go)


def cmd_publish(args: argparse.Namespace) -> int:
    from busviewer.services import department

    def go() -> int:
        record, new = department.publish_model(_store(), _registry(), args.model)
        print(f"{'published' if new else 'already published as'} {record.ref} ({record.weights_file})")
        return 0

    return _run(go)


def cmd_activate(args: argparse.Namespace) -> int:
    from busviewer.services import department

    def go() -> int:
        entry = department.activate_model(_store(), _registry(), args.model)
        print(f"{entry.ref} is now the active {entry.architecture} model on this workstation")
        return 0

    return _run(go)


def cmd_locked_test(args: argparse.Namespace) -> int:
    from busviewer.services import department

    def go() -> int:
        store = _store()
        if args.action == "show":
            locked = department.department_locked_test(store)
        elif args.action == "publish":
            locked = department.publish_locked_test(store)
        elif args.action == "pull":
            locked = department.pull_locked_test(store, replace=args.replace)
        else:
            locked = department.retire_locked_test(store)
            print("retired" if locked is not None else "the department has no locked test set")
            return 0
        if locked is None:
            print("the department has no locked test set")
        else:
            print(f"locked test set: {len(locked.patients)} patients, created {locked.created}, seed {locked.seed}")
        return 0

    return _run(go)
