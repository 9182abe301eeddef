"""``busviewer models list|show|import|export|activate|delete``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="the model registry: list, show, import, export, activate, delete")
    msub = p.add_subparsers(dest="models_command", required=True)
    a = msub.add_parser("list", help="model versions with their metrics; * marks the active ones")
    a.set_defaults(handler=cmd_list)
    a = msub.add_parser("show", help="print a model card")
    a.add_argument("model", metavar="NAME[:VERSION]")
    a.set_defaults(handler=cmd_show)
    a = msub.add_parser("import", help="import a .safetensors model with its .json card (verified, never unpickled)")
    a.add_argument("path", type=Path)
    a.add_argument("--activate", action="store_true", help="also make it the active model of its architecture")
    a.set_defaults(handler=cmd_import)
    a = msub.add_parser("export", help="copy a model's weights and card to a folder")
    a.add_argument("model", metavar="NAME[:VERSION]")
    a.add_argument("dest", type=Path)
    a.set_defaults(handler=cmd_export)
    a = msub.add_parser("activate", help="make a model version the active one of its architecture")
    a.add_argument("model", metavar="NAME[:VERSION]")
    a.set_defaults(handler=cmd_activate)
    a = msub.add_parser("delete", help="delete a user model version (never the active or a shipped one)")
    a.add_argument("model", metavar="NAME:VERSION")
    a.set_defaults(handler=cmd_delete)


def _registry():  # type: ignore[no-untyped-def]
    from busviewer.ai.registry import ModelRegistry

    return ModelRegistry()


def _run(fn) -> int:  # type: ignore[no-untyped-def]
    from busviewer.ai.modelcard import ModelCardError
    from busviewer.ai.registry import RegistryError

    try:
        return fn()
    except (RegistryError, ModelCardError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _metric(card, key: str, level: str = "image") -> str:  # type: ignore[no-untyped-def]
    """A test-set metric from the card (training writes ``metrics.test.image|patient``)."""
    scope = (card.metrics or {}).get("test", {}).get(level, {})
    value = scope.get(key) if isinstance(scope, dict) else None
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def cmd_list(args: argparse.Namespace) -> int:
    def go() -> int:
        entries = _registry().list()
        if not entries:
            print("no models: train one (`busviewer train`) or import one (`busviewer models import`)")
            return 0
        print(f"  {'model':<28} {'architecture':<12} {'input':<12} {'location':<8} {'AUC img':>7} {'AUC pat':>7}  created")
        for e in entries:
            c = e.card
            print(f"{'*' if e.active else ' '} {e.ref:<28} {c.architecture:<12} {c.input_mode + ' ' + str(c.input_size):<12} "
                  f"{e.location:<8} {_metric(c, 'auc'):>7} {_metric(c, 'auc', 'patient'):>7}  {c.created[:16]}")
        return 0

    return _run(go)


def cmd_show(args: argparse.Namespace) -> int:
    def go() -> int:
        print(json.dumps(_registry().get(args.model).card.to_dict(), indent=2))
        return 0

    return _run(go)


def cmd_import(args: argparse.Namespace) -> int:
    def go() -> int:
        reg = _registry()
        entry = reg.import_model(args.path)
        print(f"imported {entry.ref} ({entry.architecture})")
        if args.activate:
            reg.activate(entry.name, entry.version)
            print(f"{entry.ref} is now the active {entry.architecture} model")
        return 0

    return _run(go)


def cmd_export(args: argparse.Namespace) -> int:
    def go() -> int:
        reg = _registry()
        entry = reg.get(args.model)
        weights, card = reg.export(entry.name, entry.version, args.dest)
        print(f"exported {entry.ref} to {weights} and {card}")
        return 0

    return _run(go)


def cmd_activate(args: argparse.Namespace) -> int:
    def go() -> int:
        reg = _registry()
        entry = reg.get(args.model)
        reg.activate(entry.name, entry.version)
        try:
            from busviewer.core.store import Store

            Store().log("activate", "model", None, entry.architecture, None, entry.ref)
        except Exception as exc:  # the activation itself succeeded
            print(f"warning: activation not written to the audit log ({exc})", file=sys.stderr)
        print(f"{entry.ref} is now the active {entry.architecture} model")
        return 0

    return _run(go)


def cmd_delete(args: argparse.Namespace) -> int:
    def go() -> int:
        reg = _registry()
        entry = reg.get(args.model)
        if ":" not in args.model:
            print("error: name the version to delete (NAME:VERSION)", file=sys.stderr)
            return 1
        reg.delete(entry.name, entry.version)
        print(f"deleted {entry.ref}")
        return 0

    return _run(go)
