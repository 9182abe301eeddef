"""``busviewer models list|show|import|export|activate|rollback|use-default|delete|fit-guard|ship``: thin
wrappers of :mod:`busviewer.services.models` (the same audited use cases as Model > Manage models)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from busviewer.ai.architectures import ARCHITECTURES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="the model registry: list, show, import, export, activate, rollback, use-default, delete, fit-guard, ship",
    )
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
    a.add_argument(
        "--yes",
        action="store_true",
        help="activate even if its recorded test figures are poor or come from a tiny test set",
    )
    a.set_defaults(handler=cmd_activate)
    a = msub.add_parser("rollback", help="activate again the model that was active before the current one")
    a.add_argument("architecture", choices=ARCHITECTURES)
    a.set_defaults(handler=cmd_rollback)
    a = msub.add_parser("use-default", help="go back to the shipped default model (of one or every architecture)")
    a.add_argument("architecture", nargs="?", choices=ARCHITECTURES, help="default: every architecture")
    a.set_defaults(handler=cmd_use_default)
    a = msub.add_parser("delete", help="delete a user model version (never the active or a shipped one)")
    a.add_argument("model", metavar="NAME:VERSION")
    a.set_defaults(handler=cmd_delete)
    a = msub.add_parser(
        "fit-guard",
        help="fit a model's feature-distance input guard on the images it was trained on (written into its card)",
        description="Runs NAME:VERSION over the training images of MANIFEST (read as training reads it), "
        "summarises their pooled Grad-CAM-layer features in the model card, and from then on flags images "
        "far from them as outside the model's training data. Training does this by itself; this is for "
        "models trained or shipped before it did.",
    )
    a.add_argument("model", metavar="NAME:VERSION")
    a.add_argument("--manifest", type=Path, required=True, help="CSV image,label[,patient_id] of the training images")
    a.add_argument(
        "--normal",
        choices=("drop", "benign"),
        default="drop",
        help="what the model's training did with 'normal' images (default: drop, as the shipped models)",
    )
    a.add_argument("--device", help="device (default: auto)")
    a.set_defaults(handler=cmd_fit_guard)
    a = msub.add_parser(
        "ship",
        help="make a registered model a shipped default: compressed safetensors shards in models/<name>/",
        description="Compresses NAME:VERSION (int8 large linear layers + fp16, or fp16, or none), measures the "
        "effect against float32 on --check-data (AUC change <= 0.005 and max probability change <= "
        "0.01, else more precision is kept), and writes shards of at most --max-shard-mb with a card "
        "holding their sha256, the command, the training data citation and a regression set.",
    )
    a.add_argument("model", metavar="NAME:VERSION")
    a.add_argument("--out", type=Path, help="shipped models folder (default: models/ of this installation)")
    a.add_argument(
        "--quantize", choices=("int8", "fp16", "none"), default="int8", help="most compression to try (default int8)"
    )
    a.add_argument(
        "--check-data",
        type=Path,
        metavar="MANIFEST",
        help="CSV image,label[,patient_id] of labelled images to measure the compression on",
    )
    a.add_argument("--max-images", type=int, metavar="N", help="use at most N check images (evenly spread)")
    a.add_argument("--device", help="device for the measurement (default: auto); the regression set is on CPU")
    a.add_argument("--as", dest="ship_as", metavar="NAME[:VERSION]", help="ship under another name/version")
    a.add_argument("--max-shard-mb", type=float, default=95.0, help="largest shard file in MB (10^6 bytes)")
    a.add_argument("--citation", help="training data citation for the card (default: the BUSI dataset paper)")
    a.set_defaults(handler=cmd_ship)


def _registry():  # type: ignore[no-untyped-def]
    from busviewer.ai.registry import ModelRegistry

    return ModelRegistry()


def _store():  # type: ignore[no-untyped-def]
    """The store for the audit log (None, with a warning, if it cannot be opened: the model
    change itself does not need it)."""
    try:
        from busviewer.core.store import Store

        return Store()
    except Exception as exc:  # noqa: BLE001 - any store problem only costs the audit entry
        print(f"warning: the audit log cannot be written ({exc})", file=sys.stderr)
        return None


def _run(fn) -> int:  # type: ignore[no-untyped-def]
    from busviewer.ai.feature_guard import FeatureGuardError
    from busviewer.ai.modelcard import ModelCardError
    from busviewer.ai.registry import RegistryError
    from busviewer.core.imageio import ImageReadError

    try:
        return fn()
    except (RegistryError, ModelCardError, FeatureGuardError, ImageReadError, OSError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _metric(card, key: str, level: str = "image") -> str:  # type: ignore[no-untyped-def]
    value = card.test_metric(key, level)
    return "-" if value is None else f"{value:.3f}"


def cmd_list(args: argparse.Namespace) -> int:
    def go() -> int:
        entries = _registry().list()
        if not entries:
            print("no models: train one (`busviewer train`) or import one (`busviewer models import`)")
            return 0
        print(
            f"  {'model':<28} {'architecture':<12} {'input':<12} {'location':<8} {'AUC img':>7} {'AUC pat':>7}  created"
        )
        for e in entries:
            c = e.card
            size = f"{c.input_mode} {c.input_size}"
            print(
                f"{'*' if e.active else ' '} {e.ref:<28} {c.architecture:<12} {size:<12} "
                f"{e.location:<8} {_metric(c, 'auc'):>7} {_metric(c, 'auc', 'patient'):>7}  {c.created[:16]}"
            )
        return 0

    return _run(go)


def cmd_show(args: argparse.Namespace) -> int:
    def go() -> int:
        print(json.dumps(_registry().get(args.model).card.to_dict(), indent=2))
        return 0

    return _run(go)


def cmd_import(args: argparse.Namespace) -> int:
    def go() -> int:
        from busviewer.services import models as svc

        change = svc.import_model(_registry(), _store(), args.path, activate_it=args.activate)
        print(f"imported {change.entry.ref} ({change.entry.architecture})")
        if args.activate:
            print(change.describe())
        return 0

    return _run(go)


def cmd_export(args: argparse.Namespace) -> int:
    def go() -> int:
        from busviewer.services import models as svc

        weights, card = svc.export_model(_registry(), _store(), args.model, args.dest)
        print(f"exported {args.model} to {weights} and {card}")
        return 0

    return _run(go)


def cmd_activate(args: argparse.Namespace) -> int:
    def go() -> int:
        from busviewer.services import models as svc

        reg = _registry()
        entry = reg.get(args.model)
        question = svc.activation_question(entry.card)
        if question is not None and not args.yes:
            print(f"not activated: {question.splitlines()[0]} Pass --yes to activate it anyway.", file=sys.stderr)
            return 1
        print(svc.activate(reg, _store(), entry.name, entry.version).describe())
        return 0

    return _run(go)


def cmd_rollback(args: argparse.Namespace) -> int:
    def go() -> int:
        from busviewer.services import models as svc

        print(svc.roll_back(_registry(), _store(), args.architecture).describe("is again the active"))
        return 0

    return _run(go)


def cmd_fit_guard(args: argparse.Namespace) -> int:
    def go() -> int:
        from busviewer.services import models as svc
        from busviewer.services.models import split_ref
        from busviewer.training.data import samples_from_manifest

        try:
            samples = samples_from_manifest(args.manifest, args.normal).samples
        except ValueError as exc:  # a malformed manifest (the message names file and line)
            print(f"error: {exc}", file=sys.stderr)
            return 2
        name, version = split_ref(args.model)
        ref, guard = svc.fit_guard(_registry(), _store(), name, version, samples, device=args.device)
        print(
            f"{ref}: feature guard fitted on {guard['n_images']} images ({len(guard['components'])} components, "
            f"threshold {guard['threshold']:g}); images further than that are flagged as outside its training data"
        )
        return 0

    return _run(go)


def cmd_use_default(args: argparse.Namespace) -> int:
    def go() -> int:
        from busviewer.services import models as svc

        reg, store = _registry(), _store()
        archs = [args.architecture] if args.architecture else list(ARCHITECTURES)
        done = 0
        for arch in archs:
            if reg.shipped_default(arch) is None:
                print(f"{'error' if args.architecture else 'note'}: no shipped {arch} model", file=sys.stderr)
                continue
            print(svc.use_default(reg, store, arch).describe("(shipped) is now the active"))
            done += 1
        return 0 if done else 1

    return _run(go)


def cmd_ship(args: argparse.Namespace) -> int:
    def go() -> int:
        from busviewer.ai.shipping import BUSI_CITATION, ShipError, ShipOptions, ship_model
        from busviewer.core.paths import SHIPPED_MODELS_DIR

        name, version = None, None
        if args.ship_as:
            name, _, v = args.ship_as.partition(":")
            version = int(v) if v else None
        opts = ShipOptions(
            out_dir=args.out or SHIPPED_MODELS_DIR,
            quantize=args.quantize,
            check_data=args.check_data,
            max_images=args.max_images,
            device=args.device,
            name=name,
            version=version,
            max_shard_bytes=int(args.max_shard_mb * 1_000_000),
            citation=args.citation or BUSI_CITATION,
            command=_ship_command(args),
        )
        try:
            result = ship_model(_registry(), args.model, opts, progress=print)
        except ShipError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for s in result.shards:
            print(f"  {s.file}  {s.bytes / 1e6:.1f} MB  sha256 {s.sha256}")
        print(f"card: {result.folder / (result.card.stem + '.json')}")
        return 0

    return _run(go)


def _ship_command(args: argparse.Namespace) -> str:
    """The ship command with every option that shaped the result (for the card)."""
    parts = ["busviewer", "models", "ship", args.model, "--quantize", args.quantize]
    for flag, value in (
        ("--out", args.out),
        ("--check-data", args.check_data),
        ("--max-images", args.max_images),
        ("--device", args.device),
        ("--as", args.ship_as),
        ("--citation", args.citation),
    ):
        if value is not None:
            parts += [flag, str(value)]
    if args.max_shard_mb != 95.0:
        parts += ["--max-shard-mb", f"{args.max_shard_mb:g}"]
    return shlex.join(parts)


def cmd_delete(args: argparse.Namespace) -> int:
    def go() -> int:
        from busviewer.services import models as svc

        if ":" not in args.model:
            print("error: name the version to delete (NAME:VERSION)", file=sys.stderr)
            return 1
        reg = _registry()
        entry = reg.get(args.model)
        print(f"deleted {svc.delete_model(reg, _store(), entry.name, entry.version)}")
        return 0

    return _run(go)
