"""A real Orthanc PACS for the DICOM networking tests: started in the foreground from a
JSON config on 127.0.0.1 with free ports and a temporary storage folder, stopped after.

With ``CI=true`` a missing Orthanc fails the tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ORTHANC_AET = "ORTHANC"
LOCAL_AET = "BUSVIEWER"
PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def orthanc_binary() -> str:
    """The Orthanc executable; skips (or fails with CI=true) when it is not installed."""
    exe = shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc",) if os.access(p, os.X_OK)), None)
    if exe is None:
        message = "Orthanc is not installed: apt-get update && apt-get install -y orthanc orthanc-dicomweb dicom3tools"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return exe


def dicomweb_plugin() -> Path:
    for folder in PLUGIN_DIRS:
        found = sorted(folder.glob("libOrthancDicomWeb.so*")) if folder.is_dir() else []
        if found:
            return found[0]
    message = "the Orthanc DICOMweb plugin is not installed (apt-get install -y orthanc-dicomweb)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError  # unreachable


@dataclass
class Orthanc:
    """A running Orthanc: DICOM at ``dicom_port`` (AE ``aet``), REST/DICOMweb at ``http_url``."""

    process: subprocess.Popen
    folder: Path
    dicom_port: int
    http_port: int
    listener_port: int
    aet: str = ORTHANC_AET

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.http_url}/dicom-web"

    def rest(self, path: str, data: bytes | None = None, method: str | None = None) -> object:
        req = urllib.request.Request(self.http_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def upload(self, path: Path) -> str:
        """Upload one DICOM file through the REST API; returns Orthanc's instance id."""
        return str(self.rest("/instances", path.read_bytes())["ID"])  # type: ignore[index]

    def instances(self) -> list[str]:
        return list(self.rest("/instances"))  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_orthanc(folder: Path, listener_port: int | None = None, with_dicomweb: bool = True) -> Orthanc:
    """Start Orthanc with its storage in ``folder``; knows the local AE ``BUSVIEWER`` at
    127.0.0.1:``listener_port`` (C-FIND/C-GET/C-MOVE allowed for it only)."""
    exe = orthanc_binary()
    folder.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port = free_port(), free_port()
    listener_port = listener_port or free_port()
    config = {
        "Name": "busviewer-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": ORTHANC_AET,
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowGet": False,
        "DicomAlwaysAllowMove": False,
        "DicomScpTimeout": 10,
        "DicomModalities": {LOCAL_AET: [LOCAL_AET, "127.0.0.1", listener_port]},
        "UnknownSopClassAccepted": False,
        "StorageCompression": False,
        "Plugins": [str(dicomweb_plugin())] if with_dicomweb else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
    }
    cfg = folder / "orthanc.json"
    cfg.write_text(json.dumps(config, indent=2))
    log = (folder / "orthanc.log").open("wb")
    proc = subprocess.Popen([exe, str(cfg)], stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    server = Orthanc(proc, folder, dicom_port, http_port, listener_port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited ({proc.returncode}):\n{(folder / 'orthanc.log').read_text()[-3000:]}")
        try:
            server.rest("/system")
            with socket.create_connection(("127.0.0.1", dicom_port), timeout=1):
                return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"Orthanc did not start within 60 s:\n{(folder / 'orthanc.log').read_text()[-3000:]}")
