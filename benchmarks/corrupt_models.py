"""Corrupted model variants against ``ModelRegistry.import_model``: every one must be refused.

A small registry model (the ensemble, random weights) is saved once; each variant is a
copy of its weights and card with one kind of damage, often with the hashes recomputed
the way a careless edit would:

* ``value``: a weight changed, the card's weights sha256 recomputed (the card's integrity
  hash left as it was)
* ``nan`` / ``inf``: a weight set to NaN / inf, sha256 recomputed (half of them re-sealed)
* ``negvar``: a BatchNorm running_var below 0, sha256 and integrity recomputed
* ``classes``: classes swapped, renamed or extended (half re-sealed)
* ``norm``: normalisation std 0 / negative / tiny / huge, mean huge (half re-sealed)
* ``header``: the safetensors header edited (length, dtype, shape, offsets), sha256 recomputed
* ``truncate``: the weights cut short, sha256 recomputed
* ``pickle``: a ``torch.save`` checkpoint (zip) or a raw pickle as the weights file
* ``card``: integrity removed or altered, input size absurd, other card fields edited

    .venv/bin/python benchmarks/corrupt_models.py [-n 100] [--seed 0]

Prints the count refused per kind (with one example message) and exits non-zero if any
variant was accepted.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pickle
import random
import shutil
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

KINDS = ("value", "nan", "inf", "negvar", "classes", "norm", "header", "truncate", "pickle", "card")
#: How many of each kind a run of 100 makes.
MIX = {
    "value": 15,
    "nan": 10,
    "inf": 10,
    "negvar": 10,
    "classes": 10,
    "norm": 10,
    "header": 10,
    "truncate": 10,
    "pickle": 5,
    "card": 10,
}


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_header(path: Path) -> tuple[int, dict[str, Any]]:
    """(header length, header JSON) of a safetensors file."""
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return n, json.loads(f.read(n))


def _set_float(path: Path, name: str, index: int, value: float) -> None:
    n, header = read_header(path)
    info = header[name]
    assert info["dtype"] == "F32", info
    begin = 8 + n + info["data_offsets"][0]
    with path.open("r+b") as f:
        f.seek(begin + 4 * index)
        f.write(struct.pack("<f", value))


def _float_tensor(path: Path, rng: random.Random, suffix: str = "") -> tuple[str, int]:
    _, header = read_header(path)
    names = sorted(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32" and k.endswith(suffix))
    name = rng.choice(names)
    numel = 1
    for d in header[name]["shape"]:
        numel *= d
    return name, rng.randrange(max(1, numel))


def make_variant(kind: str, i: int, weights: Path, card: dict[str, Any], out: Path) -> Path:
    """Write variant ``i`` of ``kind`` into folder ``out``; returns the card path to import."""
    from busviewer.ai.integrity import seal
    from busviewer.ai.modelcard import ModelCard

    rng = random.Random(f"{kind}:{i}")
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{card['name']}-v{card['version']}"
    w, c = out / f"{stem}.safetensors", out / f"{stem}.json"
    data = dict(card)
    reseal = i % 2 == 1

    def copy_weights() -> None:
        shutil.copyfile(weights, w)

    def link_weights() -> None:
        try:
            os.link(weights, w)
        except OSError:
            shutil.copyfile(weights, w)

    if kind in ("value", "nan", "inf", "negvar"):
        copy_weights()
        if kind == "negvar":
            name, idx = _float_tensor(w, rng, "running_var")
            _set_float(w, name, idx, -rng.choice((1e-3, 1.0, 10.0)))
            reseal = True
        else:
            name, idx = _float_tensor(w, rng)
            value = {"value": rng.uniform(-2, 2), "nan": float("nan"), "inf": rng.choice((1, -1)) * float("inf")}[kind]
            _set_float(w, name, idx, value)
            if kind == "value":
                reseal = False
        data["sha256"] = _sha256(w)
    elif kind == "classes":
        link_weights()
        data["classes"] = [
            ["malignant", "benign"],
            ["benign", "malignant", "normal"],
            ["Benign", "malignant"],
            ["benign", "cancer"],
            ["malignant", "benign"],
        ][i % 5]
    elif kind == "norm":
        link_weights()
        norm = json.loads(json.dumps(card["normalisation"]))
        which = i % 5
        if which == 0:
            norm["std"][0] = 0.0
        elif which == 1:
            norm["std"][1] = -0.2
        elif which == 2:
            norm["std"][2] = 1e-9
        elif which == 3:
            norm["mean"][0] = 1e9
        else:
            norm["std"] = [s * 3 for s in norm["std"]]  # plausible values: only the hash tells
            reseal = False
        data["normalisation"] = norm
    elif kind == "header":
        copy_weights()
        n, header = read_header(w)
        body = w.read_bytes()[8 + n :]
        name = rng.choice(sorted(k for k in header if k != "__metadata__"))
        which = i % 5
        if which == 0:
            header[name]["dtype"] = "F64"
        elif which == 1:
            header[name]["shape"] = [d + 1 for d in header[name]["shape"]] or [2]
        elif which == 2:
            header[name]["data_offsets"][1] += 4
        elif which == 3:
            header["__metadata__"] = {"format": 1}  # type: ignore[dict-item]
        if which == 4:
            raw = w.read_bytes()
            w.write_bytes(struct.pack("<Q", n + 1000) + raw[8:])
        else:
            text = json.dumps(header).encode()
            text += b" " * (-len(text) % 8)
            w.write_bytes(struct.pack("<Q", len(text)) + text + body)
        data["sha256"] = _sha256(w)
    elif kind == "truncate":
        copy_weights()
        size = w.stat().st_size
        with w.open("r+b") as f:
            f.truncate(rng.choice((0, 4, 8, 100, size // 2, size - 1)))
        data["sha256"] = _sha256(w)
    elif kind == "pickle":
        import torch

        if i % 2 == 0:
            torch.save({"weights": torch.zeros(3)}, w)
        else:
            w.write_bytes(pickle.dumps({"weights": [0.0] * 3}, protocol=4))
        data["sha256"] = _sha256(w)
    elif kind == "card":
        link_weights()
        which = i % 5
        if which == 0:
            data.pop("integrity", None)
        elif which == 1:
            data["integrity"] = "0" * 64
        elif which == 2:
            data["input_size"] = 4000
        elif which == 3:
            data["metrics"] = {"accuracy": 0.99}
        else:
            data["description"] = "edited by hand"
        reseal = which == 2
    else:
        raise ValueError(kind)
    if reseal:
        with contextlib.suppress(Exception):  # a card the model code refuses cannot be sealed: as is
            data = seal(ModelCard.from_dict(data, require_registered=True)).to_dict()
    c.write_text(json.dumps(data, indent=1))
    return c


def run(n: int = 100, seed: int = 0) -> tuple[Counter, Counter, dict[str, str], float]:
    """(refused per kind, accepted per kind, one message per kind, seconds)."""
    import torch

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model
    from busviewer.ai.registry import ModelFileError, ModelRegistry

    kinds = [k for k, m in MIX.items() for _ in range(m)]
    kinds = (kinds * (n // len(kinds) + 1))[:n]
    refused: Counter = Counter()
    accepted: Counter = Counter()
    messages: dict[str, str] = {}
    root = Path(tempfile.mkdtemp(prefix="bv-corrupt-"))
    started = time.perf_counter()
    try:
        torch.manual_seed(seed)
        reg = ModelRegistry(user_dir=root / "source", shipped_dir=root / "none")
        entry = reg.save(
            build_model("ensemble", "bmode", pretrained=False),
            ModelCard("corrupt", 1, "ensemble", "bmode", input_size=64, pretrained_init="random"),
        )
        card = entry.card.to_dict()
        for i, kind in enumerate(kinds):
            folder = root / f"v{i:03d}"
            path = make_variant(kind, i, entry.weights_path, card, folder)
            target = ModelRegistry(user_dir=root / f"user{i:03d}", shipped_dir=root / "none")
            try:
                target.import_model(path)
                accepted[kind] += 1
            except ModelFileError as exc:
                refused[kind] += 1
                messages.setdefault(kind, str(exc).replace(str(root), "<tmp>")[:220])
            finally:
                shutil.rmtree(folder, ignore_errors=True)
                shutil.rmtree(root / f"user{i:03d}", ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return refused, accepted, messages, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    refused, accepted, messages, took = run(args.n, args.seed)
    total = sum(refused.values()) + sum(accepted.values())
    print(
        f"{total} corrupted variants in {took:.0f} s: {sum(refused.values())} refused at import, "
        f"{sum(accepted.values())} accepted"
    )
    for kind in KINDS:
        if refused[kind] or accepted[kind]:
            print(
                f"  {kind:<9} refused {refused[kind]:>3}  accepted {accepted[kind]:>3}  e.g. {messages.get(kind, '-')}"
            )
    return 1 if sum(accepted.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
