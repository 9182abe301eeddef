"""What a reader wants in the header of a study: laterality and view per image, read from
the DICOM header (the store keeps patient name, study date and series, not these).

Plain data, no Qt; reading stops before the pixel data, so it is cheap enough to do for a
patient's images in a worker when the patient is opened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LATERALITY_TEXT = {"L": "left", "R": "right", "B": "both", "U": "unpaired"}
_TAGS = (
    "ImageLaterality",
    "Laterality",
    "FrameLaterality",
    "ViewPosition",
    "ViewCodeSequence",
    "SharedFunctionalGroupsSequence",
)


@dataclass(frozen=True)
class ViewInfo:
    """Laterality ("L", "R", "B" or None) and view (e.g. "radial", "CC") of one image."""

    laterality: str | None = None
    view: str | None = None

    def short(self) -> str:
        """ "L · radial", "R", "" (nothing known)."""
        return " · ".join(p for p in (self.laterality, self.view) if p)


def read_view(path: str | Path) -> ViewInfo:
    """The view of one file; a non-DICOM or unreadable file has none (no error: it is optional)."""
    from busviewer.core.imageio import is_dicom

    try:
        if not is_dicom(path):
            return ViewInfo()
        import pydicom

        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=list(_TAGS))
    except Exception:  # noqa: BLE001 - the header line is a convenience; the viewer reports read errors
        return ViewInfo()
    return ViewInfo(_laterality(ds), _view(ds))


def read_views(items: Iterable[tuple[int, str | Path]]) -> dict[int, ViewInfo]:
    """``{image id: ViewInfo}`` for (id, path) pairs; images without any view are left out."""
    out = {}
    for image_id, path in items:
        info = read_view(path)
        if info.laterality or info.view:
            out[int(image_id)] = info
    return out


def display_name(dicom_name: str | None) -> str:
    """``Family^Given^Middle^Prefix^Suffix`` as "Family, Given Middle"; other text as given."""
    if not dicom_name:
        return ""
    parts = [p.strip() for p in str(dicom_name).split("=")[0].split("^")]
    family, rest = (parts[0], [p for p in parts[1:3] if p]) if parts else ("", [])
    return ", ".join(p for p in (family, " ".join(rest)) if p)


def display_date(da: str | None) -> str:
    """A DICOM DA (YYYYMMDD, or the old YYYY.MM.DD) as YYYY-MM-DD; anything else as given."""
    if not da:
        return ""
    digits = str(da).replace(".", "").strip()
    if len(digits) == 8 and digits.isdigit():
        return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"
    return str(da).strip()


def _clean(value: object) -> str | None:
    text = str(value or "").strip().upper()
    return text if text in LATERALITY_TEXT else None


def _laterality(ds: object) -> str | None:
    for keyword in ("ImageLaterality", "Laterality"):
        found = _clean(getattr(ds, keyword, None))
        if found:
            return found
    for group in getattr(ds, "SharedFunctionalGroupsSequence", None) or ():
        for anatomy in getattr(group, "FrameAnatomySequence", None) or ():
            found = _clean(getattr(anatomy, "FrameLaterality", None))
            if found:
                return found
    return None


def _view(ds: object) -> str | None:
    for item in getattr(ds, "ViewCodeSequence", None) or ():
        meaning = str(getattr(item, "CodeMeaning", "") or "").strip()
        if meaning:
            return meaning
    position = str(getattr(ds, "ViewPosition", "") or "").strip()
    return position or None
