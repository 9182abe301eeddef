"""``busviewer pacs echo|find|get|send|node|local``, ``busviewer listen`` and
``busviewer export --deidentify``: the hospital-integration use cases on the command line."""

from __future__ import annotations

import argparse
import sys
import threading
from dataclasses import replace
from pathlib import Path

from busviewer.core.notice import RESEARCH_NOTICE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pacs", help="query/retrieve a PACS, send results back, manage PACS nodes")
    ps = p.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    e = ps.add_parser("echo", help="test a node (C-ECHO, or a QIDO-RS request for DICOMweb)")
    e.add_argument("node")
    e.set_defaults(handler=cmd_echo)
    f = ps.add_parser("find", help="search a node (C-FIND or QIDO-RS)")
    f.add_argument("node")
    f.add_argument("--patient-id", default="")
    f.add_argument("--name", default="", help="patient name (wildcards *)")
    f.add_argument("--date", default="", help="study date YYYYMMDD or range YYYYMMDD-YYYYMMDD")
    f.add_argument("--modality", default="US", help="modality in study (default US; '' for any)")
    f.add_argument("--level", choices=("study", "patient"), default="study")
    f.set_defaults(handler=cmd_find)
    g = ps.add_parser("get", help="retrieve studies into the store (C-GET, C-MOVE or WADO-RS) and import them")
    g.add_argument("node")
    g.add_argument("study_uids", nargs="+", metavar="STUDY_UID")
    g.set_defaults(handler=cmd_get)
    s = ps.add_parser("send", help="send a patient's results (DICOM SR + Grad-CAM Secondary Capture)")
    s.add_argument("patient")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--node", help="send to this node (C-STORE or STOW-RS)")
    where.add_argument("--out", help="only write the DICOM files into this folder")
    s.add_argument(
        "--operating-point", default="balanced", choices=("high_sensitivity", "balanced", "high_specificity")
    )
    s.add_argument("--gradcam", action="store_true", help="add Grad-CAM overlays (runs the active models)")
    s.add_argument("--device", help="torch device for --gradcam")
    s.set_defaults(handler=cmd_send)
    n = ps.add_parser("node", help="list, add or remove PACS nodes")
    ns = n.add_subparsers(dest="node_command", metavar="ACTION", required=True)
    ns.add_parser("list", help="the configured nodes and the local AE").set_defaults(handler=cmd_node_list)
    a = ns.add_parser("add", help="add (or replace) a node")
    a.add_argument("name")
    a.add_argument("--aet", default="", help="AE title (DIMSE)")
    a.add_argument("--host", default="")
    a.add_argument("--port", type=int, default=104)
    a.add_argument("--url", default="", help="DICOMweb root URL (makes it a DICOMweb node)")
    a.add_argument("--retrieve", choices=("get", "move"), default="get")
    a.add_argument("--timeout", type=float, default=30.0)
    a.set_defaults(handler=cmd_node_add)
    r = ns.add_parser("remove", help="remove a node")
    r.add_argument("name")
    r.set_defaults(handler=cmd_node_remove)
    loc = ps.add_parser("local", help="set this workstation's AE title and listener port")
    loc.add_argument("--aet")
    loc.add_argument("--port", type=int)
    loc.set_defaults(handler=cmd_local)

    li = sub.add_parser("listen", help="receive pushed studies (C-STORE SCP) and import them until Ctrl+C")
    li.add_argument("--port", type=int, help="port (default: the local AE's)")
    li.add_argument("--aet", help="AE title (default: the local AE's)")
    li.set_defaults(handler=cmd_listen)

    x = sub.add_parser("export", help="export patients de-identified for research sharing")
    x.add_argument("patients", nargs="+")
    x.add_argument(
        "--deidentify",
        action="store_true",
        required=True,
        help="PS3.15 Annex E Basic Profile (required: there is no identified export)",
    )
    x.add_argument("--out", required=True, help="output folder")
    x.add_argument("--dates", choices=("remove", "shift"), default="remove")
    x.add_argument(
        "--burned-in",
        choices=("refuse", "blank"),
        default="refuse",
        help="images with Burned In Annotation YES or absent: refuse (default) or blank outside "
        "the ultrasound tissue region",
    )
    x.set_defaults(handler=cmd_export)


def _err(text: object) -> int:
    print(f"error: {text}", file=sys.stderr)
    return 1


def _settings():  # type: ignore[no-untyped-def]
    from busviewer.dicomnet.nodes import load_settings

    return load_settings()


def _progress(done: int, total: int, text: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{text[:70]:<70}", end="", file=sys.stderr)


def cmd_echo(args: argparse.Namespace) -> int:
    from busviewer.dicomnet.errors import PeerError
    from busviewer.dicomnet.nodes import SettingsError
    from busviewer.services import pacs

    try:
        settings = _settings()
        rtt = pacs.echo(settings, args.node)
    except (PeerError, SettingsError) as exc:
        return _err(exc)
    print(f"{settings.node(args.node).describe()}: answered in {rtt * 1000:.0f} ms")
    return 0


def cmd_find(args: argparse.Namespace) -> int:
    from busviewer.dicomnet.errors import PeerError
    from busviewer.dicomnet.nodes import SettingsError
    from busviewer.services import pacs

    query = pacs.Query(patient_id=args.patient_id, patient_name=args.name, study_date=args.date, modality=args.modality)
    try:
        hits = pacs.find(_settings(), args.node, query, args.level.upper())
    except (PeerError, SettingsError) as exc:
        return _err(exc)
    for h in hits:
        if args.level == "patient":
            print(f"{h.patient_id:<20} {h.patient_name:<30} studies {h.instances or '?'}")
        else:
            print(
                f"{h.patient_id:<20} {h.patient_name:<28} {h.study_date:<8} {h.modalities:<6} "
                f"{h.instances or '?':>4} img  {h.study_uid}  {h.study_description}".rstrip()
            )
    print(f"{len(hits)} match(es)")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from busviewer.core.store import Store
    from busviewer.dicomnet.errors import PeerError
    from busviewer.dicomnet.nodes import SettingsError
    from busviewer.services import pacs

    store, settings, status = Store(), None, 0
    try:
        settings = _settings()
    except SettingsError as exc:
        return _err(exc)
    for uid in args.study_uids:
        try:
            report = pacs.retrieve(store, settings, args.node, uid, progress=_progress)
        except (PeerError, SettingsError) as exc:
            status = _err(exc)
            continue
        if sys.stderr.isatty():
            print(file=sys.stderr)
        print(f"study {uid}: {report.summary()}")
        for problem in report.imported.problems:
            print(f"  skipped {problem}", file=sys.stderr)
        status = status or (1 if report.incomplete else 0)
    return status


def cmd_send(args: argparse.Namespace) -> int:
    from busviewer.core.store import Store
    from busviewer.dicomnet.errors import PeerError
    from busviewer.dicomnet.nodes import SettingsError
    from busviewer.services import results_export as rx

    store = Store()
    cams = None
    if args.gradcam:
        from busviewer.ai.analysis import Analyzer, NoActiveModel

        try:
            cams = rx.compute_cams(Analyzer(store, device=args.device), store, args.patient)
        except NoActiveModel as exc:
            return _err(exc)
    try:
        if args.out:
            bundle = rx.export_results(
                store, args.patient, Path(args.out), cams=cams, operating_point=args.operating_point
            )
            sent = None
        else:
            bundle, sent = rx.send_results(
                store, _settings(), args.node, args.patient, cams=cams, operating_point=args.operating_point
            )
    except (rx.ResultsError, PeerError, SettingsError, KeyError) as exc:
        return _err(exc.args[0] if isinstance(exc, KeyError) else exc)
    for line in bundle.skipped:
        print(f"skipped {line}", file=sys.stderr)
    print(f"written: SR {bundle.sr_path}, {len(bundle.sc_paths)} Grad-CAM image(s) in {bundle.folder}")
    if sent is not None:
        for problem in sent.problems:
            print(f"not sent: {problem}", file=sys.stderr)
        print(f"sent {len(sent.sent)} object(s) to {args.node}")
    print(RESEARCH_NOTICE)
    return 1 if sent is not None and sent.problems else 0


def cmd_node_list(args: argparse.Namespace) -> int:
    from busviewer.dicomnet.nodes import SettingsError, settings_path

    try:
        s = _settings()
    except SettingsError as exc:
        return _err(exc)
    print(f"local AE {s.local.ae_title}, listener port {s.local.port}  ({settings_path()})")
    for n in s.nodes:
        print(f"  {n.name:<16} {n.describe()}  retrieve {n.retrieve if n.transport == 'dimse' else 'wado-rs'}")
    return 0


def cmd_node_add(args: argparse.Namespace) -> int:
    from busviewer.dicomnet.nodes import RemoteNode, SettingsError, save_settings

    transport = "dicomweb" if args.url else "dimse"
    node = RemoteNode(args.name, args.aet, args.host, args.port, transport, args.url, args.retrieve, args.timeout)
    try:
        save_settings(_settings().with_node(node))
    except SettingsError as exc:
        return _err(exc)
    print(f"saved {node.describe()}")
    return 0


def cmd_node_remove(args: argparse.Namespace) -> int:
    from busviewer.dicomnet.nodes import SettingsError, save_settings

    try:
        save_settings(_settings().without_node(args.name))
    except SettingsError as exc:
        return _err(exc)
    print(f"removed {args.name}")
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    from busviewer.dicomnet.nodes import SettingsError, check_ae_title, save_settings

    try:
        s = _settings()
        local = replace(
            s.local, ae_title=check_ae_title(args.aet) if args.aet else s.local.ae_title, port=args.port or s.local.port
        )
        save_settings(replace(s, local=local))
    except SettingsError as exc:
        return _err(exc)
    print(f"local AE {local.ae_title}, listener port {local.port}")
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    from busviewer.core.store import Store
    from busviewer.dicomnet.nodes import SettingsError, check_ae_title
    from busviewer.services.pacs import Listener, ListenerEvent

    try:
        s = _settings()
        local = replace(
            s.local, ae_title=check_ae_title(args.aet) if args.aet else s.local.ae_title, port=args.port or s.local.port
        )
    except SettingsError as exc:
        return _err(exc)
    stop = threading.Event()

    def show(ev: ListenerEvent) -> None:
        print(f"{ev.kind}: {ev.text}", file=sys.stderr if ev.kind == "problem" else sys.stdout, flush=True)

    try:
        Listener(Store(), local).run(stop, show)
    except KeyboardInterrupt:
        stop.set()
    except OSError as exc:
        return _err(exc.strerror or exc)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from busviewer.core.store import Store
    from busviewer.services.deid import DeidOptions, export_deidentified

    store = Store()
    try:
        for key in args.patients:
            store.patient(key)
    except KeyError as exc:
        return _err(exc.args[0])
    report = export_deidentified(store, args.patients, Path(args.out), DeidOptions(args.dates, args.burned_in))
    for line in report.refused:
        print(f"refused {line}", file=sys.stderr)
    print(report.summary())
    print(f"manifest (labels, ROIs): {report.manifest}; import it with `busviewer import {report.manifest}`")
    return 0 if report.exported else 1
