"""Reading and writing model weight files (safetensors + model card).

:func:`load_weights` checks a file against its card and builds the model; the other functions
are the file work behind :class:`~busviewer.ai.registry.ModelRegistry`'s save, import and export:
atomic writes (temporary file, fsync, ``os.replace``) and copies that verify the sha256 on the way.
torch is imported only inside the functions that read or write weights.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from busviewer.ai import integrity
from busviewer.ai.modelcard import ModelCard, ModelCardError
from busviewer.ai.registry_errors import ModelFileError
from busviewer.ai.safetensors_check import (
    TensorInfo,
    check_tensors,
    check_weights_file,
    file_sha256,
    format_names,
    inspect_safetensors,
    sniff_foreign_format,
)
from busviewer.core.fileio import atomic_write_text

if TYPE_CHECKING:  # torch loads only when weights are read or written (seconds of import)
    import torch
    from torch import nn

WEIGHTS_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"


def is_sharded_card(card_path: Path) -> bool:
    """Whether ``card_path`` is the card of a sharded (shipped) model; False if unreadable."""
    try:
        return isinstance(ModelCard.read(card_path).shipping, dict)
    except ModelCardError:
        return False


def state_dict_for_file(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict as detached, contiguous CPU tensors (what a safetensors file holds)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def load_weights(path: str | Path, card: ModelCard, device: str | torch.device = "cpu") -> nn.Module:
    """Check ``path`` against ``card`` (see :func:`check_weights_file`) and build the model.

    The model is float32, in eval mode, on ``device``.
    """
    import torch
    from safetensors.torch import load_file

    from busviewer.ai.networks import build_model

    path = Path(path)
    check_weights_file(path, card)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFileError(f"{path}: cannot read safetensors weights: {exc}") from exc
    with torch.device("meta"):
        model = build_model(
            card.architecture, card.input_mode, num_classes=card.num_classes, pretrained=False, variant=card.variant
        )
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not fit {card.architecture}: {exc}") from exc
    leftovers = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftovers:
        raise ModelFileError(f"{path}: weights leave tensors uninitialised: {format_names(leftovers)}")
    model = model.to(device=torch.device(device), dtype=torch.float32)
    model.eval()
    return model


@contextmanager
def temp_in(directory: Path, suffix: str) -> Iterator[tuple[IO[bytes], Path]]:
    """A temporary file in ``directory`` (removed unless it has been renamed away)."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
    finally:
        if tmp.exists():
            tmp.unlink()


def fsync_path(path: Path) -> None:
    """Flush ``path``'s contents to disk."""
    with path.open("rb") as f:
        os.fsync(f.fileno())


def copy_hashing(src: Path, dst: IO[bytes]) -> str:
    """Copy ``src`` into the open file ``dst`` (flushed and fsynced); returns ``src``'s hex sha256."""
    h = hashlib.sha256()
    with src.open("rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            h.update(chunk)
            dst.write(chunk)
    dst.flush()
    os.fsync(dst.fileno())
    return h.hexdigest()


def copy_verified(src: Path, dst: Path, sha256: str) -> str:
    """Copy ``src`` to ``dst`` through a temporary file next to ``dst``, moved into place only
    if the bytes copied hash to ``sha256``; returns the hex sha256 that was read."""
    with temp_in(dst.parent, WEIGHTS_SUFFIX) as (f, tmp):
        digest = copy_hashing(src, f)
        f.close()
        if digest == sha256:
            os.replace(tmp, dst)
    return digest


def checked_state(model: nn.Module, card: ModelCard) -> dict[str, torch.Tensor]:
    """``model``'s state for the file (:func:`state_dict_for_file`), checked against ``card``'s architecture."""
    state = state_dict_for_file(model)
    tensors = {k: TensorInfo("F32" if v.is_floating_point() else "I64", tuple(v.shape)) for k, v in state.items()}
    check_tensors(f"model for {card.name}", tensors, card)
    return state


def write_model_files(state: dict[str, torch.Tensor], card: ModelCard, directory: Path) -> tuple[ModelCard, Path]:
    """Write ``state`` and ``card`` (its final name and version) into ``directory`` atomically.

    The card is written with the weights' sha256 and sealed; returns ``(that card, weights path)``.
    """
    from safetensors.torch import save_file

    meta = {
        "format": "pt",
        "name": card.name,
        "version": str(card.version),
        "architecture": card.architecture,
        "input_mode": card.input_mode,
    }
    weights_path = directory / f"{card.stem}{WEIGHTS_SUFFIX}"
    card_path = directory / f"{card.stem}{CARD_SUFFIX}"
    with temp_in(directory, WEIGHTS_SUFFIX) as (f, tmp):
        f.close()
        save_file(state, str(tmp), metadata=meta)
        fsync_path(tmp)
        final = integrity.seal(card.with_updates(sha256=file_sha256(tmp)))
        final.validate()
        os.replace(tmp, weights_path)
    atomic_write_text(card_path, final.to_json())
    return final, weights_path


def check_import_files(path: str | Path, shipped_dir: Path) -> tuple[ModelCard, Path, Path]:
    """Find and validate the model to import from ``path`` (its weights or its card).

    Checks the card fields, the safetensors structure, the sha256, the tensor shapes, the card's
    integrity and the weights' values; returns ``(card, weights path, card path)``. Raises
    :class:`ModelFileError` (``shipped_dir`` is named when a sharded model is offered).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: file not found")
    if path.suffix.lower() == CARD_SUFFIX:
        card_path, weights_path = path, path.with_suffix(WEIGHTS_SUFFIX)
    elif path.suffix.lower() == WEIGHTS_SUFFIX:
        weights_path, card_path = path, path.with_suffix(CARD_SUFFIX)
    else:
        with path.open("rb") as f:
            foreign = sniff_foreign_format(f.read(8))
        what = f" It is {foreign}; it was not loaded or unpickled." if foreign else ""
        raise ModelFileError(
            f"{path}: not a model file: expected a {WEIGHTS_SUFFIX} weights file or its {CARD_SUFFIX} model card.{what}"
        )
    if card_path.is_file() and is_sharded_card(card_path):
        raise ModelFileError(
            f"{card_path}: a shipped (sharded) model, not imported: copy its folder into "
            f"the shipped models folder ({shipped_dir}) to install it"
        )
    if not weights_path.is_file():
        raise ModelFileError(f"{card_path}: the weights file {weights_path.name} is missing next to it")
    if not card_path.is_file():
        raise ModelFileError(
            f"{weights_path}: no model card next to it (expected {card_path.name}); "
            "weights without a card cannot be imported"
        )
    # The weights are checked before anything else reads them.
    inspect_safetensors(weights_path)
    try:
        card = ModelCard.read(card_path)
    except ModelCardError as exc:
        raise ModelFileError(str(exc)) from exc
    check_weights_file(weights_path, card)
    integrity.check_card(card, card_path, require_integrity=True)  # the card is verified too
    integrity.check_model_file_values(weights_path, card)
    return card, weights_path, card_path


def export_model_files(
    weights_path: Path, card_path: Path, card: ModelCard, dest: Path, overwrite: bool = False
) -> tuple[Path, Path]:
    """Copy a model's weights (sha256 checked against ``card``) and card into ``dest``.

    A sharded model (``weights_path`` is its folder) is exported as shipped. Returns
    ``(weights, card)`` paths; raises :class:`FileExistsError` unless ``overwrite``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if weights_path.is_dir():  # sharded: the folder (card + shards) as shipped
        from busviewer.ai.shards import export_sharded

        return export_sharded(weights_path, card_path, card, dest, overwrite)
    out_w = dest / weights_path.name
    out_c = dest / card_path.name
    for p in (out_w, out_c):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} already exists (pass overwrite=True to replace it)")
    digest = copy_verified(weights_path, out_w, card.sha256)
    if digest != card.sha256:
        raise ModelFileError(f"{weights_path}: sha256 mismatch with its card; not exported")
    atomic_write_text(out_c, card.to_json())
    return out_w, out_c


__all__ = [
    "CARD_SUFFIX",
    "WEIGHTS_SUFFIX",
    "check_import_files",
    "checked_state",
    "copy_hashing",
    "copy_verified",
    "export_model_files",
    "fsync_path",
    "is_sharded_card",
    "load_weights",
    "state_dict_for_file",
    "temp_in",
    "write_model_files",
]
