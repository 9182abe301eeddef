"""Fixtures of the hospital-integration tests: a real Orthanc and the pydicom-data
ultrasound files (found through pydicom's data manager, never copied into the repo)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from orthanc_server import LOCAL_AET, Orthanc, start_orthanc  # noqa: E402

from busviewer.dicomnet.nodes import LocalAE, NetworkSettings, RemoteNode  # noqa: E402

#: Distinct SOP instances: patient 13US1 (one study, RGB + JPEG 2000 lossless), patient
#: 11-05-25-142825 (regions, Burned In Annotation absent), patient 98279 (regions).
STUDY_13US1 = "1.3.6.1.4.1.5962.1.2.13.20040826185059.5457"
FILES_13US1 = ("US1_UNCR.dcm", "US1_J2KR.dcm")
OTHER_FILES = ("OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm")


def us_file(name: str) -> Path:
    """A pydicom-data file through pydicom's data manager (skips when pydicom-data is missing)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom-data file {name} not found (pip install pydicom-data)")
    return Path(path)


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    server = start_orthanc(tmp_path / "orthanc")
    yield server
    server.stop()


@pytest.fixture
def net(orthanc: Orthanc) -> NetworkSettings:
    """This workstation (AE BUSVIEWER, known to Orthanc) and Orthanc by DIMSE and DICOMweb."""
    local = LocalAE(LOCAL_AET, orthanc.listener_port, "127.0.0.1")
    return NetworkSettings(local, (
        RemoteNode("orthanc", orthanc.aet, "127.0.0.1", orthanc.dicom_port, timeout_s=10),
        RemoteNode("orthanc-move", orthanc.aet, "127.0.0.1", orthanc.dicom_port, retrieve="move", timeout_s=10),
        RemoteNode("orthanc-web", transport="dicomweb", url=orthanc.dicomweb_url, timeout_s=10),
    ))


@pytest.fixture
def loaded(orthanc: Orthanc) -> Orthanc:
    for name in FILES_13US1 + OTHER_FILES:
        orthanc.upload(us_file(name))
    return orthanc
