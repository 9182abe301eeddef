"""``busviewer read record|reveal|compare|list``: the blinded first read from the command
line (the twin of the GUI's Reading menu; logic in :mod:`busviewer.services.blinded_read`).

``record`` keeps the reader's call before any AI result is shown; ``reveal`` then shows the
AI verdict of the patient (the stored results, or a fresh analysis when none is stored)
and records it next to the read; ``compare`` prints agreement and, where biopsy or
imported ground truth exists, the reader's and the AI's sensitivity and specificity.
"""

from __future__ import annotations

import argparse
import json
import sys

from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.store import Store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("read", help="blinded first read: record your call, reveal the AI result, compare")
    cmds = p.add_subparsers(dest="read_command", metavar="ACTION", required=True)
    r = cmds.add_parser("record", help="record your call for a patient before seeing the AI result")
    r.add_argument("patient")
    r.add_argument("--call", required=True, choices=("benign", "malignant"))
    r.add_argument("--birads", help="BI-RADS category (0, 1, 2, 3, 4, 4A, 4B, 4C, 5, 6)")
    r.set_defaults(handler=cmd_record)
    v = cmds.add_parser("reveal", help="show the AI result of a patient you have read, and record it")
    v.add_argument("patient")
    v.add_argument("--json", action="store_true")
    v.add_argument("--device", help="cpu, cuda or mps, when the patient must be analysed first")
    v.set_defaults(handler=cmd_reveal)
    c = cmds.add_parser("compare", help="reader vs AI: agreement, sensitivity and specificity by month")
    c.add_argument("--reader", help="only this reader's reads (default: everyone's)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_compare)
    ls = cmds.add_parser("list", help="the recorded reads")
    ls.add_argument("--reader")
    ls.set_defaults(handler=cmd_list)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def cmd_record(args: argparse.Namespace) -> int:
    from busviewer.core.store.reads import ReadLockedError
    from busviewer.services.blinded_read import record

    store = Store()
    try:
        rec = record(store, args.patient, args.call, args.birads)
    except (KeyError, ValueError, ReadLockedError) as exc:
        return _fail(str(exc.args[0]))
    print(
        f"first read of {rec.patient_key} by {rec.reader}: {rec.call}, BI-RADS {rec.birads or '-'} "
        "(the AI result is hidden until `busviewer read reveal`)"
    )
    return 0


def cmd_reveal(args: argparse.Namespace) -> int:
    from busviewer.ai.results import stored_analysis
    from busviewer.services.blinded_read import must_read_first, reveal

    store = Store()
    try:
        if must_read_first(store, args.patient):
            return _fail(
                f"patient {args.patient}: record your read first (busviewer read record {args.patient} "
                "--call benign|malignant --birads N)"
            )
        analysis = stored_analysis(store, args.patient)
        if analysis is None:
            from busviewer.ai.analysis import Analyzer, NoActiveModel
            from busviewer.ai.results import guard_analysis

            try:
                analyzer = Analyzer(store, device=args.device)
                analysis = guard_analysis(store, analyzer.analyse_patient(args.patient))
            except NoActiveModel as exc:
                return _fail(f"no AI result stored for {args.patient} and {exc}")
        rec = reveal(store, args.patient, analysis)
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    out = {
        "patient": rec.patient_key,
        "reader": rec.reader,
        "call": rec.call,
        "birads": rec.birads,
        "recorded_at": rec.recorded_at.isoformat(),
        "revealed_at": rec.revealed_at.isoformat() if rec.revealed_at else None,
        "ai_label": rec.ai_label,
        "ai_detail": rec.ai_detail,
        "notice": RESEARCH_NOTICE,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        agree = (
            "agree"
            if rec.ai_label == rec.call
            else ("AI made no call" if rec.ai_label not in ("benign", "malignant") else "disagree")
        )
        print(
            f"{rec.patient_key}: your first read {rec.call} (BI-RADS {rec.birads or '-'}); AI {rec.ai_label} ({agree})"
        )
        for arch, m in (rec.ai_detail or {}).get("models", {}).items():
            print(
                f"  {arch}: {m['label']} ({m['model']}, {m['malignant_votes']} malignant / {m['benign_votes']} "
                "benign image(s))"
            )
        print(RESEARCH_NOTICE)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from busviewer.services.blinded_read import compare, summary_lines

    total, periods = compare(Store(), args.reader)
    if args.json:
        print(
            json.dumps(
                {"all": total.to_dict(), "by_month": [p.to_dict() for p in periods], "notice": RESEARCH_NOTICE},
                indent=2,
            )
        )
        return 0
    if not total.reads:
        print("no first reads recorded yet (busviewer read record PATIENT --call ...)")
        return 0
    print("\n".join(summary_lines(total, periods)))
    print(
        f"agreement over {total.compared} revealed read(s) with an AI call ({total.ai_no_call} without); "
        f"sensitivity/specificity over {total.with_truth} patient(s) with biopsy or imported ground truth"
    )
    print(RESEARCH_NOTICE)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from busviewer.core.store.reads import reads

    for r in reads(Store(), args.reader):
        shown = f"AI {r.ai_label} revealed {r.revealed_at:%Y-%m-%d %H:%M}" if r.revealed_at else "AI not revealed"
        print(
            f"{r.recorded_at:%Y-%m-%d %H:%M} {r.reader:<12} {r.patient_key:<24} {r.call:<9} "
            f"BI-RADS {r.birads or '-':<3} {shown}"
        )
    return 0
