"""The input guard's findings in the store (table ``image_flags``) and the reader's override.

A finding is valid for the content hash it was made on; :func:`guard_images` checks the
images that have no valid finding yet (reading their first frame) and records the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from busviewer.core.input_guard import GuardResult, assess_file
from busviewer.core.store import schema as t
from busviewer.core.store.actions import AuditAction
from busviewer.core.store.labels import audit
from busviewer.core.store.records import ImageRecord
from busviewer.core.store.schema import utcnow

if TYPE_CHECKING:
    from busviewer.core.store.store import Store


@dataclass(frozen=True)
class ImageFlag:
    image_id: int
    image_hash: str
    outside: bool
    reason: str
    overridden_by: str | None = None
    overridden_at: datetime | None = None

    @property
    def blocks(self) -> bool:
        """True when the image's model output is withheld (outside and not overridden)."""
        return self.outside and self.overridden_by is None


def image_flags(store: Store, image_ids: Iterable[int]) -> dict[int, ImageFlag]:
    """The recorded findings of ``image_ids`` (images never checked are absent)."""
    ids = sorted(set(image_ids))
    if not ids:
        return {}
    with store._sessions() as s:
        rows = s.scalars(select(t.ImageFlag).where(t.ImageFlag.image_id.in_(ids))).all()
        return {
            r.image_id: ImageFlag(r.image_id, r.image_hash, r.outside, r.reason, r.overridden_by, r.overridden_at)
            for r in rows
        }


def record_flag(store: Store, image_id: int, image_hash: str, result: GuardResult) -> ImageFlag:
    """Record a finding (an override made on the same content is kept)."""
    with store._tx() as s:
        row = s.get(t.ImageFlag, image_id)
        if row is None:
            row = t.ImageFlag(image_id=image_id)
            s.add(row)
        elif row.image_hash != image_hash:
            row.overridden_by, row.overridden_at = None, None
        row.image_hash, row.outside, row.reason = image_hash, result.outside, result.reason
        s.flush()
        return ImageFlag(image_id, image_hash, result.outside, result.reason, row.overridden_by, row.overridden_at)


def set_override(store: Store, image_id: int, on: bool = True, user: str | None = None) -> ImageFlag:
    """The reader classifies a flagged image anyway (``on``) or withdraws that; audited."""
    who = user or store.user
    with store._tx() as s:
        row = s.get(t.ImageFlag, image_id)
        if row is None:
            raise KeyError(f"image {image_id} has not been checked by the input guard yet; analyse it first")
        old = row.overridden_by
        row.overridden_by, row.overridden_at = (who, utcnow()) if on else (None, None)
        audit(s, who, AuditAction.OVERRIDE_IMAGE_FLAG, "image_flag", image_id, "override", old, row.overridden_by)
        return ImageFlag(image_id, row.image_hash, row.outside, row.reason, row.overridden_by, row.overridden_at)


def guard_images(store: Store, records: Sequence[ImageRecord]) -> dict[int, ImageFlag]:
    """Findings for ``records``, checking (and recording) those not yet checked on their
    current content. Unreadable files are left out (the analysis reports them)."""
    from busviewer.core.imageio import ImageReadError

    known = image_flags(store, [r.id for r in records])
    out: dict[int, ImageFlag] = {}
    for rec in records:
        flag = known.get(rec.id)
        if flag is None or flag.image_hash != rec.content_hash:
            try:
                result = assess_file(rec.source_path, rec.photometric)
            except ImageReadError:
                continue
            flag = record_flag(store, rec.id, rec.content_hash, result)
        out[rec.id] = flag
    return out


__all__ = ["ImageFlag", "guard_images", "image_flags", "record_flag", "set_override"]
