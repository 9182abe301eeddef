"""How well the feature-distance input guard separates breast ultrasound from other images.

    .venv/bin/python benchmarks/feature_guard_eval.py [--busi DIR] [--quantile 0.99] [--margin 1.5]

For each active model (the shipped defaults unless BUSVIEWER_HOME activates others): fits
:func:`busviewer.ai.feature_guard.fit` on BUSI's benign and malignant images (what the
shipped models were trained on), then prints the share of images flagged as "far from the
training images" per group:

- BUSI normal (breast ultrasound without a lesion, never used in training: in distribution,
  held out; should stay unflagged);
- other ultrasound from pydicom-data that the colour guard passes (greyscale B-mode of other
  organs, e.g. the cardiac and obstetric files);
- other modalities from pydicom-data and pydicom's test files (MR, CT, radiographs, a face
  photo), as a wrong file in an ultrasound study would be;
- synthetic: uniform grey, white noise, a checkerboard.

and the distances' median (min-max) per group. Images the colour guard already flags are
counted there and left out of the feature figures.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OTHER_US = ("US1_UNCR.dcm", "OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm", "color3d_jpeg_baseline.dcm", "color-px.dcm")
OTHER_MODALITIES = (
    "MR2_UNCR.dcm",
    "emri_small.dcm",
    "MR-SIEMENS-DICOM-WithOverlays.dcm",
    "RG1_UNCR.dcm",
    "RG3_UNCR.dcm",
    "OT-PAL-8-face.dcm",
    "liver.dcm",
    "eCT_Supplemental.dcm",
)
PYDICOM_TEST = ("CT_small.dcm", "MR_small.dcm")


def _busi(busi: Path) -> tuple[list[Path], list[Path]]:
    with (busi / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    train = [busi / r["image"] for r in rows if r["label"] in ("benign", "malignant")]
    normal = [busi / r["image"] for r in rows if r["label"] == "normal"]
    return train, normal


def _others() -> tuple[list[Path], list[Path]]:
    import data_store
    from pydicom.data import get_testdata_file

    data = Path(data_store.__file__).parent / "data"
    us = [data / n for n in OTHER_US]
    other = [data / n for n in OTHER_MODALITIES]
    for name in PYDICOM_TEST:
        found = get_testdata_file(name)
        if found:
            other.append(Path(found))
    return us, other


def _synthetic() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:400, 0:500]
    return [
        ("uniform grey", np.full((400, 500), 128, np.uint8)),
        ("white noise", rng.integers(0, 256, (400, 500), dtype=np.uint8)),
        ("checkerboard", (((yy // 40 + xx // 40) % 2) * 255).astype(np.uint8)),
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    busi = Path(os.environ.get("BUSVIEWER_BUSI", REPO.parent / "shared/data/busi"))
    p.add_argument("--busi", type=Path, default=busi)
    p.add_argument("--quantile", type=float, default=None)
    p.add_argument("--margin", type=float, default=None)
    args = p.parse_args()

    import torch

    from busviewer.ai import feature_guard as fg
    from busviewer.ai.inference import Predictor
    from busviewer.ai.registry import ModelRegistry
    from busviewer.core.imageio import ImageReadError, read_image
    from busviewer.core.input_guard import assess_pixels

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    train, normal = _busi(args.busi)
    us, other = _others()

    def frames(paths: list[Path]) -> tuple[list[str], list[np.ndarray], int]:
        names, pix, colour = [], [], 0
        for path in paths:
            try:
                img = read_image(path)
            except ImageReadError as exc:
                print(f"  (skipped {path.name}: {exc})")
                continue
            frame = img.frame(0)
            if assess_pixels(frame, img.meta.photometric).outside:
                colour += 1
                continue
            names.append(path.name)
            pix.append(frame)
        return names, pix, colour

    groups = {
        "BUSI benign+malignant (fit)": frames(train),
        "BUSI normal (held out)": frames(normal),
        "other ultrasound (pydicom-data)": frames(us),
        "other modalities": frames(other),
        "synthetic": ([n for n, _ in _synthetic()], [a for _, a in _synthetic()], 0),
    }
    registry = ModelRegistry()
    for arch in ("ensemble", "vgg16"):
        entry = registry.active(arch)
        if entry is None:
            continue
        model, card = registry.load(entry)
        predictor = Predictor(model, card)
        feats: dict[str, np.ndarray] = {}
        for name, (_names, pix, _c) in groups.items():
            out: list[np.ndarray] = []
            if pix:
                predictor.predict_with_cams(pix, features_out=out)
            feats[name] = np.asarray(out)
        kwargs = {k: v for k, v in (("quantile", args.quantile), ("margin", args.margin)) if v is not None}
        guard = fg.fit(feats["BUSI benign+malignant (fit)"], layer="cam", **kwargs)
        print(
            f"{entry.ref} ({card.input_size} px): {feats['BUSI benign+malignant (fit)'].shape[1]} features, "
            f"{guard.components.shape[0]} components, threshold {guard.threshold:.3f} "
            f"({guard.margin:g} x the {guard.quantile:.0%} quantile of held-out training residuals)"
        )
        for name, (names, _pix, colour) in groups.items():
            f = feats[name]
            if f.size == 0:
                print(f"  {name:34s}: none left after the colour guard ({colour} flagged by it)")
                continue
            d = guard.distance(f)
            flagged = [n for n, x in zip(names, d) if guard.outside(float(x))]
            extra = f"; colour guard {colour}" if colour else ""
            listed = name != "BUSI benign+malignant (fit)" and 0 < len(flagged) <= 8
            shown = f" [{', '.join(flagged)}]" if listed else ""
            print(
                f"  {name:34s}: flagged {len(flagged)}/{len(d)} ({len(flagged) / len(d):.1%}){extra}; distance "
                f"{statistics.median(d):.3f} ({d.min():.3f}-{d.max():.3f}){shown}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
