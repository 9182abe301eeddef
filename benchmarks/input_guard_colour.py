"""The input guard's colour measure on the data at hand (issue 14): every BUSI image
(in the training data: none may be flagged) and pydicom-data's ultrasound files.

    .venv/bin/python benchmarks/input_guard_colour.py [BUSI_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main(busi: Path) -> int:
    import data_store

    from busviewer.core.input_guard import COLOUR_LIMIT, assess_file, colour_share

    shares = sorted(
        (colour_share(np.asarray(Image.open(f).convert("RGB"))), f.name) for f in (busi / "images").glob("*/*.png")
    )
    flagged = sum(s >= COLOUR_LIMIT for s, _ in shares)
    print(
        f"BUSI: {len(shares)} images, colour share max {shares[-1][0]:.2%} ({shares[-1][1]}), "
        f"99th percentile {np.percentile([s for s, _ in shares], 99):.2%}, flagged {flagged}"
    )
    root = Path(data_store.__file__).parent / "data"
    for f in sorted(root.rglob("*.dcm")):
        try:
            import pydicom

            if pydicom.dcmread(f, stop_before_pixels=True, force=True).get("Modality") != "US":
                continue
            r = assess_file(f)
        except Exception as exc:  # noqa: BLE001 - a file this reader cannot decode is reported, not fatal
            print(f"{f.name:36s} unreadable: {exc}")
            continue
        print(f"{f.name:36s} colour {r.colour_share:6.2%}  {'OUTSIDE' if r.outside else 'inside'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/busi"))
