"""PACS query/retrieve/listen against a real Orthanc (DIMSE and DICOMweb)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from orthanc_server import Orthanc, start_orthanc
from pacs_data import FILES_13US1, OTHER_FILES, STUDY_13US1, us_file

from busviewer.core.importer import import_paths
from busviewer.core.store import Store
from busviewer.dicomnet.errors import PeerError
from busviewer.dicomnet.nodes import LocalAE, NetworkSettings, RemoteNode, load_settings, save_settings
from busviewer.services import pacs
from busviewer.services.pacs import Listener, ListenerEvent, Query, content_key


def _pixel_keys(store: Store) -> dict[str, str]:
    """SOP Instance UID -> hash of the decoded pixels of every stored image."""
    return {rec.sop_uid: content_key(rec.source_path) for rec in store.images()}  # type: ignore[misc]


def test_settings_persist(tmp_path: Path) -> None:
    s = NetworkSettings(LocalAE("WS1", 11113)).with_node(RemoteNode("pacs", "PACS", "10.0.0.5", 4242))
    s = s.with_node(RemoteNode("web", transport="dicomweb", url="http://pacs/dicom-web"))
    save_settings(s)
    again = load_settings()
    assert again == s and again.node("pacs").port == 4242
    with pytest.raises(ValueError, match="no PACS node named 'nope'"):
        again.node("nope")
    with pytest.raises(ValueError, match="AE title"):
        s.with_node(RemoteNode("bad", "THIS AE TITLE IS TOO LONG", "h", 1))


def test_find_and_retrieve_equal_direct_import(loaded: Orthanc, net: NetworkSettings, tmp_path: Path) -> None:
    assert pacs.echo(net, "orthanc") < 10 and pacs.echo(net, "orthanc-web") < 10
    studies = pacs.find(net, "orthanc", Query(modality="US"))
    assert {s.patient_id for s in studies} == {"13US1", "11-05-25-142825", "98279"}
    assert (
        pacs.find(net, "orthanc", Query(patient_id="13US1"), level="PATIENT")[0].patient_name == "CompressedSamples^US1"
    )
    (web_hit,) = pacs.find(net, "orthanc-web", Query(patient_id="13US1"))
    assert web_hit.study_uid == STUDY_13US1 and web_hit.instances == 2

    direct = Store(tmp_path / "direct.sqlite")
    import_paths(direct, [us_file(n) for n in FILES_13US1 + OTHER_FILES])
    store = Store(tmp_path / "pacs.sqlite")
    seen: list[tuple[int, int, str]] = []
    report = pacs.retrieve(store, net, "orthanc", STUDY_13US1, progress=lambda *a: seen.append(a))
    assert report.incomplete is None and report.received == 2 and report.imported.added == 2, report.summary()
    assert seen and all(p.is_relative_to(pacs.received_dir()) for p in (r.source_path for r in store.images()))
    other = next(s.study_uid for s in studies if s.patient_id == "11-05-25-142825")
    assert pacs.retrieve(store, net, "orthanc-web", other).imported.added == 1  # WADO-RS
    expected = {k: v for k, v in _pixel_keys(direct).items() if k in _pixel_keys(store)}
    assert len(expected) == 3 and _pixel_keys(store) == expected
    again = pacs.retrieve(store, net, "orthanc", STUDY_13US1)  # duplicates skipped, no stray copies
    assert again.imported.added == 0 and again.imported.existing == 2 and store.counts()["images"] == 3
    assert len(list(pacs.received_dir().rglob("*.dcm"))) == 3


def test_move_into_a_temporary_listener(loaded: Orthanc, net: NetworkSettings, tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    report = pacs.retrieve(store, net, "orthanc-move", STUDY_13US1)
    assert report.imported.added == 2 and report.incomplete is None
    assert {r.patient_key for r in store.images()} == {"13US1"}


def _run_listener(store: Store, local: LocalAE) -> tuple[threading.Event, list[ListenerEvent], threading.Thread]:
    stop, events = threading.Event(), []
    thread = threading.Thread(target=Listener(store, local).run, args=(stop, events.append), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not any(e.kind == "started" for e in events) and time.monotonic() < deadline:
        time.sleep(0.05)
    return stop, events, thread


def _wait(events: list[ListenerEvent], kind: str, n: int, timeout: float = 60) -> list[ListenerEvent]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in events if e.kind == kind]
        if len(found) >= n:
            return found
        time.sleep(0.1)
    raise AssertionError(f"only {events} after {timeout} s")


def test_listener_imports_pushed_study_and_refuses_malformed(
    loaded: Orthanc, net: NetworkSettings, tmp_path: Path
) -> None:
    store = Store(tmp_path / "s.sqlite")
    stop, events, thread = _run_listener(store, net.local)
    try:
        ids = [i for i in loaded.instances()]
        job = loaded.rest(
            "/modalities/BUSVIEWER/store", ("[" + ",".join(f'"{i}"' for i in ids) + "]").encode(), method="POST"
        )  # Orthanc pushes everything to the listener
        assert job is not None
        imported = _wait(events, "imported", 4)
        assert {e.patient_key for e in imported} == {"13US1", "11-05-25-142825", "98279"}
        assert store.counts()["images"] == 4

        # Malformed datasets: an image cut short (no pixel data), and one whose SOP Instance
        # UID is a path ("../../evil") instead of a UID.
        good = us_file("OBXXXX1A.dcm")
        (tmp_path / "cut.dcm").write_bytes(good.read_bytes()[:2000])
        evil = pydicom.dcmread(good)
        evil.SOPInstanceUID = "../../evil"
        evil.save_as(tmp_path / "evil.dcm")
        self_node = RemoteNode("me", net.local.ae_title, "127.0.0.1", net.local.port, timeout_s=10)
        sent = pacs.send_files(replace(net, nodes=(self_node,)), "me", [tmp_path / "cut.dcm", tmp_path / "evil.dcm"])
        assert not sent.sent and len(sent.problems) == 2 and all("0xc210" in p for p in sent.problems), sent
        problems = _wait(events, "problem", 2)
        assert all("refused a dataset pushed by BUSVIEWER@127.0.0.1" in p.text for p in problems)
        assert (
            "without pixel data" in problems[0].text and "SOPInstanceUID missing or not a valid UID" in problems[1].text
        )
        assert not list(pacs.received_dir().parent.rglob("*evil*"))  # nothing written anywhere
        assert store.counts()["images"] == 4 and not list(pacs.received_dir().rglob(".part-*"))
    finally:
        stop.set()
        thread.join(20)
    assert events[-1].kind == "stopped"


def test_bad_peers_get_clear_messages(loaded: Orthanc, net: NetworkSettings) -> None:
    wrong_aet = replace(net.node("orthanc"), name="typo", ae_title="NOTORTHANC")
    with pytest.raises(
        PeerError, match=r"PACS 'typo' \(NOTORTHANC@127\.0\.0\.1:\d+\): .*called AE title 'NOTORTHANC' not recognised"
    ):
        pacs.echo(net.with_node(wrong_aet), "typo")
    stranger = replace(net, local=LocalAE("STRANGER", net.local.port))
    stranger = stranger.with_node(replace(net.node("orthanc"), timeout_s=3))
    with pytest.raises(PeerError, match=r"PACS 'orthanc'.*'STRANGER'.*registered"):
        pacs.find(stranger, "orthanc", Query())
    closed = replace(net.node("orthanc"), name="down", port=_closed_port())
    with pytest.raises(PeerError, match=r"PACS 'down' .*connection refused"):
        pacs.echo(net.with_node(closed), "down")
    with socket.socket() as silent:  # accepts TCP, never answers the association request
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        mute = RemoteNode("mute", "MUTE", "127.0.0.1", silent.getsockname()[1], timeout_s=1.5)
        with pytest.raises(PeerError, match=r"PACS 'mute' .*timeout"):
            pacs.echo(net.with_node(mute), "mute")
    web_down = replace(net.node("orthanc-web"), name="webdown", url=f"http://127.0.0.1:{_closed_port()}/dicom-web")
    with pytest.raises(PeerError, match=r"PACS 'webdown' .*connection refused"):
        pacs.find(net.with_node(web_down), "webdown", Query())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_peer_abort_mid_retrieve_keeps_whole_images_only(tmp_path: Path) -> None:
    server = start_orthanc(tmp_path / "dying")
    try:
        for name in FILES_13US1:
            server.upload(us_file(name))
        local = LocalAE("BUSVIEWER", server.listener_port, "127.0.0.1")
        net = NetworkSettings(local, (RemoteNode("dying", server.aet, "127.0.0.1", server.dicom_port, timeout_s=10),))
        store = Store(tmp_path / "s.sqlite")

        def kill_after_first(done: int, total: int, text: str) -> None:
            if done == 1 and text.startswith("received") and server.process.poll() is None:
                server.process.kill()  # the PACS dies while the first image is being acknowledged
                server.process.wait(10)

        report = pacs.retrieve(store, net, "dying", STUDY_13US1, progress=kill_after_first)
    finally:
        server.stop()
    assert report.incomplete is not None and "PACS 'dying'" in report.summary()
    assert "aborted" in report.incomplete or "interrupted" in report.incomplete
    assert report.received == 1 and store.counts()["images"] == 1
    (rec,) = store.images()
    assert content_key(rec.source_path)  # whole and decodable
    assert not list(pacs.received_dir().rglob(".part-*")) and not list((pacs.received_dir() / ".staging").iterdir())
