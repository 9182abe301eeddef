"""A store image record for tests that need images without files."""

from __future__ import annotations

from pathlib import Path

from busviewer.core.store import NewImage


def new_image(i: int, patient: str = "P1", label: str | None = None, path: Path | None = None) -> NewImage:
    """Image ``i`` of ``patient`` (120x100, content hash from ``i``; no file unless ``path`` exists)."""
    return NewImage(
        patient_key=patient,
        patient_name=None,
        study_uid=f"st-{patient}",
        study_date=None,
        study_description=None,
        series_uid=f"se-{patient}",
        series_description=None,
        modality="US",
        source_path=path or Path(f"/nonexistent/img{i}.png"),
        content_hash=f"{i:064x}",
        file_size=10,
        sop_uid=None,
        frame_count=1,
        rows=100,
        columns=120,
        is_color=False,
        photometric=None,
        frame_time_ms=None,
        pixel_spacing_mm=None,
        label=label,
    )
