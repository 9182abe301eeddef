"""How images are named to the reader: ``#n``, the 1-based position in the patient's image list.

One place for that text, so the AI panel, the verdict cards and the PDF report list images
the same way (a run of three or more consecutive images is written as a range).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def image_list(ids: Iterable[int], numbers: Mapping[int, int], empty: str = "") -> str:
    """``#1-#4, #7, #9`` for the images ``ids`` (store ids), numbered by ``numbers``.

    An id missing from ``numbers`` is shown by its store id. Runs of three or more consecutive
    numbers become ``#a-#b``, so a 160-image patient reads as a line, not a page."""
    shown = sorted({numbers.get(i, i) for i in ids})
    parts: list[str] = []
    start = 0
    while start < len(shown):
        end = start
        while end + 1 < len(shown) and shown[end + 1] == shown[end] + 1:
            end += 1
        if end - start >= 2:
            parts.append(f"#{shown[start]}-#{shown[end]}")
        else:
            parts.extend(f"#{n}" for n in shown[start : end + 1])
        start = end + 1
    return ", ".join(parts) or empty
