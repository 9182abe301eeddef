"""``busviewer data check``, ``busviewer data locked-test show|create|reset`` and ``busviewer
runs``: the training wizard's data page, locked test set and resumable runs, from the
command line (the same use cases in :mod:`busviewer.services`)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="training data: check it (warnings, near duplicates) and the locked test set")
    dsub = p.add_subparsers(dest="data_command", required=True)
    a = dsub.add_parser(
        "check",
        help="counts per class and patient and what to know before training "
        "(too few patients, imbalance, conflicting labels, duplicates)",
    )
    a.add_argument(
        "--label-source",
        action="append",
        choices=("import", "reader", "biopsy"),
        help="use labels from these sources only (repeatable; default: every source)",
    )
    a.add_argument(
        "--no-near-duplicates",
        action="store_true",
        help="skip the near-duplicate scan across patients (it decodes every image)",
    )
    a.set_defaults(handler=cmd_check)
    a = dsub.add_parser("locked-test", help="the locked test set: patients every model is tested on")
    lsub = a.add_subparsers(dest="locked_command", required=True)
    b = lsub.add_parser("show", help="the current locked test set")
    b.set_defaults(handler=cmd_locked_show)
    b = lsub.add_parser("create", help="set aside a fraction of the labelled patients (stratified by class)")
    b.add_argument("--fraction", type=float, default=0.2, help="share of the patients (default 0.2)")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(handler=cmd_locked_create)
    b = lsub.add_parser("reset", help="retire the locked test set (its file is archived; audited)")
    b.add_argument(
        "--yes",
        action="store_true",
        help="required: models tested on the old and a new set can no longer be compared fairly",
    )
    b.set_defaults(handler=cmd_locked_reset)
    p = sub.add_parser("runs", help="training runs in the runs folder; --resumable: those that can be resumed")
    p.add_argument("--resumable", action="store_true")
    p.set_defaults(handler=cmd_runs)


def _store():  # type: ignore[no-untyped-def]
    from busviewer.core.store import Store

    return Store()


def cmd_check(args: argparse.Namespace) -> int:
    from busviewer.services import training_data as td

    store = _store()
    try:
        cands = td.load_candidates(store, args.label_source, use_rois=False)
        summary = td.summarize(cands)
        near = None
        if not args.no_near_duplicates:
            near, problems = td.near_duplicates(summary.items)
            for problem in problems:
                print(f"skipped {problem}", file=sys.stderr)
    finally:
        store.close()
    img, pat = summary.images_per_class, summary.patients_per_class
    print(
        f"{summary.n_images} images of {summary.n_patients} patients: "
        + ", ".join(f"{c} {img[c]} images / {pat[c]} patients" for c in td.CLASSES)
    )
    warnings = td.data_warnings(summary, near)
    for w in warnings:
        print(f"{'error' if w.blocking else 'warning'}: {w.text}")
    for line in td.passed_checks(warnings, near is not None):
        print(f"ok: {line}")
    return 1 if any(w.blocking for w in warnings) else 0


def cmd_locked_show(args: argparse.Namespace) -> int:
    from busviewer.services import locked_tests

    locked, problem = locked_tests.load()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    print(f"locked test set: {locked_tests.describe(locked)}" if locked is not None else "no locked test set")
    return 0


def cmd_locked_create(args: argparse.Namespace) -> int:
    from busviewer.services import locked_tests
    from busviewer.training.locked_test import LockedTestError

    if not 0.0 < args.fraction < 1.0:
        print("error: --fraction must be between 0 and 1", file=sys.stderr)
        return 2
    store = _store()
    try:
        locked = locked_tests.create(store, args.fraction, args.seed)
    except (LockedTestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"locked test set created: {locked_tests.describe(locked)}")
    return 0


def cmd_locked_reset(args: argparse.Namespace) -> int:
    from busviewer.services import locked_tests

    if not args.yes:
        print(
            "error: resetting the locked test set makes old and new test figures incomparable; pass --yes",
            file=sys.stderr,
        )
        return 1
    store = _store()
    try:
        archive = locked_tests.reset(store)
    finally:
        store.close()
    print(f"locked test set retired; archived as {archive}" if archive else "there was no locked test set")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from busviewer.services import training_runs

    found = training_runs.list_resumable_runs() if args.resumable else training_runs.list_runs()
    if not found:
        print("no resumable runs" if args.resumable else "no runs")
    for run in found:
        print(f"{run.run_dir}  {run.describe()}" + (f"  ({run.error})" if run.error else ""))
    return 0
