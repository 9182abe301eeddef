"""``busviewer import``, ``patients`` and ``show``."""

from __future__ import annotations

import argparse
import sys

from busviewer.core.importer import ImportProgress, import_paths
from busviewer.core.store import Store, StoreError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import DICOM files, PNG/JPEG folders (one per patient) or CSV manifests")
    p.add_argument("paths", nargs="+", help="files, folders or manifest.csv files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.add_argument(
        "--allow-outside",
        action="store_true",
        help="let manifest rows point outside the manifest's folder (refused by default)",
    )
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("patients", help="list patients with image counts and labels")
    p.add_argument("--search", help="filter by patient id or name")
    p.set_defaults(handler=cmd_patients)

    p = sub.add_parser("show", help="a patient's studies and images")
    p.add_argument("patient", help="patient id")
    p.set_defaults(handler=cmd_show)


def _open_store() -> Store:
    return Store()


def cmd_import(args: argparse.Namespace) -> int:
    try:
        store = _open_store()
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tty = sys.stderr.isatty() and not args.quiet

    def progress(ev: ImportProgress) -> None:
        if tty and ev.total:
            print(f"\rimporting {ev.done}/{ev.total} {ev.path.name[:40]:<40}", end="", file=sys.stderr)

    report = import_paths(store, args.paths, progress=progress, allow_outside=args.allow_outside)
    if tty:
        print(file=sys.stderr)
    for problem in report.problems:
        print(f"skipped {problem}", file=sys.stderr)
    for note in report.notes:
        print(f"note {note}", file=sys.stderr)
    print(report.summary())
    return 1 if report.problems and not (report.added or report.existing or report.relocated) else 0


def cmd_patients(args: argparse.Namespace) -> int:
    store = _open_store()
    rows = store.patients(search=args.search)
    print(f"{'patient':<24} {'images':>6}  {'reviewed':<8}  labels")
    for p in rows:
        print(f"{p.patient_key:<24} {p.image_count:>6}  {'yes' if p.reviewed else 'no':<8}  {p.label_text}")
    counts = store.counts()
    print(f"{len(rows)} patient(s), {counts['images']} image(s) in {store.url}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _open_store()
    try:
        summary = store.patient(args.patient)
        studies = store.studies(args.patient)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    images = store.images(args.patient)
    print(f"patient {summary.patient_key}" + (f" ({summary.name})" if summary.name else ""))
    print(f"  label: {summary.label_text}; reviewed: {'yes' if summary.reviewed else 'no'}")
    for st in studies:
        print(f"  study {st.study_uid}  date {st.study_date or '-'}  {st.description or ''}".rstrip())
        for uid, modality, desc in st.series:
            print(f"    series {uid}  {modality or ''} {desc or ''}".rstrip())
            for img in (i for i in images if i.series_uid == uid):
                label = img.label
                spacing = (
                    f"{img.pixel_spacing_mm[1]:.3f}x{img.pixel_spacing_mm[0]:.3f} mm/px"
                    if img.pixel_spacing_mm
                    else "-"
                )
                frames = f"{img.frame_count} frames" if img.frame_count > 1 else "1 frame"
                print(
                    f"      [{img.id}] {img.name}  {img.columns}x{img.rows} {frames}  spacing {spacing}  "
                    f"label {label.label + ' (' + label.source + ')' if label else '-'}"
                )
    return 0
