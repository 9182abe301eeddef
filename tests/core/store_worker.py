"""One workstation of the concurrency test: labels and edits one patient N times.

    python store_worker.py URL READER N ROI_ID START_FILE OUT.json

Waits until START_FILE exists (both workstations start together), then per iteration:
reads the shared ROI, sets this reader's label of one of the patient's images, and moves
the ROI based on the version it read. A refused (stale) move is recorded, reloaded and
applied again until it lands, so no intended edit is lost. Every 25th iteration the same
move is also sent twice on the same base version (a double submit): the second copy
must be refused. Writes what the store acknowledged to OUT.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from busviewer.core.store import LABELS, Store
from busviewer.core.store.errors import StaleEditError


def main(url: str, reader: str, n: int, roi_id: int, start: Path, out: Path) -> None:
    store = Store(url, user=reader)
    images = [img.id for img in store.images("SHARED")]
    offset = 0 if reader.endswith("a") else 5000
    while not start.exists():
        time.sleep(0.01)
    labels, moves, refused, double = [], [], [], 0
    for i in range(n):
        base = store.roi(roi_id).version
        image = images[i % len(images)]
        label = LABELS[(i // len(images)) % len(LABELS)]  # each image's label changes every time
        store.set_label(label, image_id=image, source="reader")
        labels.append([image, label])
        box = [offset + i, 0, offset + i + 20, 20]
        while True:
            try:
                rec = store.update_roi(roi_id, tuple(box), expected_version=base)  # type: ignore[arg-type]
                moves.append({"box": box, "base": base, "version": rec.version})
                break
            except StaleEditError as exc:
                refused.append({"box": box, "base": base, "message": str(exc)})
                base = store.roi(roi_id).version
        if i % 25 == 0:
            double += 1
            try:
                store.update_roi(roi_id, tuple(box), expected_version=base)  # type: ignore[arg-type]
                raise SystemExit(f"{reader}: a double submit on version {base} was accepted")
            except StaleEditError as exc:
                refused.append({"box": box, "base": base, "message": str(exc), "double": True})
    store.close()
    out.write_text(json.dumps({"labels": labels, "moves": moves, "refused": refused, "double": double}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]), Path(sys.argv[6]))
