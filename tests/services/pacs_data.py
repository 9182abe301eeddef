"""The pydicom-data ultrasound files of the hospital-integration tests (found through
pydicom's data manager, never copied into the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
