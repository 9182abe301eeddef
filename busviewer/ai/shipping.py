"""Ship a registered model as a default: compress, measure, shard into ``models/<name>/``.

``busviewer models ship NAME:VERSION`` calls :func:`ship_model`:

1. load the registered (float32) model and, with ``check_data``, predict the manifest's
   benign/malignant images with it;
2. compress (:func:`plan_encoding`): ``int8`` = weight-only per-output-channel int8 for
   the large linear layers (weight matrices of at least ``large_linear_min`` values),
   fp16 for the other weights; ``fp16`` = fp16 for every weight; ``none`` = float32.
   One-dimensional tensors (biases, BatchNorm weights and running statistics) always stay
   float32: they are under 0.1 % of the bytes, so fp16 would save nothing that matters;
3. de-quantise and predict again: the AUC change and the largest probability change
   against float32 must stay within :data:`MAX_AUC_CHANGE` / :data:`MAX_PROBABILITY_CHANGE`,
   otherwise the next, more precise encoding is tried (int8 -> fp16 -> none);
4. write the shards (:mod:`busviewer.ai.shards`), reload them through the shipped-model
   path and record a small regression set: a few check images (paths relative to the
   manifest's folder) with the probabilities the de-quantised model gives on CPU;
5. write the card last: the source card's recipe, training data (with its citation),
   metrics, calibration and operating points, plus ``shipping`` (command, shard index with
   sha256, compression and its measured effect, regression set).

Probabilities are the calibrated ones the app shows (``softmax(logits / T)``). Nothing here
imports Qt; the CLI only parses arguments.
"""

from __future__ import annotations

import copy
import csv
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from busviewer.ai import shards as sh
from busviewer.ai.integrity import seal
from busviewer.ai.modelcard import ModelCard
from busviewer.ai.networks import build_model

BUSI_CITATION = (
    "Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. Dataset of breast ultrasound images. "
    "Data in Brief 28 (2020) 104863, doi:10.1016/j.dib.2019.104863"
)
MODES: tuple[str, ...] = ("int8", "fp16", "none")
#: A linear layer is "large" (int8) from this many weights (AlexNet/VGG fc6, fc7).
LARGE_LINEAR_MIN = 1_000_000
MAX_AUC_CHANGE = 0.005
MAX_PROBABILITY_CHANGE = 0.01
REGRESSION_TOLERANCE = 1e-4

Progress = Callable[[str], None]


class ShipError(RuntimeError):
    """The model cannot be shipped (target exists, bad check data...); the message says why."""


@dataclass(frozen=True)
class CheckImage:
    """One labelled check image: its path and its path as written in the manifest."""

    path: Path
    rel: str
    label: str


@dataclass
class ShipOptions:
    """What :func:`ship_model` does; see the module docstring."""

    out_dir: Path
    quantize: str = "int8"
    check_data: Path | None = None
    max_images: int | None = None
    device: str | None = None
    name: str | None = None
    version: int | None = None
    max_shard_bytes: int = sh.MAX_SHARD_BYTES
    large_linear_min: int = LARGE_LINEAR_MIN
    citation: str = BUSI_CITATION
    regression_per_class: int = 3
    command: str = ""
    max_auc_change: float = MAX_AUC_CHANGE
    max_probability_change: float = MAX_PROBABILITY_CHANGE


@dataclass
class ShipResult:
    """The shipped model: its folder, card, shards, the encoding used and every attempt."""

    folder: Path
    card: ModelCard
    shards: list[sh.Shard]
    mode: str
    tried: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------ compression plan
def plan_encoding(model: nn.Module, mode: str, large_linear_min: int = LARGE_LINEAR_MIN) -> dict[str, str]:
    """Encoding of every floating tensor of ``model``'s state dict for ``mode``."""
    if mode not in MODES:
        raise ValueError(f"unknown compression {mode!r}; expected one of {list(MODES)}")
    large = {
        f"{n}.weight"
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and m.weight.numel() >= large_linear_min
    }
    plan: dict[str, str] = {}
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue
        if mode == "none" or t.dim() < 2:
            plan[name] = "fp32"
        elif mode == "int8" and name in large:
            plan[name] = "int8"
        elif t.abs().max().item() > torch.finfo(torch.float16).max:
            plan[name] = "fp32"  # would overflow in fp16
        else:
            plan[name] = "fp16"
    return plan


def _encoding_summary(plan: dict[str, str], state: dict[str, torch.Tensor]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for how in ("int8", "fp16", "fp32"):
        names = [k for k, v in plan.items() if v == how]
        out[how] = {"tensors": len(names), "values": int(sum(state[k].numel() for k in names))}
    out["int8_tensors"] = sorted(k for k, v in plan.items() if v == "int8")
    return out


# ------------------------------------------------------------------ check data
def read_check_images(
    manifest: Path, classes: Sequence[str], max_images: int | None = None
) -> tuple[list[CheckImage], dict[str, int]]:
    """The manifest's images whose label is one of ``classes`` (CSV ``image,label,...``,
    paths relative to the manifest's folder), evenly thinned to ``max_images``; also the
    number of rows left out per other label (e.g. ``normal``)."""
    manifest = Path(manifest)
    try:
        with manifest.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise ShipError(f"{manifest}: cannot read the check-data manifest ({exc.strerror or exc})") from exc
    if not rows or "image" not in rows[0] or "label" not in rows[0]:
        raise ShipError(f"{manifest}: expected a CSV with columns image,label[,patient_id]")
    images: list[CheckImage] = []
    skipped: dict[str, int] = {}
    for r in rows:
        label = (r.get("label") or "").strip()
        if label not in classes:
            skipped[label] = skipped.get(label, 0) + 1
            continue
        rel = (r.get("image") or "").strip()
        images.append(CheckImage(manifest.parent / rel, rel, label))
    if max_images is not None and 0 < max_images < len(images):
        step = len(images) / max_images
        images = [images[int(i * step)] for i in range(max_images)]
    missing = [c.path for c in images if not c.path.is_file()]
    if missing:
        raise ShipError(f"{manifest}: {len(missing)} check image(s) not found, e.g. {missing[0]}")
    return images, skipped


def read_pixels(images: Sequence[CheckImage]) -> list[np.ndarray]:
    """First frame of each image as the app reads it (``(H, W, 3) uint8``)."""
    from busviewer.core.imageio import read_image

    return [read_image(c.path).frame(0) for c in images]


@contextmanager
def _exact_float32() -> Iterator[None]:
    """No TF32 on CUDA while measuring (it would blur the float32 reference)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def predict_probabilities(
    model: nn.Module,
    card: ModelCard,
    pixels: Sequence[np.ndarray],
    device: str | torch.device = "cpu",
    batch_size: int = 16,
) -> np.ndarray:
    """Calibrated probabilities ``(N, K)`` float64, as the app computes them (no autocast)."""
    from busviewer.ai.inference import Predictor
    from busviewer.ai.preprocess import preprocess

    pred = Predictor(model, card, device=torch.device(device), autocast=False)
    out = []
    with _exact_float32():
        for start in range(0, len(pixels), batch_size):
            batch = torch.stack([preprocess(im, card) for im in pixels[start : start + batch_size]])
            out.append(pred.probabilities(batch).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, card.num_classes))


def compression_effect(
    reference: np.ndarray, compressed: np.ndarray, labels: Sequence[str], card: ModelCard
) -> dict[str, Any]:
    """AUC (malignant vs the rest) of both, its change, and probability changes."""
    from sklearn.metrics import roc_auc_score

    diff = np.abs(compressed - reference)
    out: dict[str, Any] = {
        "images": len(labels),
        "max_probability_change": float(diff.max()) if diff.size else 0.0,
        "mean_probability_change": float(diff.mean()) if diff.size else 0.0,
    }
    positive = "malignant" if "malignant" in card.classes else card.classes[-1]
    k = card.classes.index(positive)
    y = np.array([lab == positive for lab in labels])
    if y.any() and not y.all():
        a_ref = float(roc_auc_score(y, reference[:, k]))
        a_new = float(roc_auc_score(y, compressed[:, k]))
        out.update(auc_fp32=a_ref, auc_shipped=a_new, auc_change=abs(a_new - a_ref))
    else:
        out.update(auc_fp32=None, auc_shipped=None, auc_change=None)
    thr = card.threshold() if card.num_classes == 2 and "malignant" in card.classes else 0.5
    out["calls_changed"] = int(((reference[:, k] >= thr) != (compressed[:, k] >= thr)).sum())
    return out


def within_bounds(
    effect: dict[str, Any],
    max_auc_change: float = MAX_AUC_CHANGE,
    max_probability_change: float = MAX_PROBABILITY_CHANGE,
) -> bool:
    """AUC change <= ``max_auc_change`` (0.005) and largest probability change <=
    ``max_probability_change`` (0.01); an AUC that cannot be computed (one class) passes."""
    auc = effect.get("auc_change")
    return effect["max_probability_change"] <= max_probability_change and (auc is None or auc <= max_auc_change)


# ------------------------------------------------------------------ shipping
def _model_from_state(card: ModelCard, state: dict[str, torch.Tensor]) -> nn.Module:
    with torch.device("meta"):
        model = build_model(
            card.architecture, card.input_mode, num_classes=card.num_classes, pretrained=False, variant=card.variant
        )
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _regression_picks(images: Sequence[CheckImage], probs: np.ndarray, card: ModelCard, per_class: int) -> list[int]:
    """Per class, images spread over the malignant-probability range (lowest .. highest)."""
    k = card.classes.index("malignant") if "malignant" in card.classes else card.num_classes - 1
    picks: list[int] = []
    for label in card.classes:
        idx = sorted((i for i, c in enumerate(images) if c.label == label), key=lambda i: (probs[i, k], i))
        if not idx:
            continue
        n = min(per_class, len(idx))
        spots = [round(j * (len(idx) - 1) / max(n - 1, 1)) for j in range(n)]
        picks += [idx[s] for s in dict.fromkeys(spots)]
    return picks


def _training_with_citation(card: ModelCard, citation: str) -> dict[str, Any]:
    training = copy.deepcopy(card.training)
    data = training.get("data")
    if not isinstance(data, dict):
        data = {"summary": data} if data is not None else {}
    if citation and not data.get("citation"):
        data["citation"] = citation
    training["data"] = data
    return training


def ship_model(registry: Any, ref: str, options: ShipOptions, progress: Progress | None = None) -> ShipResult:
    """Ship the registered model ``ref`` into ``options.out_dir/<name>/``; see the module
    docstring. Never overwrites: an existing ``<name>-v<version>`` there is an error."""
    say = progress or (lambda _msg: None)
    from busviewer.ai.device import choose_device

    if options.quantize not in MODES:
        raise ShipError(f"unknown --quantize {options.quantize!r}; expected one of {list(MODES)}")
    entry = registry.get(ref)
    src = entry.card
    final = src.with_updates(name=options.name or src.name, version=options.version or src.version)
    folder = Path(options.out_dir) / final.name
    if (folder / f"{final.stem}.json").exists() or any(folder.glob(f"{final.stem}-*.safetensors")):
        raise ShipError(
            f"{folder}: {final.ref} is already shipped there; shipped files are never overwritten "
            "(ship another version, or remove the old folder first)"
        )
    device = choose_device(options.device)
    say(f"loading {entry.ref} ({src.architecture}, {src.variant}) from {entry.weights_path}")
    model32, _ = registry.load(entry, device="cpu")
    state32 = {k: v.detach().cpu() for k, v in model32.state_dict().items()}

    images: list[CheckImage] = []
    skipped: dict[str, int] = {}
    pixels: list[np.ndarray] = []
    ref_probs = np.zeros((0, src.num_classes))
    if options.check_data is not None:
        images, skipped = read_check_images(Path(options.check_data), src.classes, options.max_images)
        say(
            f"check data: {len(images)} images ({', '.join(f'{k} {v}' for k, v in skipped.items()) or 'none'} "
            "left out); predicting with the float32 weights"
        )
        pixels = read_pixels(images)
        ref_probs = predict_probabilities(model32, src, pixels, device)
    else:
        say("warning: no --check-data: the compression's effect is not measured and no regression set is recorded")
    labels = [c.label for c in images]

    tried: list[dict[str, Any]] = []
    chosen: tuple[str, dict[str, str], dict[str, Any] | None] | None = None
    for mode in MODES[MODES.index(options.quantize) :]:
        plan = plan_encoding(model32, mode, options.large_linear_min)
        decoded = sh.decode_state(sh.encode_state(state32, plan))
        effect = None
        if images:
            effect = compression_effect(
                ref_probs, predict_probabilities(_model_from_state(src, decoded), src, pixels, device), labels, src
            )
        ok = (
            effect is None
            or mode == "none"  # float32 is the reference: always acceptable
            or within_bounds(effect, options.max_auc_change, options.max_probability_change)
        )
        tried.append({"mode": mode, "accepted": ok, "effect": effect})
        auc = "n/a (one class)" if not effect or effect["auc_change"] is None else f"{effect['auc_change']:.2e}"
        say(
            f"{mode}: "
            + (
                f"AUC change {auc}, max probability change {effect['max_probability_change']:.2e} "
                f"on {effect['images']} images"
                if effect
                else "not measured"
            )
            + ("" if ok else " -> over the bounds, keeping more precision")
        )
        del decoded
        if ok:
            chosen = (mode, plan, effect)
            break
    assert chosen is not None  # "none" reproduces float32 exactly
    mode, plan, effect = chosen

    encoded = sh.encode_state(state32, plan)
    Path(options.out_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-ship-{final.name}-", dir=options.out_dir))
    try:
        shards = sh.write_shards(
            encoded,
            tmp,
            final.stem,
            options.max_shard_bytes,
            {
                "name": final.name,
                "version": str(final.version),
                "architecture": final.architecture,
                "input_mode": final.input_mode,
            },
        )
        del encoded
        fp32_bytes = sum(t.numel() * t.element_size() for t in state32.values())
        shipping: dict[str, Any] = {
            "format": sh.SHARD_FORMAT,
            "shards": [s.to_dict() for s in shards],
            "max_shard_bytes": options.max_shard_bytes,
            "command": options.command,
            "shipped": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "source": {"ref": entry.ref, "sha256": src.sha256, "location": entry.location},
            "compression": {
                "requested": options.quantize,
                "used": mode,
                "large_linear_min": options.large_linear_min,
                "encoding": _encoding_summary(plan, state32),
                "bytes": sh.folder_bytes(shards),
                "fp32_bytes": fp32_bytes,
                "ratio": round(sh.folder_bytes(shards) / fp32_bytes, 4),
                "bounds": {
                    "auc_change": options.max_auc_change,
                    "max_probability_change": options.max_probability_change,
                },
                "effect": effect,
                "tried": tried,
                "check_data": None
                if options.check_data is None
                else {
                    "manifest": str(options.check_data),
                    "images": len(images),
                    "left_out": skipped,
                    "max_images": options.max_images,
                    "device": str(device),
                },
                "note": "one-dimensional tensors (biases, BatchNorm) stay float32; weights are "
                "de-quantised to float32 on load",
            },
        }
        card = final.with_updates(
            sha256=sh.index_sha256(shards), shipping=shipping, training=_training_with_citation(src, options.citation)
        )
        # The regression set comes from the written shards, loaded as an installation loads them.
        loaded = sh.load_sharded(tmp, card, "cpu")
        picks = _regression_picks(images, ref_probs, src, options.regression_per_class) if images else []
        if picks:
            reg_probs = predict_probabilities(loaded, card, [pixels[i] for i in picks], "cpu")
            shipping["regression"] = {
                "root": "the check-data manifest's folder",
                "tolerance": REGRESSION_TOLERANCE,
                "images": [
                    {
                        "image": images[i].rel,
                        "label": images[i].label,
                        "probabilities": dict(zip(card.classes, map(float, reg_probs[j]))),
                    }
                    for j, i in enumerate(picks)
                ],
            }
            card = card.with_updates(shipping=shipping)
        card = seal(card)  # the card's integrity hash covers it and the shard index
        card.validate()
        (tmp / f"{card.stem}.json").write_text(card.to_json(), encoding="utf-8")
        folder.mkdir(parents=True, exist_ok=True)
        for s in shards:  # shards first, the card last: a model is listed only once complete
            os.replace(tmp / s.file, folder / s.file)
        os.replace(tmp / f"{card.stem}.json", folder / f"{card.stem}.json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(
        f"shipped {card.ref} to {folder}: {len(shards)} shard(s), {sh.megabytes(sh.folder_bytes(shards))} MB "
        f"({mode}; float32 {sh.megabytes(fp32_bytes)} MB)"
    )
    return ShipResult(folder, card, shards, mode, tried)


def regression_check(model: nn.Module, card: ModelCard, root: Path) -> float:
    """Largest difference between ``card``'s recorded regression probabilities and what
    ``model`` gives now for those images under ``root`` (the check-data folder)."""
    rows = ((card.shipping or {}).get("regression") or {}).get("images") or []
    if not rows:
        raise ShipError(f"model card {card.ref} records no regression images")
    checks = [CheckImage(Path(root) / r["image"], r["image"], r["label"]) for r in rows]
    got = predict_probabilities(model, card, read_pixels(checks), "cpu")
    want = np.array([[r["probabilities"][c] for c in card.classes] for r in rows])
    return float(np.abs(got - want).max())


__all__ = [
    "BUSI_CITATION",
    "LARGE_LINEAR_MIN",
    "MAX_AUC_CHANGE",
    "MAX_PROBABILITY_CHANGE",
    "MODES",
    "ShipError",
    "ShipOptions",
    "ShipResult",
    "compression_effect",
    "plan_encoding",
    "predict_probabilities",
    "read_check_images",
    "regression_check",
    "ship_model",
    "within_bounds",
]
