"""Issue 14: worklist columns sized to content (full ids readable), the study/series browser
with patient name, study date, laterality and view from the DICOM header."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gui_helpers import png
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QApplication

from busviewer.core.dicom_views import display_date, display_name, read_view
from busviewer.core.importer import import_paths
from busviewer.core.store import Store
from busviewer.gui.thumbnails import ID_ROLE, ThumbnailStrip
from busviewer.gui.worklist import COL_IMAGES, COL_LABEL, COL_PATIENT, COL_STATE, WorklistWidget

LONG_ID = "11-05-25-1234567-ABCDEF"


def test_worklist_columns_fit_their_content(styled_app, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    png(tmp_path / "study" / LONG_ID / "a.png", seed=1)
    png(tmp_path / "study" / "P2" / "b.png", seed=2)
    store = Store(tmp_path / "store.sqlite")
    import_paths(store, [tmp_path / "study"])
    wl = WorklistWidget()
    qtbot.addWidget(wl)
    wl.resize(430, 400)
    wl.show()
    qtbot.waitExposed(wl)
    wl.set_patients(store.patients())
    QApplication.processEvents()
    bold = QFont(wl.table.font())
    bold.setBold(True)
    fm = QFontMetrics(bold)
    width = wl.table.columnWidth
    assert width(COL_PATIENT) >= fm.horizontalAdvance(LONG_ID) + 8  # the whole id shows
    label_hint = max(fm.horizontalAdvance("–"), wl.table.horizontalHeader().sectionSizeFromContents(COL_LABEL).width())
    assert width(COL_LABEL) <= label_hint + 30  # an empty Label column is narrow
    for col in (COL_IMAGES, COL_STATE):
        assert width(col) <= wl.table.horizontalHeader().sectionSizeFromContents(col).width() + 30
    row = wl.model.row_of(LONG_ID)
    assert wl.model.index(row, COL_PATIENT).data(3).startswith(LONG_ID)  # tooltip: the full id
    wl.table.horizontalHeader().resizeSection(COL_PATIENT, 90)  # the reader narrows it: it stays
    wl.set_patients(store.patients())
    assert width(COL_PATIENT) == 90
    store.close()


@pytest.fixture
def dicom_patient(tmp_path: Path) -> Path:
    """Two real pydicom-data files of one patient; a copy of one in a second series whose
    header names the left breast and a radial view (as breast ultrasound devices write it)."""
    pydicom = pytest.importorskip("pydicom")
    data_store = pytest.importorskip("data_store")
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    src = Path(data_store.__file__).parent / "data"
    folder = tmp_path / "dicom"
    folder.mkdir()
    shutil.copy2(src / "OBXXXX1A.dcm", folder / "a.dcm")
    ds = pydicom.dcmread(src / "OBXXXX1A.dcm")
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesDescription = "Left breast radial"
    ds.ImageLaterality = "L"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "R-10B1F", "SRT", "radial"
    ds.ViewCodeSequence = [code]
    ds.save_as(folder / "b.dcm")
    return folder


def test_study_series_browser_and_header(styled_app, qtbot, tmp_path: Path, dicom_patient: Path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "store.sqlite")
    report = import_paths(store, [dicom_patient])
    assert report.added == 2, report.summary()
    (patient,) = store.patients()
    records = store.images(patient.patient_key)
    assert read_view(records[1].source_path).short() == "L · radial"
    strip = ThumbnailStrip()
    qtbot.addWidget(strip)
    headers: list[str] = []
    strip.headerChanged.connect(headers.append)
    strip.set_images(records, store.studies(patient.patient_key), patient.patient_key, patient.name)
    assert headers[0].startswith(f"Patient {patient.patient_key} · OB · study 2011-05-25")  # at once
    qtbot.waitUntil(lambda: len(headers) == 2, timeout=10_000)  # then with the views read in a worker
    header = headers[1]
    assert "left breast" in header and header.endswith("2 images")
    groups = [strip.item(i).text() for i in range(strip.count()) if strip.item(i).data(ID_ROLE) is None]
    assert len(groups) == 2 and all(g.startswith("Study 2011-05-25") for g in groups)
    assert any("Left breast radial" in g for g in groups)
    assert strip.image_ids() == [r.id for r in records]
    assert strip.view_text(records[1].id) == "L · radial" and strip.view_text(records[0].id) == ""
    caption = next(strip.item(i).text() for i in range(strip.count()) if strip.item(i).data(ID_ROLE) == records[1].id)
    assert "L · radial" in caption
    store.close()


def test_display_helpers() -> None:
    assert display_name("Doe^Jane^M^^") == "Doe, Jane M" and display_name("OB^^^^") == "OB"
    assert display_date("20110525") == "2011-05-25" and display_date("1994.11.05") == "1994-11-05"
