"""The DICOM Comprehensive SR of one patient analysis (highdicom).

Content tree (codes ``99BUSV`` are busviewer's private coding scheme; DCM where one fits)::

    CONTAINER  AI second reading of breast ultrasound (99BUSV BUSV-REPORT)
      TEXT     Comment (DCM 121106)                  = the research-use notice
      TEXT     Operating point (99BUSV BUSV-OP)      = e.g. "balanced"          (if in force)
      CONTAINER Model result (99BUSV BUSV-MODEL)            one per model
        TEXT   Algorithm Name (DCM 111001) / Algorithm Version (DCM 111003)
        TEXT   Model weights SHA-256 (99BUSV BUSV-SHA256)
        NUM    Decision threshold (99BUSV BUSV-THR)   (if the operating point is in force)
        TEXT   Patient vote (99BUSV BUSV-VOTE)        = benign | malignant
        NUM    Images called malignant / benign (99BUSV BUSV-NMAL / BUSV-NBEN)
        TEXT   Tie counted as malignant (99BUSV BUSV-TIE) = yes | no
        CONTAINER Image result (99BUSV BUSV-IMAGE)           one per image
          NUM  Probability of malignancy (99BUSV BUSV-PMAL), unit 1
            IMAGE  Source image (DCM 121112)  INFERRED FROM -> the source SOP Instance
          TEXT Image call (99BUSV BUSV-CALL)    = benign | malignant
      CONTAINER Reader labels (99BUSV BUSV-READER)           (if any)
        TEXT   Reader label (99BUSV BUSV-LABEL) [INFERRED FROM the image, for image labels]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import highdicom as hd
from highdicom.sr import (
    CodedConcept,
    ContainerContentItem,
    ContentItem,
    ContentSequence,
    ImageContentItem,
    NumContentItem,
    RelationshipTypeValues,
    TextContentItem,
)
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from busviewer.core.notice import RESEARCH_NOTICE

SCHEME = "99BUSV"
CONTAINS = RelationshipTypeValues.CONTAINS
INFERRED_FROM = RelationshipTypeValues.INFERRED_FROM
UNIT_ONE = CodedConcept("1", "UCUM", "no units")
UNIT_IMAGES = CodedConcept("{images}", "UCUM", "images")


def code(value: str, meaning: str, scheme: str = SCHEME) -> CodedConcept:
    return CodedConcept(value, scheme, meaning)


TITLE = code("BUSV-REPORT", "AI second reading of breast ultrasound")
COMMENT = code("121106", "Comment", "DCM")
OPERATING_POINT = code("BUSV-OP", "Operating point")
MODEL = code("BUSV-MODEL", "Model result")
ALGORITHM_NAME = code("111001", "Algorithm Name", "DCM")
ALGORITHM_VERSION = code("111003", "Algorithm Version", "DCM")
SHA256 = code("BUSV-SHA256", "Model weights SHA-256")
THRESHOLD = code("BUSV-THR", "Decision threshold")
VOTE = code("BUSV-VOTE", "Patient vote")
N_MALIGNANT = code("BUSV-NMAL", "Images called malignant")
N_BENIGN = code("BUSV-NBEN", "Images called benign")
TIE = code("BUSV-TIE", "Tie counted as malignant")
IMAGE_RESULT = code("BUSV-IMAGE", "Image result")
P_MALIGNANT = code("BUSV-PMAL", "Probability of malignancy")
CALL = code("BUSV-CALL", "Image call")
SOURCE = code("121112", "Source of Measurement", "DCM")
READER = code("BUSV-READER", "Reader labels")
READER_LABEL = code("BUSV-LABEL", "Reader label")


def _text(name: CodedConcept, value: str, rel: RelationshipTypeValues = CONTAINS) -> TextContentItem:
    return TextContentItem(name=name, value=str(value)[:1024] or "-", relationship_type=rel)


def _num(name: CodedConcept, value: float, unit: CodedConcept = UNIT_ONE) -> NumContentItem:
    return NumContentItem(name=name, value=float(value), unit=unit, relationship_type=CONTAINS)


def _image_ref(ds: Dataset) -> ImageContentItem:
    return ImageContentItem(
        name=SOURCE,
        referenced_sop_class_uid=ds.SOPClassUID,
        referenced_sop_instance_uid=ds.SOPInstanceUID,
        relationship_type=INFERRED_FROM,
    )


_Item = TypeVar("_Item", bound=ContentItem)


def _with_children(item: _Item, children: Sequence[ContentItem]) -> _Item:
    item.ContentSequence = ContentSequence(list(children))
    return item


def _container(
    name: CodedConcept, children: Sequence[ContentItem], rel: RelationshipTypeValues | None = CONTAINS
) -> ContainerContentItem:
    return _with_children(ContainerContentItem(name=name, relationship_type=rel), children)


def label_text(label: Any) -> str:
    """``malignant (reader jdoe, BI-RADS 4, biopsy confirmed)`` from a LabelRecord."""
    parts = [f"{label.source} {label.user}".strip()]
    if getattr(label, "birads", None):
        parts.append(f"BI-RADS {label.birads}")
    if getattr(label, "biopsy_confirmed", False):
        parts.append("biopsy confirmed")
    return f"{label.label} ({', '.join(parts)})"


def build_sr(
    analysis: Any,
    headers: Mapping[int, Dataset],
    image_labels: Mapping[int, Sequence[Any]] | None = None,
    patient_labels: Sequence[Any] = (),
    series_number: int = 9901,
) -> hd.sr.ComprehensiveSR:
    """The SR of ``analysis`` (a PatientAnalysis); ``headers`` maps image id to the source
    file's header (images without one, e.g. PNG imports, cannot be referenced and are left
    out); ``image_labels`` / ``patient_labels``: the reader's LabelRecords."""
    if not headers:
        raise ValueError(f"patient {analysis.patient_key}: no DICOM source images, so no SR can reference them")
    items: list[ContentItem] = [_text(COMMENT, RESEARCH_NOTICE)]
    point = getattr(analysis, "operating_point", None)
    if point:
        items.append(_text(OPERATING_POINT, point))
    for arch, verdict in analysis.verdicts.items():
        outside = getattr(analysis, "outside", {}) or {}  # no result for images outside the training data
        preds = sorted(
            (
                (iid, p)
                for (iid, a), p in analysis.predictions.items()
                if a == arch and iid in headers and iid not in outside
            ),
            key=lambda x: x[0],
        )
        if not preds:
            continue
        first = preds[0][1]
        model: list[ContentItem] = [
            _text(ALGORITHM_NAME, f"{first.model_name} ({arch})"),
            _text(ALGORITHM_VERSION, str(first.model_version)),
            _text(SHA256, getattr(first, "model_sha256", "") or "unknown"),
        ]
        threshold = getattr(verdict, "threshold", None)
        if point and isinstance(threshold, float):
            model.append(_num(THRESHOLD, threshold))
        model += [
            _text(VOTE, verdict.label),
            _num(N_MALIGNANT, verdict.malignant_votes, UNIT_IMAGES),
            _num(N_BENIGN, verdict.benign_votes, UNIT_IMAGES),
            _text(TIE, "yes" if verdict.tie_decided else "no"),
        ]
        for iid, p in preds:
            num = _with_children(_num(P_MALIGNANT, p.malignant_probability), [_image_ref(headers[iid])])
            unsure = getattr(analysis, "is_indeterminate", lambda *_: False)(iid, arch)
            model.append(_container(IMAGE_RESULT, [num, _text(CALL, "indeterminate" if unsure else p.label)]))
        items.append(_container(MODEL, model))
    reader: list[ContentItem] = [_text(READER_LABEL, "patient: " + label_text(lab)) for lab in patient_labels]
    for iid, labels in sorted((image_labels or {}).items()):
        if iid in headers:
            for lab in labels:
                reader.append(_with_children(_text(READER_LABEL, label_text(lab)), [_image_ref(headers[iid])]))
    if reader:
        items.append(_container(READER, reader))
    root = _container(TITLE, items, rel=None)
    evidence = list(headers.values())
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=root,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="busviewer",
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    sr.SeriesDescription = "busviewer AI second reading (research use only)"
    return sr


def read_sr(ds: Dataset) -> dict[str, Any]:
    """The values of an SR made by :func:`build_sr`: notice, operating point, and per model
    its name/version/sha256/vote/counts and ``images`` {SOP Instance UID: probability}."""
    out: dict[str, Any] = {"models": [], "reader": []}

    def meaning(item: Dataset) -> str:
        return str(item.ConceptNameCodeSequence[0].CodeMeaning)

    def value(item: Dataset) -> Any:
        if item.ValueType == "TEXT":
            return str(item.TextValue)
        if item.ValueType == "NUM":
            return float(item.MeasuredValueSequence[0].NumericValue)
        return None

    for item in ds.ContentSequence:
        name = meaning(item)
        if name == COMMENT.meaning:
            out["notice"] = value(item)
        elif name == OPERATING_POINT.meaning:
            out["operating_point"] = value(item)
        elif name == MODEL.meaning:
            model: dict[str, Any] = {"images": {}}
            for child in item.ContentSequence:
                cname = meaning(child)
                if cname == IMAGE_RESULT.meaning:
                    num = next(c for c in child.ContentSequence if meaning(c) == P_MALIGNANT.meaning)
                    sop = str(num.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
                    model["images"][sop] = value(num)
                else:
                    model[cname] = value(child)
            out["models"].append(model)
        elif name == READER.meaning:
            for child in item.ContentSequence:
                refs = [
                    str(c.ReferencedSOPSequence[0].ReferencedSOPInstanceUID) for c in child.get("ContentSequence", [])
                ]
                out["reader"].append((value(child), refs[0] if refs else None))
    return out
