"""Model integrity: the card is covered by a hash too, its fields and weight values are sane.

The weights' sha256 alone let a card with swapped classes, or weights edited together
with a recomputed sha256, through. Here:

* :func:`card_integrity` is the sha256 over the card's canonical content (sorted-key JSON
  without ``integrity`` itself, so name, classes, normalisation, metrics and the weights'
  ``sha256`` / shard index are all in it) followed by one ``<sha256>  <file>`` line per
  weight file (the single ``.safetensors`` file, or each shard of a shipped model). The
  registry stores it in the card's ``integrity`` field when it writes a card
  (:func:`seal`); an import requires it and it must match; a load checks it when present
  (cards written before it existed load with a warning).
* :func:`check_card_fields`: classes exactly ``("benign", "malignant")`` in that order,
  normalisation finite with std > 0 and both in a plausible range, input size 32..1024.
* :func:`check_state_values`: every floating tensor finite, BatchNorm ``running_var`` >= 0;
  run at import and at every load.
* :func:`finite_output`: a prediction whose probabilities are not finite is an error for
  that image (``NonFiniteOutput``), never a stored row.

This is protection against corruption and careless edits, not a signature: someone who
edits a card can recompute the hash too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from busviewer.ai.modelcard import ModelCard

if TYPE_CHECKING:
    import torch

__all__ = [
    "INPUT_SIZE_RANGE",
    "KNOWN_CLASSES",
    "NonFiniteOutput",
    "card_integrity",
    "check_card",
    "check_card_fields",
    "check_model_file_values",
    "check_state_values",
    "finite_output",
    "seal",
    "weight_lines",
]

log = logging.getLogger(__name__)

KNOWN_CLASSES: tuple[str, ...] = ("benign", "malignant")
INPUT_SIZE_RANGE: tuple[int, int] = (32, 1024)
_MEAN_RANGE = (-1.0, 2.0)  # of pixel values scaled to 0..1
_STD_RANGE = (1e-3, 10.0)


class NonFiniteOutput(ValueError):
    """A model gave a non-finite output (NaN/inf) for an image; nothing was stored for it."""


def _error(where: str | Path, problem: str) -> Exception:
    from busviewer.ai.registry import ModelFileError

    return ModelFileError(f"{where}: {problem}")


# ------------------------------------------------------------------ the integrity hash
def weight_lines(card: ModelCard) -> list[str]:
    """``<sha256>  <file>`` per weight file: the shards of a shipped model, else the one file."""
    shipping = card.shipping if isinstance(card.shipping, dict) else None
    rows = shipping.get("shards") if shipping else None
    if isinstance(rows, list) and rows:
        return [f"{r.get('sha256')}  {r.get('file')}" if isinstance(r, dict) else repr(r) for r in rows]
    return [f"{card.sha256}  {card.stem}.safetensors"]


def card_integrity(card: ModelCard) -> str:
    """sha256 over the canonical card (without ``integrity``) and its weight-file lines."""
    data = card.to_dict()
    data.pop("integrity", None)
    try:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except ValueError as exc:  # NaN/inf somewhere in the card
        raise _error(card.ref, f"model card holds a value JSON cannot represent ({exc})") from None
    h = hashlib.sha256(text.encode("utf-8"))
    h.update(b"\n")
    h.update("".join(line + "\n" for line in weight_lines(card)).encode("utf-8"))
    return h.hexdigest()


def seal(card: ModelCard) -> ModelCard:
    """``card`` with its ``integrity`` computed (call after every change, before writing)."""
    return card.with_updates(integrity=card_integrity(card.with_updates(integrity=None)))


# ------------------------------------------------------------------ card fields
def _numbers(values: Any) -> list[float] | None:
    if not isinstance(values, list):
        return None
    out: list[float] = []
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return None
        out.append(float(v))
    return out


def check_card_fields(card: ModelCard, where: str | Path) -> None:
    """Raise ``ModelFileError`` unless classes, normalisation and input size are sane."""
    if tuple(card.classes) != KNOWN_CLASSES:
        raise _error(
            where,
            f"model card {card.ref}: classes must be exactly {list(KNOWN_CLASSES)} in that "
            f"order (got {card.classes!r}); a model with other or reordered classes would "
            "report wrong labels",
        )
    lo, hi = INPUT_SIZE_RANGE
    if not isinstance(card.input_size, int) or not lo <= card.input_size <= hi:
        raise _error(where, f"model card {card.ref}: input_size {card.input_size!r} is outside {lo}..{hi}")
    norm = card.normalisation if isinstance(card.normalisation, dict) else {}
    mean, std = _numbers(norm.get("mean")), _numbers(norm.get("std"))
    if mean is None or std is None or len(mean) != len(std) or not mean:
        raise _error(
            where,
            f"model card {card.ref}: normalisation needs equal-length 'mean' and 'std' "
            f"number lists (got {card.normalisation!r})",
        )
    if not all(math.isfinite(m) and _MEAN_RANGE[0] <= m <= _MEAN_RANGE[1] for m in mean):
        raise _error(
            where,
            f"model card {card.ref}: normalisation mean {mean} must be finite and within "
            f"{_MEAN_RANGE[0]:g}..{_MEAN_RANGE[1]:g}",
        )
    if not all(math.isfinite(s) and _STD_RANGE[0] <= s <= _STD_RANGE[1] for s in std):
        raise _error(
            where,
            f"model card {card.ref}: normalisation std {std} must be finite, positive and "
            f"within {_STD_RANGE[0]:g}..{_STD_RANGE[1]:g}",
        )


def check_card(card: ModelCard, where: str | Path, require_integrity: bool) -> None:
    """Fields (:func:`check_card_fields`) and the integrity hash (required, or when present)."""
    check_card_fields(card, where)
    if card.integrity is None:
        if require_integrity:
            raise _error(
                where,
                f"model card {card.ref} has no integrity hash, so the card itself cannot be "
                "verified (written by an older busviewer, or the field was removed); export "
                "it again from a current busviewer",
            )
        log.warning("%s: model card %s has no integrity hash (older card); its fields were checked", where, card.ref)
        return
    expected = card_integrity(card)
    if card.integrity != expected:
        raise _error(
            where,
            f"model card {card.ref}: integrity hash mismatch (the card or its weight hashes "
            "were changed after it was written: classes, normalisation, sha256, ...); "
            "not accepted",
        )


# ------------------------------------------------------------------ weight values
def _bad_values(name: str, t: torch.Tensor) -> str | None:
    import torch

    if not t.is_floating_point() or t.numel() == 0:
        return None
    if not bool(torch.isfinite(t).all()):
        n = int((~torch.isfinite(t)).sum())
        return f"{name} has {n} non-finite value(s) (NaN/inf)"
    if name.endswith("running_var") and bool((t < 0).any()):
        return f"{name} (BatchNorm variance) has {int((t < 0).sum())} negative value(s)"
    return None


def check_state_values(
    state: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]], where: str | Path
) -> None:
    """Raise ``ModelFileError`` for non-finite weights or a negative BatchNorm variance."""
    items = state.items() if isinstance(state, Mapping) else state
    problems = [p for p in (_bad_values(k, v.detach()) for k, v in items) if p]
    if problems:
        more = f"; ... ({len(problems) - 3} more)" if len(problems) > 3 else ""
        raise _error(where, "invalid weights: " + "; ".join(problems[:3]) + more)


def check_model_file_values(weights_path: Path, card: ModelCard) -> None:
    """Read a model's tensors (one safetensors file or a shipped model's shards) and check them."""
    if weights_path.is_dir():
        from busviewer.ai.shards import read_sharded_state

        check_state_values(read_sharded_state(weights_path, card), weights_path)  # decoded float32
        return
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights_path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own types
        raise _error(weights_path, f"cannot read safetensors weights: {exc}") from exc
    check_state_values(state, weights_path)


# ------------------------------------------------------------------ outputs
def finite_output(probabilities: Mapping[str, float] | Iterable[float], malignant: float | None = None) -> bool:
    """True when every probability (and the malignant probability, if given) is finite."""
    values = list(probabilities.values()) if isinstance(probabilities, Mapping) else list(probabilities)
    if malignant is not None:
        values.append(malignant)
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
