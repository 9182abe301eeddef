"""Model registry: versioned weights (``.safetensors``) + JSON model cards.

A model version is two files with the stem ``<name>-v<version>``:
``<stem>.safetensors`` (weights) and ``<stem>.json`` (its :class:`ModelCard`, whose
``sha256`` is the hash of the weights file). Shipped models live in the read-only
``SHIPPED_MODELS_DIR``; trained and imported ones in ``user_models_dir()``.

Safety: weights are only ever read as safetensors. Every file is first checked by
parsing the safetensors header ourselves (8-byte little-endian length + JSON), so a
pickle / ``torch.save`` file is rejected before any library touches it; nothing is ever
unpickled. The sha256 and the tensor names/shapes are checked against the card and the
architecture before the weights are loaded. The card itself is covered by an integrity
hash written with it, its fields and the weights' values (NaN/inf, BatchNorm variance < 0)
are checked at import and load (:mod:`busviewer.ai.integrity`).

Shipped models may also be sharded and compressed (``<shipped>/<name>/``: the card plus
safetensors shards listed in its ``shipping`` index, see :mod:`busviewer.ai.shards`);
every shard's sha256 is checked on load.

One model per architecture is *active* (used by default for prediction); the choice is
stored in ``<user_dir>/active.json``. Without a choice, the newest shipped model of that
architecture is active (:meth:`ModelRegistry.use_default` returns to it).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import struct
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from busviewer.ai import integrity
from busviewer.ai.architectures import ARCHITECTURES
from busviewer.ai.modelcard import ModelCard, ModelCardError
from busviewer.core.fileio import atomic_write_text

if TYPE_CHECKING:  # torch loads only when weights are read or written (seconds of import)
    import torch
    from torch import nn

log = logging.getLogger(__name__)

WEIGHTS_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
ACTIVE_FILE = "active.json"
SHIPPED_ENV = "BUSVIEWER_SHIPPED_MODELS"
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

Location = Literal["shipped", "user"]
_Rows = list[tuple[ModelCard, Path, Path, Location]]  # (card, weights, card file, where); `list` is a method below


class RegistryError(Exception):
    """Base class of registry errors."""


class ModelFileError(RegistryError):
    """A weights or card file is unusable; the message names the file and the problem."""


class ModelNotFoundError(RegistryError, LookupError):
    """No model with that name (and version)."""


class ModelProtectedError(RegistryError):
    """The operation is not allowed on this model (shipped or active)."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as declared in a safetensors header."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model version."""

    card: ModelCard
    weights_path: Path
    card_path: Path
    location: Location
    active: bool = False

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def version(self) -> int:
        return self.card.version

    @property
    def architecture(self) -> str:
        return self.card.architecture

    @property
    def ref(self) -> str:
        """``"name:version"``."""
        return self.card.ref


# ----------------------------------------------------------------------------------------
# file checks (module level so the CLI and training code can use them directly)


def _sniff_foreign_format(head: bytes) -> str | None:
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
        foreign = _sniff_foreign_format(head)
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


def _fmt_names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def check_tensors(path: str | Path, tensors: dict[str, TensorInfo], card: ModelCard) -> None:
    """Raise :class:`ModelFileError` unless ``tensors`` match ``card``'s architecture exactly."""
    expected = expected_tensors(card)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    problems: list[str] = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {_fmt_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): {_fmt_names(unexpected)}")
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


def _is_sharded_card(card_path: Path) -> bool:
    try:
        return isinstance(ModelCard.read(card_path).shipping, dict)
    except ModelCardError:
        return False


def _state_dict_for_file(model: nn.Module) -> dict[str, torch.Tensor]:
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
        raise ModelFileError(f"{path}: weights leave tensors uninitialised: {_fmt_names(leftovers)}")
    model = model.to(device=torch.device(device), dtype=torch.float32)
    model.eval()
    return model


# ----------------------------------------------------------------------------------------
# atomic file helpers


@contextmanager
def _temp_in(directory: Path, suffix: str) -> Iterator[tuple[IO[bytes], Path]]:
    """A temporary file in ``directory`` (removed unless it has been renamed away)."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
    finally:
        if tmp.exists():
            tmp.unlink()


def _fsync_path(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _copy_hashing(src: Path, dst: IO[bytes]) -> str:
    h = hashlib.sha256()
    with src.open("rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            h.update(chunk)
            dst.write(chunk)
    dst.flush()
    os.fsync(dst.fileno())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------


class ModelRegistry:
    """Shipped (read-only) and user (writable) model versions. Thread-safe."""

    def __init__(self, user_dir: Path | None = None, shipped_dir: Path | None = None):
        from busviewer.core import paths

        self.user_dir = Path(user_dir) if user_dir is not None else paths.user_models_dir()
        if shipped_dir is None:  # BUSVIEWER_SHIPPED_MODELS: another installation's shipped folder
            shipped_dir = Path(os.environ.get(SHIPPED_ENV) or paths.SHIPPED_MODELS_DIR)
        self.shipped_dir = Path(shipped_dir)
        self.user_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()

    # -- listing -------------------------------------------------------------------------
    def _scan(self, directory: Path, location: Location) -> list[tuple[ModelCard, Path, Path]]:
        """Cards with their weights; shipped models may sit in ``<name>/`` folders, sharded
        (their "weights path" is then that folder)."""
        found: list[tuple[ModelCard, Path, Path]] = []
        if not directory.is_dir():
            return found
        cards = sorted(directory.glob(f"*{CARD_SUFFIX}"))
        if location == "shipped":
            cards += sorted(p for p in directory.glob(f"*/*{CARD_SUFFIX}") if not p.parent.name.startswith("."))
        for card_path in cards:
            if card_path.name == ACTIVE_FILE or card_path.name.startswith("."):
                continue
            try:
                card = ModelCard.read(card_path)
            except ModelCardError as exc:
                log.warning("skipping %s model card: %s", location, exc)
                continue
            if card_path.stem != card.stem:
                log.warning(
                    "skipping %s: its card describes %s (expected file name %s%s)",
                    card_path,
                    card.ref,
                    card.stem,
                    CARD_SUFFIX,
                )
                continue
            if isinstance(card.shipping, dict) and "shards" in card.shipping:
                if location == "shipped":  # shards are checked on load
                    found.append((card, card_path.parent, card_path))
                else:
                    log.warning("skipping %s: sharded models are only read from %s", card_path, self.shipped_dir)
                continue
            weights = card_path.with_suffix(WEIGHTS_SUFFIX)
            if not weights.is_file():
                log.info("%s model card %s has no weights file (%s); not listed", location, card.ref, weights)
                continue
            found.append((card, weights, card_path))
        return found

    def _active_refs(self) -> dict[str, str]:
        path = self.user_dir / ACTIVE_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s); no model choice in effect", path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if k in ARCHITECTURES and isinstance(v, str)}

    def list(self) -> list[ModelEntry]:
        """All complete model versions, sorted by architecture, name, version."""
        with self._lock:
            rows: _Rows = []
            seen: set[str] = set()
            places: tuple[tuple[Location, Path], ...] = (("shipped", self.shipped_dir), ("user", self.user_dir))
            for location, directory in places:
                for card, weights, card_path in self._scan(directory, location):
                    if card.ref in seen:
                        log.warning("ignoring %s: %s is also a shipped model", card_path, card.ref)
                        continue
                    seen.add(card.ref)
                    rows.append((card, weights, card_path, location))
            active = self._resolve_active(rows)
            entries = [
                ModelEntry(card, w, c, loc, active.get(card.architecture) == card.ref) for card, w, c, loc in rows
            ]
            entries.sort(key=lambda e: (e.architecture, e.name, e.version))
            return entries

    @staticmethod
    def _newest_shipped(rows: _Rows, architecture: str) -> str | None:
        shipped = [r[0] for r in rows if r[3] == "shipped" and r[0].architecture == architecture]
        if not shipped:
            return None
        best = max(shipped, key=lambda c: (c.created, c.version, c.name))
        return best.ref

    def _resolve_active(self, rows: _Rows) -> dict[str, str]:
        chosen = self._active_refs()
        by_ref = {r[0].ref: r[0] for r in rows}
        out: dict[str, str] = {}
        for arch in ARCHITECTURES:
            ref = chosen.get(arch)
            if ref is not None and ref in by_ref and by_ref[ref].architecture == arch:
                out[arch] = ref
                continue
            if ref is not None:
                log.warning("active %s model %s is not available; falling back to the shipped default", arch, ref)
            fallback = self._newest_shipped(rows, arch)
            if fallback is not None:
                out[arch] = fallback
        return out

    def get(self, name: str, version: int | None = None) -> ModelEntry:
        """The entry for ``name`` (``"name:version"`` also accepted); newest version if None."""
        if version is None and ":" in name:
            name, _, v = name.partition(":")
            try:
                version = int(v)
            except ValueError:
                raise ModelNotFoundError(f"invalid model reference {name}:{v!r}; use name:version") from None
        candidates = [e for e in self.list() if e.name == name]
        if not candidates:
            raise ModelNotFoundError(f"no model named {name!r} in {self.shipped_dir} or {self.user_dir}")
        if version is None:
            return max(candidates, key=lambda e: e.version)
        for e in candidates:
            if e.version == version:
                return e
        raise ModelNotFoundError(
            f"model {name!r} has no version {version} (versions: {sorted(e.version for e in candidates)})"
        )

    def _entry(self, entry_or_name: ModelEntry | str, version: int | None = None) -> ModelEntry:
        if isinstance(entry_or_name, ModelEntry):
            return entry_or_name
        return self.get(entry_or_name, version)

    # -- loading -------------------------------------------------------------------------
    def verify(self, entry_or_name: ModelEntry | str, version: int | None = None) -> ModelEntry:
        """Check an entry's weights (structure, sha256, shapes) without loading; returns it."""
        entry = self._entry(entry_or_name, version)
        if entry.weights_path.is_dir():
            from busviewer.ai.shards import verify_sharded

            verify_sharded(entry.weights_path, entry.card)
        else:
            check_weights_file(entry.weights_path, entry.card)
        integrity.check_card(entry.card, entry.card_path, require_integrity=False)
        return entry

    def load(
        self, entry_or_name: ModelEntry | str, device: str | torch.device = "cpu", version: int | None = None
    ) -> tuple[nn.Module, ModelCard]:
        """Verify and load a model: ``(eval-mode float32 module on device, card)``.

        Raises :class:`ModelFileError` if the file is not safetensors, its sha256 differs
        from the card, or its tensors do not match the architecture exactly.
        """
        entry = self._entry(entry_or_name, version)
        if entry.weights_path.is_dir():  # a sharded shipped model
            from busviewer.ai.shards import load_sharded

            model = load_sharded(entry.weights_path, entry.card, device)
        else:
            model = load_weights(entry.weights_path, entry.card, device)
        integrity.check_card(entry.card, entry.card_path, require_integrity=False)
        integrity.check_state_values(model.state_dict(), entry.weights_path)  # NaN/inf, BatchNorm var < 0
        return model, entry.card

    # -- writing -------------------------------------------------------------------------
    def _taken_versions(self, name: str) -> set[int]:
        taken: set[int] = set()
        for directory in (self.shipped_dir, self.shipped_dir / name, self.user_dir):
            if not directory.is_dir():
                continue
            prefix = f"{name}-v"
            for p in directory.iterdir():
                if p.name.startswith(prefix) and p.suffix in (WEIGHTS_SUFFIX, CARD_SUFFIX):
                    tail = p.stem[len(prefix) :]
                    if tail.isdigit():
                        taken.add(int(tail))
        return taken

    def _assign_version(self, name: str, wanted: int) -> int:
        taken = self._taken_versions(name)
        if wanted >= 1 and wanted not in taken:
            return wanted
        return max(taken, default=0) + 1

    def set_feature_guard(
        self, entry_or_name: ModelEntry | str, guard: dict[str, Any], version: int | None = None
    ) -> ModelEntry:
        """Write the feature-distance input guard ``guard`` into a model's card, sealed again
        (the weights are untouched; a shipped card is rewritten in place)."""
        from busviewer.ai.feature_guard import FeatureGuard

        FeatureGuard.from_card(guard)  # malformed: FeatureGuardError
        with self._lock:
            entry = self.verify(entry_or_name, version)
            card = integrity.seal(entry.card.with_updates(feature_guard=dict(guard)))
            atomic_write_text(entry.card_path, card.to_json())
            log.info("feature guard of %s written to %s", card.ref, entry.card_path)
            return self.get(card.name, card.version)

    def save(self, model: nn.Module, card: ModelCard) -> ModelEntry:
        """Register ``model`` under ``card`` in the user folder and return its entry.

        The card's version is kept if it is free, else the next free number is used (an
        existing version is never overwritten). ``sha256`` is computed here. Files are
        written to temporary names and moved into place with ``os.replace``.
        """
        from safetensors.torch import save_file

        state = _state_dict_for_file(model)
        tensors = {k: TensorInfo("F32" if v.is_floating_point() else "I64", tuple(v.shape)) for k, v in state.items()}
        check_tensors(f"model for {card.name}", tensors, card)
        with self._lock:
            version = self._assign_version(card.name, card.version)
            final = card.with_updates(version=version, sha256="")
            meta = {
                "format": "pt",
                "name": final.name,
                "version": str(version),
                "architecture": final.architecture,
                "input_mode": final.input_mode,
            }
            weights_path = self.user_dir / f"{final.stem}{WEIGHTS_SUFFIX}"
            card_path = self.user_dir / f"{final.stem}{CARD_SUFFIX}"
            with _temp_in(self.user_dir, WEIGHTS_SUFFIX) as (f, tmp):
                f.close()
                save_file(state, str(tmp), metadata=meta)
                _fsync_path(tmp)
                final = integrity.seal(final.with_updates(sha256=file_sha256(tmp)))
                final.validate()
                os.replace(tmp, weights_path)
            atomic_write_text(card_path, final.to_json())
            log.info("saved model %s to %s", final.ref, weights_path)
            return self._entry_for(final)

    def _entry_for(self, card: ModelCard) -> ModelEntry:
        return self.get(card.name, card.version)

    def import_model(self, path: str | Path) -> ModelEntry:
        """Copy a model (``.safetensors`` or its ``.json`` card; the other must sit next to it) in.

        Both files are validated first (card fields, safetensors structure, sha256, tensor
        shapes for the card's architecture). If the same name:version with the same
        sha256 is already registered, that entry is returned; if the version is taken by
        different weights, the next free version number is used.
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
                foreign = _sniff_foreign_format(f.read(8))
            what = f" It is {foreign}; it was not loaded or unpickled." if foreign else ""
            raise ModelFileError(
                f"{path}: not a model file: expected a {WEIGHTS_SUFFIX} weights file "
                f"or its {CARD_SUFFIX} model card.{what}"
            )
        if card_path.is_file() and _is_sharded_card(card_path):
            raise ModelFileError(
                f"{card_path}: a shipped (sharded) model, not imported: copy its folder into "
                f"the shipped models folder ({self.shipped_dir}) to install it"
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
        with self._lock:
            try:
                existing = self.get(card.name, card.version)
            except ModelNotFoundError:
                existing = None
            if existing is not None and existing.card.sha256 == card.sha256:
                log.info("model %s is already registered", card.ref)
                return existing
            version = self._assign_version(card.name, card.version)
            final = integrity.seal(card.with_updates(version=version))
            dst_weights = self.user_dir / f"{final.stem}{WEIGHTS_SUFFIX}"
            with _temp_in(self.user_dir, WEIGHTS_SUFFIX) as (f, tmp):
                digest = _copy_hashing(weights_path, f)
                f.close()
                if digest != card.sha256:
                    raise ModelFileError(f"{weights_path}: changed while being imported (sha256 {digest})")
                os.replace(tmp, dst_weights)
            atomic_write_text(self.user_dir / f"{final.stem}{CARD_SUFFIX}", final.to_json())
            if version != card.version:
                log.warning("imported %s as version %d (version %d was taken)", card.name, version, card.version)
            return self._entry_for(final)

    def export(self, name: str, version: int, dest_dir: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
        """Copy a model's weights and card to ``dest_dir``; returns ``(weights, card)`` paths."""
        entry = self.get(name, version)
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        if entry.weights_path.is_dir():  # sharded: the folder (card + shards) as shipped
            from busviewer.ai.shards import export_sharded

            return export_sharded(entry.weights_path, entry.card_path, entry.card, dest, overwrite)
        out_w = dest / entry.weights_path.name
        out_c = dest / entry.card_path.name
        for p in (out_w, out_c):
            if p.exists() and not overwrite:
                raise FileExistsError(f"{p} already exists (pass overwrite=True to replace it)")
        with _temp_in(dest, WEIGHTS_SUFFIX) as (f, tmp):
            digest = _copy_hashing(entry.weights_path, f)
            f.close()
            if digest != entry.card.sha256:
                raise ModelFileError(f"{entry.weights_path}: sha256 mismatch with its card; not exported")
            os.replace(tmp, out_w)
        atomic_write_text(out_c, entry.card.to_json())
        return out_w, out_c

    # -- active models ---------------------------------------------------------------------
    def activate(self, name: str, version: int) -> ModelEntry:
        """Make ``name:version`` the active model of its architecture (after verifying it)."""
        with self._lock:
            entry = self.verify(name, version)
            refs = self._active_refs()
            refs[entry.architecture] = entry.ref
            atomic_write_text(self.user_dir / ACTIVE_FILE, json.dumps(refs, indent=2, sort_keys=True))
            log.info("activated %s model %s", entry.architecture, entry.ref)
            return self.get(entry.name, entry.version)

    def active(self, architecture: str) -> ModelEntry | None:
        """The active model of ``architecture`` ('ensemble' or 'vgg16'), or None if there is none."""
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; expected one of {list(ARCHITECTURES)}")
        for e in self.list():
            if e.active and e.architecture == architecture:
                return e
        return None

    def shipped_default(self, architecture: str) -> ModelEntry | None:
        """The shipped model active when the user has chosen none (newest), or None."""
        shipped = [e for e in self.list() if e.location == "shipped" and e.architecture == architecture]
        return max(shipped, key=lambda e: (e.card.created, e.version, e.name)) if shipped else None

    def use_default(self, architecture: str) -> ModelEntry:
        """Forget the user's choice for ``architecture``: its shipped default becomes active
        (after its weights are verified). Raises :class:`ModelNotFoundError` if none is shipped."""
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; expected one of {list(ARCHITECTURES)}")
        with self._lock:
            default = self.shipped_default(architecture)
            if default is None:
                raise ModelNotFoundError(f"no shipped {architecture} model in {self.shipped_dir}")
            self.verify(default)
            refs = self._active_refs()
            refs.pop(architecture, None)
            atomic_write_text(self.user_dir / ACTIVE_FILE, json.dumps(refs, indent=2, sort_keys=True))
            log.info("%s: back to the shipped default %s", architecture, default.ref)
            return self.get(default.name, default.version)

    def delete(self, name: str, version: int) -> None:
        """Delete a user model version (never a shipped one, never an active one)."""
        with self._lock:
            entry = self.get(name, version)
            if entry.location == "shipped":
                raise ModelProtectedError(f"{entry.ref} is a shipped model and cannot be deleted")
            if entry.active:
                raise ModelProtectedError(
                    f"{entry.ref} is the active {entry.architecture} model; activate another version before deleting it"
                )
            entry.card_path.unlink()  # card first: the model disappears from listings at once
            entry.weights_path.unlink(missing_ok=True)
            log.info("deleted model %s", entry.ref)


__all__ = [
    "ACTIVE_FILE",
    "ModelEntry",
    "ModelFileError",
    "ModelNotFoundError",
    "ModelProtectedError",
    "ModelRegistry",
    "RegistryError",
    "TensorInfo",
    "check_tensors",
    "check_weights_file",
    "expected_tensors",
    "file_sha256",
    "inspect_safetensors",
    "load_weights",
]
