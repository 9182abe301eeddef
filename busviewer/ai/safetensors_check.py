"""Safetensors header parsing and weights-file checks, without loading any tensor.

:func:`inspect_safetensors` parses the header itself (8-byte little-endian length + JSON) so a
pickle / ``torch.save`` file is recognised and rejected before any library touches it;
:func:`check_tensors` / :func:`check_weights_file` compare tensor names, shapes and the sha256
with a model card. torch is imported only to build an architecture's expected tensors.
"""

from __future__ import annotations

import functools
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from busviewer.ai.modelcard import ModelCard
from busviewer.ai.registry_errors import ModelFileError

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit safetensors itself enforces

_DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
_INT_DTYPES = {"I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as declared in a safetensors header."""

    dtype: str
    shape: tuple[int, ...]


def sniff_foreign_format(head: bytes) -> str | None:
    """Name a well-known non-safetensors format from its first bytes, else None."""
    if head[:4] == b"PK\x03\x04":
        return "a ZIP archive (this is what torch.save writes: a .pt/.pth checkpoint containing pickled Python objects)"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "a Python pickle (e.g. a legacy torch.save .pt/.pth/.pkl file)"
    if head[:6] == b"\x93NUMPY":
        return "a NumPy .npy array"
    if head[:4] == b"\x89HDF":
        return "an HDF5 (Keras .h5) file"
    if head[:1] in (b"{", b"["):
        return "a JSON text file (the model card?), not weights"
    return None


def inspect_safetensors(path: str | Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Validate a safetensors file's structure without loading tensors.

    Returns ``(tensors, metadata)``. Raises :class:`ModelFileError` when the file is not
    a complete, well-formed safetensors file (pickle/zip files are recognised and named).
    Only the header is read; nothing in the file is executed.
    """
    path = Path(path)

    def not_safetensors(reason: str) -> ModelFileError:
        foreign = sniff_foreign_format(head)
        if foreign is not None:
            return ModelFileError(
                f"{path}: not a safetensors file: it is {foreign}. Only safetensors weights with a "
                "model card are accepted; the file was not loaded or unpickled."
            )
        return ModelFileError(f"{path}: not a safetensors file: {reason}")

    head = b""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise not_safetensors(f"only {size} bytes long")
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > MAX_HEADER_BYTES or n > size - 8:
                raise not_safetensors(
                    f"its first 8 bytes give a header length of {n} bytes, impossible for a "
                    f"{size}-byte file (truncated, or another format)"
                )
            raw = f.read(n)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not raw.startswith(b"{"):
        raise not_safetensors("the header does not start with '{'")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise not_safetensors(f"the header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a safetensors file: the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFileError(f"{path}: malformed safetensors header: __metadata__ must map strings to strings")
    data_len = size - 8 - n
    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if (
            not isinstance(info, dict)
            or not isinstance(info.get("dtype"), str)
            or not isinstance(info.get("shape"), list)
            or not isinstance(info.get("data_offsets"), list)
        ):
            raise ModelFileError(f"{path}: malformed safetensors header entry for tensor {name!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPE_SIZES:
            raise ModelFileError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ModelFileError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
        if (
            len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise ModelFileError(f"{path}: tensor {name!r} has invalid data offsets {offsets!r}")
        numel = 1
        for d in shape:
            numel *= d
        if offsets[1] - offsets[0] != numel * _DTYPE_SIZES[dtype]:
            raise ModelFileError(
                f"{path}: tensor {name!r}: {dtype}{tuple(shape)} needs {numel * _DTYPE_SIZES[dtype]} bytes "
                f"but the header gives {offsets[1] - offsets[0]}"
            )
        tensors[name] = TensorInfo(dtype, tuple(shape))
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    end = 0
    for begin, stop, name in spans:
        if begin != end:
            raise ModelFileError(
                f"{path}: malformed safetensors file: tensor {name!r} data does not "
                f"follow the previous tensor (gap or overlap at byte {begin})"
            )
        end = stop
    if end > data_len:
        raise ModelFileError(
            f"{path}: truncated safetensors file: the header describes {end} bytes of "
            f"tensor data but only {data_len} are present"
        )
    if end < data_len:
        raise ModelFileError(
            f"{path}: malformed safetensors file: {data_len - end} unexpected bytes after the tensor data"
        )
    return tensors, {str(k): v for k, v in metadata.items()}


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@functools.lru_cache(maxsize=8)
def _expected_tensors(
    architecture: str, input_mode: str, num_classes: int, variant: str = "classic"
) -> dict[str, TensorInfo]:
    """Tensor names/shapes of an architecture's state dict (built on the meta device: no memory)."""
    import torch

    from busviewer.ai.networks import build_model

    with torch.device("meta"):
        model = build_model(architecture, input_mode, num_classes=num_classes, pretrained=False, variant=variant)
    out: dict[str, TensorInfo] = {}
    for k, v in model.state_dict().items():
        kind = "F32" if v.is_floating_point() else "I64"
        out[k] = TensorInfo(kind, tuple(v.shape))
    return out


def expected_tensors(card: ModelCard) -> dict[str, TensorInfo]:
    """Names and shapes the weights of ``card``'s architecture must have."""
    return dict(_expected_tensors(card.architecture, card.input_mode, card.num_classes, card.variant))


def format_names(names: list[str], limit: int = 5) -> str:
    """The first ``limit`` names, comma-separated, then how many more there are."""
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def check_tensors(path: str | Path, tensors: dict[str, TensorInfo], card: ModelCard) -> None:
    """Raise :class:`ModelFileError` unless ``tensors`` match ``card``'s architecture exactly."""
    expected = expected_tensors(card)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    problems: list[str] = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {format_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): {format_names(unexpected)}")
    wrong = []
    for k in sorted(set(expected) & set(tensors)):
        exp, got = expected[k], tensors[k]
        if exp.shape != got.shape:
            wrong.append(f"{k} has shape {list(got.shape)}, expected {list(exp.shape)}")
        elif exp.dtype == "F32" and got.dtype not in _FLOAT_DTYPES:
            wrong.append(f"{k} has dtype {got.dtype}, expected a float type")
        elif exp.dtype == "I64" and got.dtype not in _INT_DTYPES:
            wrong.append(f"{k} has dtype {got.dtype}, expected an integer type")
    if wrong:
        problems.append(
            f"{len(wrong)} wrong tensor(s): "
            + "; ".join(wrong[:5])
            + (f"; ... ({len(wrong) - 5} more)" if len(wrong) > 5 else "")
        )
    if problems:
        raise ModelFileError(
            f"{path}: weights do not match the card's architecture ({card.architecture}, input_mode "
            f"{card.input_mode}, {card.num_classes} classes): " + "; ".join(problems)
        )


def check_weights_file(path: str | Path, card: ModelCard) -> dict[str, TensorInfo]:
    """Full pre-load check: safetensors structure, sha256 against the card, tensor shapes.

    Raises :class:`ModelFileError` naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: weights file not found")
    tensors, _ = inspect_safetensors(path)
    digest = file_sha256(path)
    if not card.sha256:
        raise ModelFileError(f"{path}: the model card {card.ref} has no sha256; cannot verify the weights")
    if digest != card.sha256:
        raise ModelFileError(
            f"{path}: sha256 mismatch: the file's is {digest}, the model card "
            f"{card.ref} says {card.sha256} (file modified, corrupted or not this card's)"
        )
    check_tensors(path, tensors, card)
    return tensors


__all__ = [
    "MAX_HEADER_BYTES",
    "TensorInfo",
    "check_tensors",
    "check_weights_file",
    "expected_tensors",
    "file_sha256",
    "format_names",
    "inspect_safetensors",
    "sniff_foreign_format",
]
