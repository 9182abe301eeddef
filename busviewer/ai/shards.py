"""Sharded, compressed weights of shipped models (``models/<name>/``).

A shipped model is its card ``<stem>.json`` plus safetensors shards
``<stem>-00001-of-0000N.safetensors`` in one folder; every shard is at most
``max_shard_bytes`` (95 MB by default: a common per-file hosting limit). The card's
``shipping["shards"]`` lists each shard with its size and sha256, and the card's ``sha256``
is the sha256 of that list written as ``sha256sum`` lines (:func:`index_sha256`), so one
hash still identifies the weights in every prediction.

Encodings, told apart by the stored dtype (nothing else is needed to decode):

- ``int8``: weight-only, per-output-channel (row) symmetric quantisation
  ``q = round(w / s)``, ``s = max|w_row| / 127``; the scales are stored as the float32
  tensor ``<name>#scale``; de-quantised to float32 on load (error per value <= s / 2);
- ``fp16``: stored as float16, widened to float32 on load;
- ``fp32`` / integers: stored as they are.

A tensor too large for one shard is cut along its first dimension into ``<name>#part<i>``
pieces, concatenated again on load. ``#`` never occurs in a PyTorch state-dict key.

Loading reads each shard once, checks its size and sha256 against the card before parsing
it, and refuses a missing or altered shard with a :class:`ModelFileError` naming the file.
Only safetensors is ever parsed; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from busviewer.ai.modelcard import ModelCard
from busviewer.ai.networks import build_model
from busviewer.ai.registry import ModelFileError, TensorInfo, check_tensors, inspect_safetensors

SHARD_FORMAT = "busviewer-shards/1"
#: Largest shard file, in bytes (95 MB; hosting services commonly refuse files over 100 MB).
MAX_SHARD_BYTES = 95_000_000
SCALE_SUFFIX = "#scale"
PART_MARK = "#part"
_SHARD_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,200}\.safetensors$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_HEADER_SLACK = 64  # safetensors pads its header to 8 bytes; room for that and the length prefix
_DTYPE_NAMES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.int16: "I16",
    torch.int32: "I32",
    torch.int64: "I64",
    torch.bool: "BOOL",
}


@dataclass(frozen=True)
class Shard:
    """One written shard: its file name (relative to the model folder), size and sha256."""

    file: str
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "bytes": self.bytes, "sha256": self.sha256}


# ------------------------------------------------------------------ int8 quantisation
def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: ``(q int8 same shape, scale float32 (rows,))``.

    Row ``r`` uses ``s_r = max|w_r| / 127`` (1.0 for an all-zero row), so
    ``|w - q * s| <= s / 2`` for every value.
    """
    w = weight.detach().to(torch.float32).reshape(weight.shape[0], -1)
    amax = w.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(weight.shape), scale.contiguous()


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 ``q * scale`` per output channel (inverse of :func:`quantize_int8`)."""
    flat = q.to(torch.float32).reshape(q.shape[0], -1).mul_(scale.to(torch.float32)[:, None])
    return flat.reshape(q.shape)


def encode_state(state: Mapping[str, torch.Tensor], encoding: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Encode a float32 state dict: ``encoding[name]`` is ``int8``, ``fp16`` or ``fp32``
    (names not in it, and integer tensors, are stored unchanged)."""
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if "#" in name:
            raise ValueError(f"tensor name {name!r} contains '#', which the shard format reserves")
        t = t.detach().to("cpu").contiguous()
        how = encoding.get(name, "fp32") if t.is_floating_point() else "keep"
        if how == "int8":
            if t.dim() < 2:
                raise ValueError(f"{name}: int8 needs a weight matrix, got shape {tuple(t.shape)}")
            out[name], out[name + SCALE_SUFFIX] = quantize_int8(t)
        elif how == "fp16":
            out[name] = t.to(torch.float16)
        elif how in ("fp32", "keep"):
            out[name] = t.to(torch.float32) if t.is_floating_point() else t
        else:
            raise ValueError(f"{name}: unknown encoding {how!r}")
    return out


def decode_state(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`encode_state` (after joining parts): float32 weights, integers kept.

    Raises ``ValueError`` for parts with gaps, or an int8 tensor without its scale.
    """
    joined = join_parts(tensors)
    out: dict[str, torch.Tensor] = {}
    for name, t in joined.items():
        if name.endswith(SCALE_SUFFIX):
            base = name[: -len(SCALE_SUFFIX)]
            if base not in joined or joined[base].dtype != torch.int8:
                raise ValueError(f"scale {name!r} has no int8 tensor {base!r}")
            continue
        if t.dtype == torch.int8:
            scale = joined.get(name + SCALE_SUFFIX)
            if scale is None:
                raise ValueError(f"int8 tensor {name!r} has no scale {name + SCALE_SUFFIX!r}")
            if scale.shape != (t.shape[0],):
                raise ValueError(f"scale of {name!r} has shape {tuple(scale.shape)}, expected ({t.shape[0]},)")
            out[name] = dequantize_int8(t, scale)
        elif t.is_floating_point():
            out[name] = t.to(torch.float32)
        else:
            out[name] = t
    return out


# ------------------------------------------------------------------ sharding
def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _header_bytes(name: str, t: torch.Tensor) -> int:
    """Upper bound of the header bytes one tensor adds (20-digit offsets)."""
    entry = {
        name: {"dtype": _DTYPE_NAMES.get(t.dtype, "F32"), "shape": list(t.shape), "data_offsets": [10**19, 10**19]}
    }
    return len(json.dumps(entry, separators=(",", ":")).encode("utf-8")) + 2


def split_for_shards(
    tensors: Mapping[str, torch.Tensor], max_shard_bytes: int, metadata: Mapping[str, str] | None = None
) -> list[dict[str, torch.Tensor]]:
    """Group tensors (in order) into shards whose files stay within ``max_shard_bytes``.

    A tensor that does not fit into an empty shard is cut along dim 0 into
    ``<name>#part<i>`` pieces, the first filling the current shard.
    """
    base = len(json.dumps(dict(metadata or {}), separators=(",", ":")).encode()) + 20 + _HEADER_SLACK
    if max_shard_bytes < base + 4096:
        raise ValueError(f"max_shard_bytes {max_shard_bytes} is too small (at least {base + 4096})")
    shards: list[dict[str, torch.Tensor]] = []
    current: dict[str, torch.Tensor] = {}
    used = base

    def close() -> None:
        nonlocal current, used
        if current:
            shards.append(current)
        current, used = {}, base

    for name, t in tensors.items():
        t = t.contiguous()
        cost = _nbytes(t) + _header_bytes(name, t)
        if used + cost <= max_shard_bytes:
            current[name], used = t, used + cost
            continue
        if base + cost <= max_shard_bytes:  # fits an empty shard: start one
            close()
            current[name], used = t, used + cost
            continue
        if t.dim() == 0 or t.shape[0] < 2:
            raise ValueError(
                f"tensor {name!r} ({_nbytes(t)} bytes) cannot be split to fit {max_shard_bytes}-byte shards"
            )
        row = _nbytes(t[:1])
        start, index = 0, 0
        while start < t.shape[0]:
            part_name = f"{name}{PART_MARK}{index}"
            room = max_shard_bytes - used - _header_bytes(part_name, t)
            rows = min(t.shape[0] - start, max(room // row, 0))
            if rows < 1 or (rows < t.shape[0] - start and room < (max_shard_bytes - base) // 8):
                if not current:
                    raise ValueError(f"one row of {name!r} ({row} bytes) is larger than a {max_shard_bytes}-byte shard")
                close()  # too little room left here: the piece starts a new shard
                continue
            piece = t[start : start + rows].clone()  # its own storage: safetensors refuses shared views
            current[part_name] = piece
            used += _nbytes(piece) + _header_bytes(part_name, piece)
            start, index = start + rows, index + 1
            if start < t.shape[0]:
                close()
    close()
    return shards


def join_parts(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Concatenate ``<name>#part<i>`` pieces (dim 0) back into ``<name>``."""
    out: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[int, torch.Tensor]] = {}
    for name, t in tensors.items():
        base, mark, index = name.rpartition(PART_MARK)
        if mark and index.isdigit():
            parts.setdefault(base, {})[int(index)] = t
        else:
            out[name] = t
    for base, pieces in parts.items():
        if base in out:
            raise ValueError(f"tensor {base!r} is stored both whole and in parts")
        if sorted(pieces) != list(range(len(pieces))):
            raise ValueError(f"tensor {base!r}: parts {sorted(pieces)} are not 0..{len(pieces) - 1}")
        out[base] = torch.cat([pieces[i] for i in range(len(pieces))], dim=0)
    return out


def shard_names(stem: str, count: int) -> list[str]:
    """``<stem>-00001-of-0000N.safetensors`` ... for ``count`` shards."""
    return [f"{stem}-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def write_shards(
    tensors: Mapping[str, torch.Tensor],
    folder: Path,
    stem: str,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    metadata: Mapping[str, str] | None = None,
) -> list[Shard]:
    """Write encoded tensors as shards into ``folder`` (which must not hold them yet)."""
    from safetensors.torch import save_file

    meta = {"format": "pt", **dict(metadata or {})}
    groups = split_for_shards(tensors, max_shard_bytes, meta)
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Shard] = []
    for fname, group in zip(shard_names(stem, len(groups)), groups):
        path = folder / fname
        if path.exists():
            raise FileExistsError(f"{path} already exists; shipped files are never overwritten")
        save_file(group, str(path), metadata=meta)
        path.chmod(0o644)  # readable by every user of an installation
        size = path.stat().st_size
        if size > max_shard_bytes:  # the header estimate is an upper bound: never expected
            raise RuntimeError(f"{path}: {size} bytes, over the {max_shard_bytes}-byte limit")
        with path.open("rb") as f:
            os.fsync(f.fileno())
            f.seek(0)
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        out.append(Shard(fname, size, digest))
    return out


def index_sha256(shards: list[Shard] | list[dict[str, Any]]) -> str:
    """The model's sha256: of the shard list as ``sha256sum`` lines (``<sha256>  <file>``)."""
    rows = [s.to_dict() if isinstance(s, Shard) else s for s in shards]
    text = "".join(f"{r['sha256']}  {r['file']}\n" for r in rows)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ reading
def is_sharded(card: ModelCard) -> bool:
    """True if ``card`` describes sharded weights (a shipped model)."""
    shipping = getattr(card, "shipping", None)
    return isinstance(shipping, dict) and "shards" in shipping


def card_shards(card: ModelCard, where: Path) -> list[Shard]:
    """The card's validated shard list (file names are plain names in the model folder)."""
    info = card.shipping if isinstance(card.shipping, dict) else {}
    rows = info.get("shards")
    if info.get("format") != SHARD_FORMAT or not isinstance(rows, list) or not rows:
        raise ModelFileError(
            f"{where}: model card {card.ref} has no valid shard index "
            f"(expected shipping.format {SHARD_FORMAT!r} and a non-empty shipping.shards)"
        )
    out: list[Shard] = []
    for r in rows:
        ok = (
            isinstance(r, dict)
            and isinstance(r.get("file"), str)
            and _SHARD_NAME_RE.match(r["file"])
            and isinstance(r.get("sha256"), str)
            and _SHA_RE.match(r["sha256"])
            and isinstance(r.get("bytes"), int)
            and not isinstance(r.get("bytes"), bool)
            and r["bytes"] > 0
        )
        if not ok:
            raise ModelFileError(f"{where}: model card {card.ref} has an invalid shard entry {r!r}")
        out.append(Shard(r["file"], r["bytes"], r["sha256"]))
    if len({s.file for s in out}) != len(out):
        raise ModelFileError(f"{where}: model card {card.ref} lists a shard twice")
    if index_sha256(out) != card.sha256:
        raise ModelFileError(
            f"{where}: model card {card.ref}: its sha256 is not the hash of its shard index (card edited or corrupted)"
        )
    return out


def read_shard(path: Path, shard: Shard, card: ModelCard) -> dict[str, torch.Tensor]:
    """Read one shard after checking its size and sha256; errors name the file."""
    from safetensors.torch import load as load_bytes

    hint = "the shipped file was modified or corrupted; restore it from the installation or repository"
    if not path.is_file():
        raise ModelFileError(f"{path}: shard of model {card.ref} is missing")
    size = path.stat().st_size
    if size != shard.bytes:
        raise ModelFileError(f"{path}: shard of model {card.ref} is {size} bytes, its card says {shard.bytes}: {hint}")
    inspect_safetensors(path)  # recognises pickles and broken headers before anything parses it
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != shard.sha256:
        raise ModelFileError(
            f"{path}: sha256 mismatch: the file's is {digest}, the card of model {card.ref} "
            f"says {shard.sha256}: {hint}. The model was not loaded."
        )
    try:
        return load_bytes(data)
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFileError(f"{path}: cannot read safetensors shard: {exc}") from exc


def read_sharded_state(folder: Path, card: ModelCard) -> dict[str, torch.Tensor]:
    """Verify and read every shard, join parts, de-quantise: the float32 state dict."""
    shards = card_shards(card, folder)
    tensors: dict[str, torch.Tensor] = {}
    for shard in shards:
        for name, t in read_shard(folder / shard.file, shard, card).items():
            if name in tensors:
                raise ModelFileError(f"{folder / shard.file}: tensor {name!r} is also in another shard")
            tensors[name] = t
    try:
        state = decode_state(tensors)
    except ValueError as exc:
        raise ModelFileError(f"{folder}: shards of model {card.ref} do not decode: {exc}") from exc
    infos = {k: TensorInfo("F32" if v.is_floating_point() else "I64", tuple(v.shape)) for k, v in state.items()}
    check_tensors(folder, infos, card)
    return state


def verify_sharded(folder: Path, card: ModelCard) -> None:
    """Check every shard's size and sha256 (without decoding): the check ``activate`` makes."""
    for shard in card_shards(card, folder):
        path = folder / shard.file
        if not path.is_file():
            raise ModelFileError(f"{path}: shard of model {card.ref} is missing")
        inspect_safetensors(path)
        with path.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        if digest != shard.sha256:
            raise ModelFileError(
                f"{path}: sha256 mismatch: the file's is {digest}, the card of model "
                f"{card.ref} says {shard.sha256}: the shipped file was modified or corrupted"
            )


def load_sharded(folder: Path, card: ModelCard, device: str | torch.device = "cpu") -> nn.Module:
    """Build the card's network from its verified shards: float32, eval mode, on ``device``."""
    state = read_sharded_state(folder, card)
    with torch.device("meta"):
        model = build_model(
            card.architecture, card.input_mode, num_classes=card.num_classes, pretrained=False, variant=card.variant
        )
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{folder}: weights do not fit {card.architecture}: {exc}") from exc
    model = model.to(device=torch.device(device), dtype=torch.float32)
    model.eval()
    return model


def export_sharded(
    folder: Path, card_path: Path, card: ModelCard, dest: Path, overwrite: bool = False
) -> tuple[Path, Path]:
    """Copy a sharded model (card and verified shards) to ``dest/<name>/``, ready to be
    dropped into another installation's shipped models folder. Returns ``(folder, card)``."""
    import shutil

    out = dest / card.name
    shards = card_shards(card, folder)
    targets = [out / s.file for s in shards] + [out / card_path.name]
    for p in targets:
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} already exists (pass overwrite=True to replace it)")
    verify_sharded(folder, card)
    out.mkdir(parents=True, exist_ok=True)
    for s in shards:
        shutil.copyfile(folder / s.file, out / s.file)
    shutil.copyfile(card_path, out / card_path.name)
    return out, out / card_path.name


def folder_bytes(shards: list[Shard]) -> int:
    """Total size of the shards."""
    return sum(s.bytes for s in shards)


def megabytes(n: int) -> float:
    """Bytes as MB (10^6), rounded to 0.1."""
    return math.floor(n / 1e5 + 0.5) / 10


__all__ = [
    "MAX_SHARD_BYTES",
    "SHARD_FORMAT",
    "Shard",
    "card_shards",
    "decode_state",
    "dequantize_int8",
    "encode_state",
    "index_sha256",
    "is_sharded",
    "join_parts",
    "load_sharded",
    "quantize_int8",
    "read_sharded_state",
    "split_for_shards",
    "verify_sharded",
    "write_shards",
]
