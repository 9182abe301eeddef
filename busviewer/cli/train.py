"""``busviewer train`` and ``busviewer evaluate``.

Examples::

    busviewer train --model ensemble --data /data/busi/manifest.csv --input-size 128 \\
        --epochs 20 --patience 5 --out runs/ens-busi
    busviewer train --resume runs/ens-busi            # continue after Ctrl+C or a crash
    busviewer train --model vgg16 --data store --folds 5
    busviewer evaluate ensemble:2 --data /data/busi/manifest.csv \\
        --split-file runs/ens-busi/split.json --part test

``train`` splits the patients (never the images) into train/validation/test, trains with
early stopping, writes metrics.json and ROC/loss plots into the run directory and
registers the result as a new model version -- it never activates it (use
``busviewer models activate``). Ctrl+C stops cleanly after the current step, keeps the
checkpoint and registers nothing; ``--resume RUN_DIR`` continues. Multi-GPU: run the same
command under ``torchrun --nproc_per_node=N -m busviewer train ...`` (see
:mod:`busviewer.training.distributed`).

torch is imported only inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train and register a model (patient-wise split, early stopping)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", choices=("ensemble", "vgg16"), default="ensemble", help="architecture")
    p.add_argument("--data", help="manifest CSV (image,label,patient_id) or 'store' (the local store)")
    p.add_argument(
        "--recipe",
        choices=("busviewer", "seed"),
        default="busviewer",
        help="settings preset: busviewer (default; see docs/RESULTS.md) or seed (the papers': "
        "Adam 1e-4, crop + flip, early stopping on the validation loss); flags below override it",
    )
    p.add_argument(
        "--folds",
        type=int,
        default=0,
        help="k >= 2: also run patient-wise k-fold cross-validation (mean ± SD); default 0 = none",
    )
    p.add_argument("--epochs", type=int, help="maximum epochs per training stage (recipe: seed 30, busviewer 40)")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (recipe: 5 / 12)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--input-size", type=int, default=224, help="network input size in pixels (default 224)")
    p.add_argument("--lr", type=float, help="peak learning rate (recipe: seed 1e-4, busviewer 1e-3)")
    p.add_argument("--weight-decay", type=float, help="weight decay (recipe: seed 0, busviewer 0.05)")
    p.add_argument("--variant", choices=("classic", "bn"), help="network variant (recipe: classic / bn)")
    p.add_argument("--optimizer", choices=("adam", "adamw"))
    p.add_argument("--schedule", choices=("constant", "cosine"))
    p.add_argument("--warmup-epochs", type=int)
    p.add_argument("--early-stop", choices=("val_loss", "val_auc"), help="early-stopping criterion")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--mixup", type=float, help="mixup Beta(a, a) parameter, 0 = off")
    p.add_argument("--ema", type=float, help="EMA decay of the weights, 0 = off")
    p.add_argument(
        "--ensemble-schedule",
        choices=("staged", "joint"),
        help="ensemble: seed 001's stages (branches, then head) or one joint stage",
    )
    p.add_argument("--rotation", type=float, help="augmentation: max rotation in degrees")
    p.add_argument("--gamma", type=float, help="augmentation: gamma range +- this")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument(
        "--amp",
        choices=("auto", "off", "fp16", "bf16"),
        default="auto",
        help="mixed precision on CUDA (default auto: bf16 if supported, else fp16)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.15, help="fraction of patients for validation")
    p.add_argument("--test-fraction", type=float, default=0.15, help="fraction of patients for testing")
    p.add_argument("--split-file", help="reuse the patient split of an earlier run (split.json)")
    p.add_argument("--include-normal", action="store_true", help="count 'normal' images as benign (default: drop)")
    p.add_argument("--label-sources", help="comma-separated label sources to use: import,reader,biopsy")
    p.add_argument("--rois", action="store_true", help="train on the saved lesion crops (store only)")
    p.add_argument("--limit-patients", type=int, help="use a stratified subset of N patients (quick runs)")
    p.add_argument(
        "--balance",
        choices=("loss", "sampler", "none"),
        help="class balancing: weighted loss (seed recipe), weighted sampler (busviewer) or none",
    )
    p.add_argument("--no-augment", action="store_true", help="no online augmentation")
    p.add_argument(
        "--crop",
        choices=("resized", "random", "none"),
        help="augmentation crop: random resized crop (default), random crop, none",
    )
    p.add_argument("--no-hflip", action="store_true")
    p.add_argument("--no-jitter", action="store_true", help="no brightness/contrast jitter")
    p.add_argument("--no-scale", action="store_true", help="no small random scale changes")
    p.add_argument("--no-pretrained", action="store_true", help="random initialisation instead of ImageNet")
    p.add_argument(
        "--init-from",
        metavar="NAME:VERSION|active",
        help="fine-tune a registered model (becomes the parent); 'active': the active (e.g. shipped) "
        "model of --model. Default: ImageNet (or random) initialisation",
    )
    p.add_argument(
        "--alexnet-trainable",
        type=int,
        metavar="N",
        help="AlexNet layers trained in stage 1, counted from the end (default 3 with ImageNet "
        "weights, all 8 with random init)",
    )
    p.add_argument(
        "--resnet-frozen",
        type=int,
        metavar="N",
        help="ResNet-18 layers frozen in stage 1 (conv1,bn1,layer1..4; default 4 with ImageNet "
        "weights, 0 with random init)",
    )
    p.add_argument("--vgg-frozen-blocks", type=int, metavar="N", help="VGG-16 conv blocks frozen (default 0)")
    p.add_argument(
        "--head-init",
        choices=("branches", "random"),
        default="branches",
        help="ensemble stage 2: start the joint head as the average of the branch heads (default) or randomly",
    )
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes (default 0)")
    p.add_argument("--max-steps", type=int, help="at most N steps per epoch (smoke tests)")
    p.add_argument("--name", help="model name to register (default: the architecture)")
    p.add_argument("--description", default="", help="model card description")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: <data dir>/runs/<name>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep each phase's checkpoint when done")
    p.add_argument(
        "--keep-phase-weights",
        action="store_true",
        help="keep every phase's weights (CV folds too) as <phase>/model.safetensors for re-evaluation",
    )
    p.add_argument(
        "--no-checkpoints",
        action="store_true",
        help="write no per-epoch checkpoints (faster throwaway runs; cannot be resumed)",
    )
    p.add_argument("--no-register", action="store_true", help="do not register the trained model")
    p.add_argument(
        "--register", action="store_true", help="with --resume: register the model of a run started with --no-register"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    _mask_arguments(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a registered model on labelled data (image- and patient-wise)")
    p.add_argument("model", metavar="MODEL[:VERSION]", help="registered model (newest version if none given)")
    p.add_argument("--data", required=True, help="manifest CSV or 'store'")
    p.add_argument("--split-file", help="split.json of a training run: evaluate only one part's patients")
    p.add_argument("--part", choices=("train", "val", "test"), default="test")
    p.add_argument("--include-normal", action="store_true", help="count 'normal' images as benign (default: drop)")
    p.add_argument("--label-sources", help="comma-separated label sources to use")
    p.add_argument("--rois", action="store_true", help="evaluate on the saved lesion crops (store only)")
    p.add_argument("--device")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threshold", type=float, default=0.5, help="malignant if probability >= threshold")
    p.add_argument("--out", metavar="DIR", help="write metrics.json, predictions.csv and roc.png here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _mask_arguments(p)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser(
        "reevaluate",
        help="re-measure calibration (and localisation) of a run's kept phase weights",
        description="Adds calibration/operating points and, with --masks, Grad-CAM localisation to "
        "every phase of RUN_DIR trained with --keep-phase-weights; then "
        "`busviewer train --resume RUN_DIR` aggregates them and registers the model.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--masks", metavar="DIR", help="lesion masks (<label>/<name>_mask.png) for localisation")
    p.add_argument("--device")
    p.set_defaults(handler=cmd_reevaluate)


def _mask_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("lesion masks (BUSI layout: DIR/<label>/<image stem>_mask.png)")
    g.add_argument(
        "--masks",
        metavar="DIR",
        help="also measure whether Grad-CAM points at the lesion: pointing game, energy inside the "
        "lesion vs its area share, the CAM-derived box's IoU and lesion-centre hits",
    )
    g.add_argument(
        "--crops-from-masks",
        metavar="DIR",
        help="use lesion crops: each mask's box widened by --crop-margin (images without a mask are skipped)",
    )
    g.add_argument(
        "--crop-margin",
        type=float,
        default=0.2,
        help="lesion-crop margin per side, as a fraction of the lesion box (default 0.2)",
    )
    g.add_argument(
        "--cam-layer",
        choices=("conv", "output"),
        help="Grad-CAM layer measured: conv (last convolution; ResNet-18's conv2 before the "
        "residual add; the default) or output (the ReLU after it; ResNet-18's block output)",
    )


def mask_options(args: argparse.Namespace) -> Any:
    """The :class:`~busviewer.training.masks.MaskOptions` of the arguments, or None."""
    masks, crops = getattr(args, "masks", None), getattr(args, "crops_from_masks", None)
    if not masks and not crops:
        return None
    from busviewer.training.masks import MaskOptions

    return MaskOptions(
        masks_dir=masks,
        crops_dir=crops,
        crop_margin=getattr(args, "crop_margin", 0.2),
        cam_layer=getattr(args, "cam_layer", None),
    )


def _print_localisation(metrics: dict[str, Any], title: str) -> None:
    from busviewer.training.localisation import format_localisation

    if metrics.get("localisation"):
        print(format_localisation(metrics["localisation"], f"Grad-CAM vs lesion masks, {title}:"))
    cv_loc = (metrics.get("cv") or {}).get("localisation")
    if cv_loc:
        print(
            format_localisation(
                cv_loc["mean_sd"],
                f"Grad-CAM vs lesion masks, cross-validation test images ({len(cv_loc['folds'])} folds, mean ± SD):",
            )
        )


def _print_calibration(
    metrics: dict[str, Any], title: str = "calibration and operating points (fitted on validation, test patients):"
) -> None:
    from busviewer.training.calib_eval import format_calibration, summary

    if metrics.get("calibration"):
        print(format_calibration(summary(metrics["calibration"]), title))
    cv_cal = (metrics.get("cv") or {}).get("calibration")
    if cv_cal:
        print(
            format_calibration(
                cv_cal["mean_sd"],
                f"calibration and operating points, cross-validation ({len(cv_cal['folds'])} folds, mean ± SD):",
            )
        )


def _sources(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~busviewer.training.config.TrainConfig` for ``busviewer train`` arguments:
    the ``--recipe`` preset with every explicitly given flag on top."""
    from busviewer.training.recipes import make_config

    g = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    aug: dict[str, Any] = {}
    if g("no_augment", False):
        aug["enabled"] = False
    if g("crop") is not None:
        aug["crop"] = g("crop")
    if g("no_hflip", False):
        aug["hflip"] = False
    if g("no_jitter", False):
        aug["brightness"] = aug["contrast"] = 0.0
    if g("no_scale", False):
        aug["scale"] = 0.0
    for name in ("rotation", "gamma"):
        if g(name) is not None:
            aug[name] = g(name)
    recipe_flags = (
        "epochs",
        "patience",
        "batch_size",
        "lr",
        "weight_decay",
        "variant",
        "optimizer",
        "schedule",
        "warmup_epochs",
        "early_stop",
        "label_smoothing",
        "mixup",
        "ema",
        "ensemble_schedule",
        "balance",
    )
    overrides = {k: g(k) for k in recipe_flags if g(k) is not None}
    return make_config(
        g("recipe", "busviewer"),
        augment=aug,
        **overrides,
        architecture=g("model", "ensemble"),
        data=g("data") or "",
        input_size=g("input_size", 224),
        normal="benign" if g("include_normal", False) else "drop",
        label_sources=_sources(g("label_sources")),
        use_rois=bool(g("rois", False)),
        limit_patients=g("limit_patients"),
        seed=g("seed", 0),
        val_fraction=g("val_fraction", 0.15),
        test_fraction=g("test_fraction", 0.15),
        folds=g("folds", 0) or 0,
        split_file=g("split_file"),
        max_steps_per_epoch=g("max_steps"),
        pretrained=not g("no_pretrained", False),
        init_from=g("init_from"),
        alexnet_trainable_last=g("alexnet_trainable"),
        resnet_frozen_first=g("resnet_frozen"),
        vgg_frozen_blocks=g("vgg_frozen_blocks"),
        head_init=g("head_init", "branches"),
        device=g("device"),
        amp=g("amp", "auto"),
        num_workers=g("workers", 0),
        keep_checkpoints=bool(g("keep_checkpoints", False)),
        keep_phase_weights=bool(g("keep_phase_weights", False)),
        checkpoints=not g("no_checkpoints", False),
        name=g("name"),
        description=g("description", "") or "",
        register=not g("no_register", False),
        run_dir=g("out"),
    )


class _CtrlC:
    """First Ctrl+C sets the cancel event (clean stop, checkpoint kept); the second aborts."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: Any = None

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self.event

    def _handle(self, signum: int, frame: Any) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        print("\nstopping after the current step (Ctrl+C again to abort)...", file=sys.stderr)
        self.event.set()

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def resolve_init_from(cfg: Any) -> Any:
    """``--init-from active``: the active model of the configured architecture (ValueError if none)."""
    if cfg.init_from != "active":
        return cfg
    import dataclasses

    from busviewer.ai.registry import ModelRegistry

    entry = ModelRegistry().active(cfg.architecture)
    if entry is None:
        raise ValueError(f"--init-from active: there is no active {cfg.architecture} model")
    return dataclasses.replace(cfg, init_from=entry.ref)


def cmd_train(args: argparse.Namespace) -> int:
    from busviewer.ai.device import DeviceUnavailableError
    from busviewer.core.notice import RESEARCH_NOTICE
    from busviewer.training import distributed as ddp
    from busviewer.training.events import ProgressPrinter
    from busviewer.training.report import format_mean_sd, format_report
    from busviewer.training.run import RESUME_OVERRIDABLE, resume_training, run_training

    main_rank = int(__import__("os").environ.get("RANK", "0")) == 0
    printer = None if (getattr(args, "quiet", False) or not main_rank) else ProgressPrinter()
    try:
        with _CtrlC() as cancel:
            if getattr(args, "resume", None):
                overrides = {}
                if getattr(args, "device", None):
                    overrides["device"] = args.device
                if getattr(args, "no_register", False):
                    overrides["register"] = False
                if getattr(args, "register", False):  # e.g. a run started with --no-register
                    overrides["register"] = True
                if getattr(args, "name", None):
                    overrides["name"] = args.name
                assert set(overrides) <= set(RESUME_OVERRIDABLE)
                result = resume_training(args.resume, printer, cancel, **overrides)  # keeps its masks.json
            else:
                if not getattr(args, "data", None):
                    print("error: --data MANIFEST|store is required (or --resume RUN_DIR)", file=sys.stderr)
                    return 2
                cfg = resolve_init_from(config_from_args(args))
                result = run_training(cfg, printer, cancel, masks=mask_options(args))
    except (ValueError, FileNotFoundError, FileExistsError, DeviceUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.status == "cancelled":
        print(f"cancelled; resume with: busviewer train --resume {result.run_dir}", file=sys.stderr)
        return 130
    if not main_rank and ddp.env_world_size() > 1:
        return 0
    m = result.metrics or {}
    if m.get("test"):
        print(format_report(m["test"], "test patients (final model):"))
    if m.get("cv"):
        print(format_mean_sd(m["cv"]["mean_sd"], f"cross-validation, {len(m['cv']['folds'])} folds (mean ± SD):"))
    _print_localisation(m, "test images (final model)")
    _print_calibration(m)
    print(f"run directory: {result.run_dir}")
    if result.model:
        print(f"registered {result.model} (not activated; activate with: busviewer models activate {result.model})")
    print(RESEARCH_NOTICE)
    return 0


def cmd_reevaluate(args: argparse.Namespace) -> int:
    from busviewer.training.reevaluate import reevaluate_run

    done = reevaluate_run(args.run_dir, args.masks, args.device, progress=print)
    if not done:
        print(f"error: {args.run_dir}: no phase kept its weights (train with --keep-phase-weights)", file=sys.stderr)
        return 1
    print(f"{len(done)} phase(s) updated; run `busviewer train --resume {args.run_dir}` to aggregate and register")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from busviewer.ai.device import DeviceUnavailableError
    from busviewer.core.notice import RESEARCH_NOTICE
    from busviewer.training.report import format_report
    from busviewer.training.run import evaluate_model

    try:
        report = evaluate_model(
            args.model,
            args.data,
            split_file=getattr(args, "split_file", None),
            part=getattr(args, "part", "test"),
            normal="benign" if getattr(args, "include_normal", False) else "drop",
            label_sources=_sources(getattr(args, "label_sources", None)),
            use_rois=bool(getattr(args, "rois", False)),
            device=getattr(args, "device", None),
            batch_size=getattr(args, "batch_size", 64),
            threshold=getattr(args, "threshold", 0.5),
            out_dir=getattr(args, "out", None),
            masks=mask_options(args),
        )
    except (ValueError, FileNotFoundError, LookupError, DeviceUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        from busviewer.training.metrics import scalars
        from busviewer.training.report import json_safe

        print(json.dumps(json_safe(scalars(report)), indent=2))
    else:
        where = f" ({args.part} patients of {args.split_file})" if getattr(args, "split_file", None) else ""
        print(format_report(report, f"{report['model']} on {args.data}{where}:"))
        _print_localisation(report, "images with a mask")
        _print_calibration(report, "the card's calibration and operating points on these images:")
    print(RESEARCH_NOTICE)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone: ``python -m busviewer.cli.train train|evaluate ...``."""
    parser = argparse.ArgumentParser(prog="python -m busviewer.cli.train")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
