"""Reader actions headless: ``label``, ``roi``, ``review``, ``report`` and ``audit``."""

from __future__ import annotations

import argparse
import json
import sys

from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.store import LABEL_SOURCES, LabelRecord, Store, StoreError
from busviewer.core.validate import check_birads, check_note


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="label an image or a patient (benign, malignant, normal, or clear)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--image", type=int, help="image id (see `busviewer show`)")
    target.add_argument("--patient", help="patient id")
    p.add_argument("label", choices=["benign", "malignant", "normal", "clear"])
    p.add_argument("--source", choices=LABEL_SOURCES, default="reader")
    p.add_argument("--birads", help="BI-RADS category: 0, 1, 2, 3, 4, 4A, 4B, 4C, 5 or 6 (kept when not given)")
    p.add_argument("--biopsy", action="store_true", help="biopsy-confirmed")
    p.add_argument("--note", help="free note (kept when not given; --note '' clears it)")
    p.set_defaults(handler=cmd_label)

    p = sub.add_parser("roi", help="lesion rectangles: add, list, move, delete, classify")
    rsub = p.add_subparsers(dest="roi_command", required=True)
    a = rsub.add_parser("add", help="add a rectangle (pixel coordinates)")
    a.add_argument("image", type=int)
    a.add_argument("box", nargs=4, type=float, metavar=("X0", "Y0", "X1", "Y1"))
    a.add_argument("--frame", type=int, default=0)
    a.set_defaults(handler=cmd_roi_add)
    a = rsub.add_parser("list", help="the live ROIs of an image")
    a.add_argument("image", type=int)
    a.set_defaults(handler=cmd_roi_list)
    a = rsub.add_parser("move", help="move/resize an ROI")
    a.add_argument("roi", type=int)
    a.add_argument("box", nargs=4, type=float, metavar=("X0", "Y0", "X1", "Y1"))
    a.set_defaults(handler=cmd_roi_move)
    a = rsub.add_parser("delete", help="delete an ROI (kept in the store's history)")
    a.add_argument("roi", type=int)
    a.set_defaults(handler=cmd_roi_delete)
    a = rsub.add_parser("classify", help="classify the crop with the active models")
    a.add_argument("roi", type=int)
    a.add_argument("--json", action="store_true")
    a.add_argument("--device", help="cpu, cuda or mps (default: best available)")
    a.set_defaults(handler=cmd_roi_classify)
    a = rsub.add_parser("suggest", help="propose a lesion rectangle from the active model's Grad-CAM")
    a.add_argument("image", type=int)
    a.add_argument("--frame", type=int, default=0)
    a.add_argument(
        "--model", choices=["ensemble", "vgg16"], help="whose Grad-CAM (default: the active ensemble, else VGG-16)"
    )
    a.add_argument(
        "--accept", action="store_true", help="store the suggestion as your ROI (audited) and classify the crop"
    )
    a.add_argument("--json", action="store_true")
    a.add_argument("--device", help="cpu, cuda or mps (default: best available)")
    a.set_defaults(handler=cmd_roi_suggest)

    p = sub.add_parser("review", help="mark a patient reviewed (or --undo)")
    p.add_argument("patient")
    p.add_argument("--undo", action="store_true")
    p.set_defaults(handler=cmd_review)

    p = sub.add_parser("report", help="export a patient report as PDF")
    p.add_argument("patient")
    p.add_argument("--out", required=True, help="PDF file to write")
    p.add_argument("--cam", choices=["ensemble", "vgg16"], help="add this model's Grad-CAM overlay")
    p.add_argument("--device", help="cpu, cuda or mps (default: best available)")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("audit", help="print the audit log")
    p.add_argument("--entity", choices=["image", "patient", "roi", "model"])
    p.add_argument("--id", type=int, dest="entity_id")
    p.set_defaults(handler=cmd_audit)


def _fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _existing_label(store: Store, image: int | None, patient: str | None, source: str) -> LabelRecord | None:
    """The label this edit changes (this reader's for source 'reader'), if there is one."""
    labels = store.image(image).labels if image is not None else store.patient_label(patient)  # type: ignore[arg-type]
    return labels.get(source)


def cmd_label(args: argparse.Namespace) -> int:
    store = Store()
    target = {"image_id": args.image} if args.image is not None else {"patient_key": args.patient}
    source = "biopsy" if args.biopsy and args.source == "reader" else args.source
    try:
        if args.label == "clear":
            store.clear_label(source=source, **target)
        else:
            # Editing keeps what was not given: --birads/--note/--biopsy only change when given
            # (--birads "" / --note "" clear them).
            old = _existing_label(store, args.image, args.patient, source)
            birads = check_birads(args.birads) if args.birads is not None else (old.birads if old else None)
            note = check_note(args.note) if args.note is not None else (old.note if old else None)
            biopsy = True if args.biopsy else (old.biopsy_confirmed if old else False)
            store.set_label(
                args.label,
                source=source,
                birads=birads,
                biopsy_confirmed=biopsy,
                note=note,
                expected_version=old.version if old else 0,
                **target,
            )
    except (KeyError, ValueError, StoreError) as exc:
        return _fail(str(exc.args[0] if isinstance(exc, KeyError) else exc))
    target = f"image {args.image}" if args.image is not None else f"patient {args.patient}"
    print(f"{args.label} ({source}) set on {target}")
    return 0


def cmd_roi_add(args: argparse.Namespace) -> int:
    try:
        roi = Store().add_roi(args.image, tuple(args.box), frame=args.frame)  # type: ignore[arg-type]
    except (KeyError, ValueError) as exc:
        return _fail(str(exc.args[0]))
    print(f"ROI {roi.id} on image {roi.image_id}: {roi.box}")
    return 0


def cmd_roi_list(args: argparse.Namespace) -> int:
    for roi in Store().rois(args.image):
        print(f"ROI {roi.id}  frame {roi.frame}  box {roi.box}  by {roi.user} at {roi.created:%Y-%m-%d %H:%M}")
    return 0


def cmd_roi_move(args: argparse.Namespace) -> int:
    try:
        roi = Store().update_roi(args.roi, tuple(args.box))  # type: ignore[arg-type]
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    print(f"ROI {roi.id}: {roi.box}")
    return 0


def cmd_roi_delete(args: argparse.Namespace) -> int:
    try:
        Store().delete_roi(args.roi)
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    print(f"ROI {args.roi} deleted")
    return 0


def cmd_roi_classify(args: argparse.Namespace) -> int:
    from busviewer.ai.analysis import Analyzer, NoActiveModel

    try:
        results = Analyzer(Store(), device=args.device).classify_roi(args.roi)
    except (KeyError, NoActiveModel) as exc:
        return _fail(str(exc.args[0]) if exc.args else str(exc))
    if args.json:
        print(
            json.dumps(
                {
                    "notice": RESEARCH_NOTICE,
                    "roi": args.roi,
                    "predictions": {a: p.probabilities for a, p in results.items()},
                },
                indent=2,
            )
        )
    else:
        for arch, p in results.items():
            print(f"{arch:<9} {p.label:<10} malignant {p.malignant_probability:.3f}")
        print(RESEARCH_NOTICE)
    return 0


def cmd_roi_suggest(args: argparse.Namespace) -> int:
    from busviewer.ai.analysis import Analyzer, NoActiveModel
    from busviewer.ai.roi_suggest import accept_suggestion, suggest_roi
    from busviewer.core.imageio import ImageReadError

    store = Store()
    analyzer = Analyzer(store, device=args.device)
    try:
        suggestion = suggest_roi(analyzer, args.image, frame=args.frame, architecture=args.model)
    except (KeyError, NoActiveModel, ImageReadError) as exc:
        return _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
    if suggestion is None:
        return _fail(f"no suggestion for image {args.image}: the Grad-CAM map is flat")
    out: dict = {"notice": RESEARCH_NOTICE, "suggestion": suggestion.to_dict()}
    results: dict = {}
    if args.accept:
        roi = accept_suggestion(store, suggestion)
        results = analyzer.classify_roi(roi.id)
        out["roi"] = roi.id
        out["predictions"] = {a: p.probabilities for a, p in results.items()}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    s = suggestion
    print(
        f"suggested ROI on image {s.image_id}: {s.box} from the {s.architecture} Grad-CAM of {s.model} "
        f"(threshold {s.fraction:g} of the maximum, margin {s.margin:g}, {s.params_source})"
    )
    if args.accept:
        print(f"accepted as ROI {out['roi']}")
        for arch, p in results.items():
            print(f"{arch:<9} {p.label:<10} malignant {p.malignant_probability:.3f}")
    else:
        print(f"accept it with: busviewer roi suggest {s.image_id} --accept")
    print(RESEARCH_NOTICE)
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    try:
        Store().set_reviewed(args.patient, not args.undo)
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    print(f"patient {args.patient} marked {'unread' if args.undo else 'reviewed'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from busviewer.report import export_patient_report

    store = Store()
    try:
        store.patient(args.patient)
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    analysis, cams = None, None
    if args.cam:
        from busviewer.ai.analysis import Analyzer, NoActiveModel

        analyzer = Analyzer(store, device=args.device)
        try:
            analysis = analyzer.stored_analysis(args.patient)
            cams = {(img.id, args.cam): analyzer.gradcam(img.id, args.cam) for img in store.images(args.patient)}
        except NoActiveModel as exc:
            return _fail(str(exc))
    try:
        path = export_patient_report(store, args.patient, args.out, analysis=analysis, cams=cams)
    except OSError as exc:
        return _fail(f"{args.out}: cannot write the report ({exc.strerror or exc})")
    print(f"report written to {path}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    for a in Store().audit_log(args.entity, args.entity_id):
        print(
            f"{a.at:%Y-%m-%d %H:%M:%S} {a.user:<10} {a.action:<12} {a.entity}:{a.entity_id} "
            f"{a.field or ''} {a.old_value!r} -> {a.new_value!r}"
        )
    return 0
