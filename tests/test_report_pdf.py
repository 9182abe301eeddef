"""The PDF report (issue 14): every text box on the page, the app's image numbering, model
name/version/sha256, operating point and band, BI-RADS, biopsy flag, ROI crops with their
classifications, indeterminate and outside-the-training-data results; pages rendered to PNG."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from busviewer.ai.results import image_numbers
from busviewer.core.importer import import_paths
from busviewer.core.store import Store
from busviewer.report import export_patient_report

pdfium = pytest.importorskip("pypdfium2")
SHOTS = Path("/tmp/screens/issue14")
SHA_E, SHA_V = "e1" * 32, "0f" * 32


def _rows(image_id: int, image_hash: str, probs: dict[str, float], roi_id: int | None = None) -> list[dict]:
    out = []
    for arch, p in probs.items():
        out.append(
            dict(
                image_id=image_id,
                frame=0,
                roi_id=roi_id,
                model_name=f"busi-{arch}",
                model_version=3,
                architecture=arch,
                model_sha256=SHA_E if arch == "ensemble" else SHA_V,
                image_hash=image_hash,
                label="malignant" if p >= 0.5 else "benign",
                malignant_probability=p,
                probabilities={"benign": 1 - p, "malignant": p},
            )
        )
    return out


def _pages(pdf_path: Path) -> list[tuple[str, list[tuple[float, float, float, float]], tuple[float, float]]]:
    doc = pdfium.PdfDocument(str(pdf_path))
    pages = []
    for i in range(len(doc)):
        page = doc[i]
        tp = page.get_textpage()
        text = tp.get_text_range()
        boxes = [tp.get_charbox(k) for k in range(tp.count_chars()) if not text[k].isspace()] if text else []
        pages.append((text, boxes, (page.get_width(), page.get_height())))
    return pages


def test_report_text_stays_on_the_page_and_carries_the_reading(tmp_path: Path, busi_dir: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    folder = tmp_path / "in" / "PAT-REPORT"
    folder.mkdir(parents=True)
    long_name = "right-breast-upper-outer-quadrant-radial-view-lesion-at-10-oclock-" * 2 + "a.png"
    shutil.copy(busi_dir / "images" / "malignant" / "malignant (6).png", folder / long_name)
    shutil.copy(busi_dir / "images" / "benign" / "benign (1).png", folder / "b.png")
    import_paths(store, [folder])
    recs = store.images("PAT-REPORT")
    numbers = image_numbers(recs)  # the app's numbers
    first = next(r for r in recs if r.name == long_name)
    second = next(r for r in recs if r.name == "b.png")
    n1, n2 = numbers[first.id], numbers[second.id]
    store.set_label(
        "malignant",
        patient_key="PAT-REPORT",
        source="biopsy",
        birads="4C",
        biopsy_confirmed=True,
        note="core biopsy " * 30,
    )
    store.set_label("benign", image_id=second.id, birads="3")
    roi = store.add_roi(first.id, (60, 60, 180, 160))
    store.add_predictions(
        _rows(first.id, first.content_hash, {"ensemble": 0.93, "vgg16": 0.51})
        + _rows(second.id, second.content_hash, {"ensemble": 0.12, "vgg16": 0.45})
        + _rows(first.id, first.content_hash, {"ensemble": 0.88, "vgg16": 0.71}, roi.id)
    )
    out = export_patient_report(store, "PAT-REPORT", tmp_path / "r.pdf")

    pages = _pages(out)
    assert len(pages) == 3  # summary + one page per image
    for n, (text, boxes, (w, h)) in enumerate(pages):
        assert boxes, f"page {n + 1} has no text"
        for left, bottom, right, top in boxes:
            assert left >= 0 and right <= w and bottom >= 0 and top <= h, (n + 1, (left, bottom, right, top), (w, h))
        assert "Research use only" in text
    summary = pages[0][0].replace("\r\n", "\n")
    flat = " ".join(summary.split())
    assert "busi-ensemble v3" in flat and "busi-vgg16 v3" in flat
    assert SHA_E in summary.replace("\n", "") and SHA_V in summary.replace("\n", "")
    assert "Balanced operating point" in flat and "indeterminate if 0.40 < p < 0.60" in flat
    assert "BI-RADS 4C" in flat and "biopsy confirmed" in flat
    assert "VGG-16: INDETERMINATE" in flat and "2 indeterminate (not counted)" in flat
    assert "ENSEMBLE" not in flat and "Ensemble (AlexNet + ResNet-18): MALIGNANT" in flat
    assert "Tie: counted as malignant" in flat  # ensemble: 1 malignant, 1 benign
    assert f"#{n1} right-breast" in flat and f"#{n2} b.png" in flat and "BI-RADS 3" in flat
    assert "The models disagree on the patient verdict" in flat
    page2 = " ".join(pages[n1][0].split())
    assert f"Image #{n1}: right-breast" in page2
    assert "VGG-16 (busi-vgg16 v3): indeterminate (leans malignant)" in page2
    assert "R1 (120x100 px at 60,60): Ensemble malignant 0.88 (busi-ensemble v3); VGG-16 malignant 0.71" in page2
    assert f"Image #{n2}: b.png" in " ".join(pages[n2][0].split())

    SHOTS.mkdir(parents=True, exist_ok=True)
    doc = pdfium.PdfDocument(str(out))
    for i in range(len(doc)):
        img = doc[i].render(scale=1.2).to_pil()
        assert img.size[0] > 500
        img.save(SHOTS / f"report_page{i + 1}.png")


def test_report_says_not_classified_for_an_image_outside_the_training_data(tmp_path: Path, us_dicom_dir: Path) -> None:
    from busviewer.core.store.flags import guard_images

    store = Store(tmp_path / "s.sqlite")
    (tmp_path / "in").mkdir()
    shutil.copy(next(us_dicom_dir.rglob("color-pl.dcm")), tmp_path / "in" / "doppler.dcm")
    import_paths(store, [tmp_path / "in"])
    (patient,) = store.patients()
    (rec,) = store.images(patient.patient_key)
    store.add_predictions(_rows(rec.id, rec.content_hash, {"ensemble": 0.97, "vgg16": 0.91}))
    assert guard_images(store, [rec])[rec.id].blocks
    out = export_patient_report(store, patient.patient_key, tmp_path / "r.pdf")
    pages = _pages(out)
    summary, image_page = (" ".join(p[0].split()) for p in pages)
    assert "Image #1: outside the model's training data: colour Doppler" in summary
    assert "NOT CLASSIFIED" in summary and "0.97" not in summary and "0.91" not in summary
    assert "Not classified: outside the model's training data" in image_page and "0.97" not in image_page
    for _text, boxes, (w, h) in pages:
        assert all(b[0] >= 0 and b[2] <= w and b[1] >= 0 and b[3] <= h for b in boxes)


def test_worklist_verdicts_leave_out_images_outside_the_training_data(tmp_path: Path, us_dicom_dir: Path) -> None:
    """The worklist's AI column at start-up (stored predictions, no model run) follows the
    input guard's stored finding like the open patient does."""
    from busviewer.core.store.flags import guard_images
    from busviewer.gui.tasks import task_stored_verdicts

    store = Store(tmp_path / "s.sqlite")
    (tmp_path / "in").mkdir()
    shutil.copy(next(us_dicom_dir.rglob("color-pl.dcm")), tmp_path / "in" / "doppler.dcm")
    import_paths(store, [tmp_path / "in"])
    (patient,) = store.patients()
    (rec,) = store.images(patient.patient_key)
    store.add_predictions(_rows(rec.id, rec.content_hash, {"ensemble": 0.97, "vgg16": 0.91}))
    assert "malignant" in task_stored_verdicts(store)[patient.patient_key].lower()  # not checked yet
    assert guard_images(store, [rec])[rec.id].blocks
    text = task_stored_verdicts(store).get(patient.patient_key, "")
    assert "malignant" not in text.lower(), text
    store.close()
