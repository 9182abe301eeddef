"""The DICOM SR of the results (issue 14): an image outside the training data has no
result in it, an indeterminate one is called "indeterminate" (as in the app, CLI and PDF)."""

from __future__ import annotations

from pathlib import Path

import pydicom

from busviewer.ai.results import ImagePrediction, summarise
from busviewer.services.results_sr import CALL, IMAGE_RESULT, build_sr, read_sr

SHA = "ab" * 32


def _calls(sr) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    for item in sr.ContentSequence:
        for child in item.get("ContentSequence", []):
            if child.ConceptNameCodeSequence[0].CodeMeaning == IMAGE_RESULT.meaning:
                out += [
                    str(c.TextValue)
                    for c in child.ContentSequence
                    if c.ConceptNameCodeSequence[0].CodeMeaning == CALL.meaning
                ]
    return out


def test_sr_leaves_out_outside_images_and_says_indeterminate(us_dicom_dir: Path) -> None:
    names = ("JPGLosslessP14SV1_1s_1f_8b.dcm", "color-pl.dcm", "OBXXXX1A.dcm")
    headers = {
        i: pydicom.dcmread(next(us_dicom_dir.rglob(n)), stop_before_pixels=True) for i, n in enumerate(names, start=1)
    }
    probs = {1: 0.52, 2: 0.97, 3: 0.9}
    preds = {
        (i, "vgg16"): ImagePrediction(i, 0, None, "vgg16", "m", 1, {"benign": 1 - p, "malignant": p}, p, "benign", SHA)
        for i, p in probs.items()
    }
    analysis = summarise("P", preds, outside={2: "outside the model's training data: colour Doppler"})
    sr = build_sr(analysis, headers)
    (model,) = read_sr(sr)["models"]
    assert set(model["images"]) == {str(headers[1].SOPInstanceUID), str(headers[3].SOPInstanceUID)}
    assert sorted(_calls(sr)) == ["indeterminate", "malignant"]
