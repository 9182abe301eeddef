"""Fixtures of the hospital-integration tests: a real Orthanc and the pydicom-data
ultrasound files (found through pydicom's data manager, never copied into the repo)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from orthanc_server import LOCAL_AET, Orthanc, start_orthanc  # noqa: E402
from pacs_data import FILES_13US1, OTHER_FILES, us_file  # noqa: E402

from busviewer.dicomnet.nodes import LocalAE, NetworkSettings, RemoteNode  # noqa: E402


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    server = start_orthanc(tmp_path / "orthanc")
    yield server
    server.stop()


@pytest.fixture
def net(orthanc: Orthanc) -> NetworkSettings:
    """This workstation (AE BUSVIEWER, known to Orthanc) and Orthanc by DIMSE and DICOMweb."""
    local = LocalAE(LOCAL_AET, orthanc.listener_port, "127.0.0.1")
    return NetworkSettings(
        local,
        (
            RemoteNode("orthanc", orthanc.aet, "127.0.0.1", orthanc.dicom_port, timeout_s=10),
            RemoteNode("orthanc-move", orthanc.aet, "127.0.0.1", orthanc.dicom_port, retrieve="move", timeout_s=10),
            RemoteNode("orthanc-web", transport="dicomweb", url=orthanc.dicomweb_url, timeout_s=10),
        ),
    )


@pytest.fixture
def loaded(orthanc: Orthanc) -> Orthanc:
    for name in FILES_13US1 + OTHER_FILES:
        orthanc.upload(us_file(name))
    return orthanc
