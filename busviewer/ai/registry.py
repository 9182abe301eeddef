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

This module holds :class:`ModelRegistry`. :class:`ModelEntry` and the folder scan live in
:mod:`busviewer.ai.model_listing`, the header parsing and file checks in
:mod:`busviewer.ai.safetensors_check`, the weight-file reading and writing in
:mod:`busviewer.ai.weights_io` and the error types in :mod:`busviewer.ai.registry_errors`;
the names other code imports from here are re-exported.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from busviewer.ai import integrity
from busviewer.ai.architectures import ARCHITECTURES
from busviewer.ai.model_listing import (
    ACTIVE_FILE,
    Location,
    ModelEntry,
    Rows,
    newest_shipped,
    read_active_refs,
    scan_folder,
)
from busviewer.ai.modelcard import ModelCard
from busviewer.ai.registry_errors import ModelFileError, ModelNotFoundError, ModelProtectedError, RegistryError
from busviewer.ai.safetensors_check import (
    MAX_HEADER_BYTES,
    TensorInfo,
    check_tensors,
    check_weights_file,
    expected_tensors,
    file_sha256,
    inspect_safetensors,
)
from busviewer.ai.weights_io import (
    CARD_SUFFIX,
    WEIGHTS_SUFFIX,
    check_import_files,
    checked_state,
    copy_verified,
    export_model_files,
    load_weights,
    write_model_files,
)
from busviewer.core.fileio import atomic_write_text

if TYPE_CHECKING:  # torch loads only when weights are read or written (seconds of import)
    import torch
    from torch import nn

log = logging.getLogger(__name__)

SHIPPED_ENV = "BUSVIEWER_SHIPPED_MODELS"


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
    def _active_refs(self) -> dict[str, str]:
        return read_active_refs(self.user_dir / ACTIVE_FILE)

    def list(self) -> list[ModelEntry]:
        """All complete model versions, sorted by architecture, name, version."""
        with self._lock:
            rows: Rows = []
            seen: set[str] = set()
            places: tuple[tuple[Location, Path], ...] = (("shipped", self.shipped_dir), ("user", self.user_dir))
            for location, directory in places:
                for card, weights, card_path in scan_folder(directory, location, self.shipped_dir):
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

    def _resolve_active(self, rows: Rows) -> dict[str, str]:
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
            fallback = newest_shipped(rows, arch)
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
        state = checked_state(model, card)
        with self._lock:
            version = self._assign_version(card.name, card.version)
            final, weights_path = write_model_files(state, card.with_updates(version=version, sha256=""), self.user_dir)
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
        card, weights_path, _ = check_import_files(path, self.shipped_dir)
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
            digest = copy_verified(weights_path, dst_weights, card.sha256)
            if digest != card.sha256:
                raise ModelFileError(f"{weights_path}: changed while being imported (sha256 {digest})")
            atomic_write_text(self.user_dir / f"{final.stem}{CARD_SUFFIX}", final.to_json())
            if version != card.version:
                log.warning("imported %s as version %d (version %d was taken)", card.name, version, card.version)
            return self._entry_for(final)

    def export(self, name: str, version: int, dest_dir: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
        """Copy a model's weights and card to ``dest_dir``; returns ``(weights, card)`` paths."""
        entry = self.get(name, version)
        return export_model_files(entry.weights_path, entry.card_path, entry.card, Path(dest_dir), overwrite)

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
    "CARD_SUFFIX",
    "MAX_HEADER_BYTES",
    "SHIPPED_ENV",
    "WEIGHTS_SUFFIX",
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
