"""``busviewer predict PATIENT|PATH``: per-image (calibrated) results and the patient verdict
at an operating point (``--operating-point``, default balanced).

Each image's ``calls`` are "malignant", "benign" or "indeterminate" (probability in the
model's indeterminate band; ``leans`` gives the side). Indeterminate images do not vote;
a patient whose images are all indeterminate is "indeterminate" (see busviewer.ai.results).
An image the input guard flags (colour Doppler, non-B-mode content) gets the call
"outside" with the reason and no probabilities, unless ``--classify-outside`` (recorded
with the user's name, as the GUI's "Classify flagged images anyway").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from busviewer.ai.results import image_numbers
from busviewer.core.notice import RESEARCH_NOTICE
from busviewer.core.operating import (
    DEFAULT_OPERATING_POINT,
    OPERATING_POINTS,
    card_thresholds,
    describe,
    describe_band,
    indeterminate_band,
)
from busviewer.core.store import Store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify a patient's images (or files/folders, imported first)")
    p.add_argument("target", help="patient id in the store, or a file/folder/manifest to import and classify")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME[:VERSION]",
        help="use this model instead of the active one of its architecture (repeatable); "
        "when given, only the named models run",
    )
    p.add_argument(
        "--operating-point",
        choices=OPERATING_POINTS,
        default=DEFAULT_OPERATING_POINT,
        help="threshold on the calibrated p(malignant) that makes each image's call, chosen on the "
        "model's validation patients: high_sensitivity (sensitivity >= 0.95), balanced (Youden) "
        "or high_specificity (specificity >= 0.95); models without operating points use 0.5 "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--classify-outside",
        action="store_true",
        help="classify images flagged as outside the models' training data (colour Doppler, non-B-mode "
        "content) anyway; the override is recorded with your user name",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--cam-dir", type=Path, help="write Grad-CAM maps (.npy) and overlays (.png) here")
    p.add_argument("--device", help="cpu, cuda or mps (default: best available; env BUSVIEWER_DEVICE)")
    p.set_defaults(handler=cmd_predict)


def _patients_for(store: Store, target: str) -> tuple[list[str], list[str]]:
    """Patient keys for ``target``; a path is imported first. Returns (keys, problems)."""
    if any(p.patient_key == target for p in store.patients(search=target)):
        return [target], []
    path = Path(target)
    if not path.exists():
        raise KeyError(f"{target!r} is neither a patient in the store nor an existing file or folder")
    from busviewer.core.importer import import_paths

    report = import_paths(store, [path])
    return sorted(report.patients), [str(p) for p in report.problems]


def cmd_predict(args: argparse.Namespace) -> int:
    from busviewer.ai.analysis import Analyzer, NoActiveModel
    from busviewer.ai.registry import RegistryError

    store = Store()
    try:
        patients, problems = _patients_for(store, args.target)
        point = getattr(args, "operating_point", DEFAULT_OPERATING_POINT)
        analyzer = Analyzer(store, device=args.device, models=args.model, operating_point=point)
        analyzer.load_models()
    except (KeyError, NoActiveModel, RegistryError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    out = {
        "notice": RESEARCH_NOTICE,
        "device": analyzer.device_name,
        "models": {a: c.ref for a, c in analyzer.cards.items()},
        "operating_point": point,
        "calibration": {
            a: {
                "temperature": c.temperature,
                "thresholds": c.thresholds,
                "indeterminate_band": list(indeterminate_band(card_thresholds(c), point)),
            }
            for a, c in analyzer.cards.items()
        },
        "patients": [],
    }
    for key in patients:
        analysis = _guarded(store, analyzer.analyse_patient(key), getattr(args, "classify_outside", False))
        images = {img.id: img for img in store.images(key)}
        numbers = image_numbers(images.values())  # as the app numbers them (#1, #2...)
        cams = _write_cams(analyzer, images, args.cam_dir) if args.cam_dir else {}
        out["patients"].append(
            {
                "patient": key,
                "verdicts": {
                    a: {
                        "label": v.label,
                        "operating_point": v.operating_point,
                        "threshold": v.threshold,
                        "benign_votes": v.benign_votes,
                        "malignant_votes": v.malignant_votes,
                        "tie_decided": v.tie_decided,
                        "mean_malignant_probability": v.mean_malignant_probability,
                        "benign_images": list(v.benign_images),
                        "malignant_images": list(v.malignant_images),
                        "indeterminate_images": list(v.indeterminate_images),
                        "indeterminate_band": list(v.band) if v.band else None,
                    }
                    for a, v in analysis.verdicts.items()
                },
                "disagreements": list(analysis.disagreements),
                "images": [
                    {
                        "image_id": iid,
                        "number": numbers[iid],
                        "file": str(images[iid].source_path),
                        "predictions": (
                            {}
                            if iid in analysis.outside
                            else {a: p.probabilities for a, p in analysis.for_image(iid).items()}
                        ),
                        "outside": analysis.outside.get(iid),
                        "overridden_by": analysis.overridden.get(iid),
                        "calls": {a: _call(analysis, iid, a, p) for a, p in analysis.for_image(iid).items()},
                        "leans": {
                            a: (None if iid in analysis.outside else p.label)
                            for a, p in analysis.for_image(iid).items()
                        },
                        "models_disagree": iid in analysis.disagreements,
                        "cams": cams.get(iid, {}),
                    }
                    for iid in sorted({i for i, _ in analysis.predictions})
                ],
                "problems": list(analysis.problems),
            }
        )
        if not args.json:
            _print_patient(key, analysis, images)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"models: {', '.join(out['models'].values())} on {analyzer.device_name}; probabilities calibrated "
            "(each card's temperature)"
        )
        print(RESEARCH_NOTICE)
    return 0


def _guarded(store: Store, analysis, classify_outside: bool):  # type: ignore[no-untyped-def]
    """The analysis with the input guard applied (and, if asked, its flags overridden)."""
    from busviewer.ai.results import guard_analysis
    from busviewer.core.store.flags import set_override

    analysis = guard_analysis(store, analysis)
    if classify_outside and analysis.outside:
        for image_id in analysis.outside:
            set_override(store, image_id, True)
        analysis = guard_analysis(store, analysis)
    return analysis


def _call(analysis, image_id: int, arch: str, p) -> str:  # type: ignore[no-untyped-def]
    if image_id in analysis.outside:
        return "outside"
    return "indeterminate" if analysis.is_indeterminate(image_id, arch) else p.label


def _mean(p: float | None) -> str:
    return "-" if p is None else f"{p:.3f}"


def _cell(analysis, image_id: int, arch: str, p) -> str:  # type: ignore[no-untyped-def]
    return f"{_call(analysis, image_id, arch, p)[:5]} {p.malignant_probability:.3f}"


def _print_patient(key: str, analysis, images) -> None:  # type: ignore[no-untyped-def]
    print(f"patient {key}")
    archs = list(analysis.verdicts)
    print(f"  {'image':<40} " + " ".join(f"{a + ' P(malig.)':>20}" for a in archs))
    numbers = image_numbers(images.values())
    for iid in sorted({i for i, _ in analysis.predictions}):
        preds = analysis.for_image(iid)
        number = numbers.get(iid, iid)
        cells = " ".join(f"{_cell(analysis, iid, a, preds[a]) if a in preds else '-':>20}" for a in archs)
        flag = "  models disagree" if iid in analysis.disagreements else ""
        if iid in analysis.outside:
            cells, flag = f"{'-':>20}", f"  {analysis.outside[iid]} (--classify-outside to classify it anyway)"
        elif iid in analysis.overridden:
            flag += f"  (flagged outside the training data; classified on {analysis.overridden[iid]}'s override)"
        print(f"  #{number} {images[iid].name[:34]:<35} {cells}{flag}")
    for arch, v in analysis.verdicts.items():
        tie = " (tie: counted as malignant)" if v.tie_decided else ""
        unsure = f", {len(v.indeterminate_images)} indeterminate (not counted)" if v.indeterminate_images else ""
        band = f"; {describe_band(v.band)}" if v.band else ""
        print(
            f"  verdict {arch}: {v.label} — {v.malignant_votes} malignant / {v.benign_votes} benign{unsure}{tie}; "
            f"mean P(malignant) {_mean(v.mean_malignant_probability)}; "
            f"{describe(v.operating_point, v.threshold)}"
            f"{band}"
        )
    for problem in analysis.problems:
        print(f"  not classified: {problem}")


def _write_cams(analyzer, images, cam_dir: Path) -> dict[int, dict[str, str]]:  # type: ignore[no-untyped-def]
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    from busviewer.core.imageio import read_image

    cam_dir.mkdir(parents=True, exist_ok=True)
    written: dict[int, dict[str, str]] = {}
    for iid, rec in images.items():
        try:
            pixels = read_image(rec.source_path).frame(0)
        except Exception:  # reported by the analysis already
            continue
        for arch in analyzer.cards:
            cam = analyzer.gradcam(iid, arch)
            stem = cam_dir / f"{rec.patient_key}_{iid}_{arch}"
            np.save(stem.with_suffix(".npy"), cam.astype(np.float32))
            heat = (colormaps["jet"](cam)[..., :3] * 255).astype(np.float32)
            blend = (0.6 * pixels.astype(np.float32) + 0.4 * heat).clip(0, 255).astype(np.uint8)
            Image.fromarray(blend).save(stem.with_suffix(".png"))
            written.setdefault(iid, {})[arch] = str(stem.with_suffix(".png"))
    return written
