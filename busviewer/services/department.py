"""Sharing between the workstations of a department store (``busviewer share ...``).

- The **shared folder** is a directory every workstation can reach (a network share).
  ``init`` records its path in the store; a workstation that mounts it elsewhere sets
  ``BUSVIEWER_SHARED_DIR``. Model weights are copied there (``models/``). Image files are
  *not* copied: they stay where they were imported from, so a department imports from a
  shared path that every workstation reaches under the same name (``busviewer store
  check`` reports the images a workstation cannot reach).
- **Models**: ``publish_model`` copies a verified local model into the shared folder and
  registers it in the store, visible to every workstation; ``activate_model`` on another
  workstation pulls it into the local registry through the same checks as any import
  (safetensors structure, sha256 against the card *and* against the store's record,
  tensor shapes), activates it with the registry's own verification and audits it.
- **Locked test set**: one per department, kept in the store. ``publish_locked_test``
  puts this workstation's set there, ``pull_locked_test`` writes the department's set to
  this workstation's file (a different local set is only replaced on request, archived,
  never deleted), ``sync_locked_test`` does whichever applies.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from busviewer.ai.integrity import seal
from busviewer.ai.modelcard import ModelCard, ModelCardError
from busviewer.ai.registry import ModelEntry, ModelRegistry
from busviewer.core import paths
from busviewer.core.fileio import atomic_write_text
from busviewer.core.store import AuditAction, Store
from busviewer.core.store import shared as sh
from busviewer.core.store.errors import StoreError
from busviewer.services import models as model_service
from busviewer.training.locked_test import (
    LockedTestError,
    LockedTestSet,
    load_locked_test,
    locked_test_path,
    reset_locked_test,
    save_locked_test,
)

SHARED_DIR_KEY = "shared_dir"
MODELS = "models"


class DepartmentError(StoreError):
    """A sharing step is not possible; the message says why and what to do."""


def shared_folder(store: Store) -> Path:
    """This workstation's path of the shared folder (``BUSVIEWER_SHARED_DIR``, else the store's)."""
    folder = paths.shared_dir_override()
    if folder is None:
        value = sh.get_setting(store, SHARED_DIR_KEY)
        if not value:
            raise DepartmentError(
                f"{store.url} has no shared folder: run `busviewer share init DIR` once, "
                "or set BUSVIEWER_SHARED_DIR on this workstation"
            )
        folder = Path(value)
    if not folder.is_dir():
        raise DepartmentError(
            f"the shared folder {folder} is not reachable from this workstation (not mounted?); "
            "set BUSVIEWER_SHARED_DIR to where it is mounted here"
        )
    return folder


def init(store: Store, folder: Path) -> Path:
    """Record ``folder`` as the department's shared folder (created, checked writable)."""
    folder = Path(folder).expanduser().absolute()
    (folder / MODELS).mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.NamedTemporaryFile(dir=folder / MODELS, prefix=".probe-"):
            pass
    except OSError as exc:
        raise DepartmentError(f"{folder}: cannot write there ({exc.strerror or exc})") from exc
    sh.set_setting(store, SHARED_DIR_KEY, str(folder))
    return folder


def _split(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.partition(":")
    if version and not version.isdigit():
        raise DepartmentError(f"invalid model reference {ref!r}; use NAME or NAME:VERSION")
    return name, int(version) if version else None


def publish_model(store: Store, registry: ModelRegistry, ref: str) -> tuple[sh.SharedModelRecord, bool]:
    """Publish a local model (verified first); returns (record, newly published?)."""
    entry = registry.verify(registry.get(ref))
    folder = shared_folder(store) / MODELS
    folder.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".publish-"))
    try:
        weights, _card = registry.export(entry.name, entry.version, staging)  # sha256 checked while copying

        def place(version: int) -> str:
            card = seal(entry.card.with_updates(version=version))  # the card's integrity hash, as written
            os.replace(weights, folder / f"{card.stem}.safetensors")
            atomic_write_text(folder / f"{card.stem}.json", card.to_json())
            return f"{MODELS}/{card.stem}.safetensors"

        return sh.add_shared_model(store, entry.card.to_dict(), place)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pull_model(store: Store, registry: ModelRegistry, ref: str) -> ModelEntry:
    """Copy a published model into this workstation's registry (every import check applies)."""
    record = sh.shared_model(store, *_split(ref))
    weights = shared_folder(store) / record.weights_file
    card_path = weights.with_suffix(".json")
    if not weights.is_file() or not card_path.is_file():
        raise DepartmentError(f"{weights}: the files of {record.ref} are missing from the shared folder")
    try:
        card = ModelCard.read(card_path)
    except ModelCardError as exc:
        raise DepartmentError(str(exc)) from exc
    if card.sha256 != record.sha256:
        raise DepartmentError(
            f"{card_path}: its sha256 differs from what was published as {record.ref} "
            f"({record.sha256}); the shared files were changed, not imported"
        )
    entry = registry.import_model(weights)
    if entry.card.sha256 != record.sha256:
        raise DepartmentError(f"{record.ref}: the imported weights are not the published ones")
    return entry


def activate_model(store: Store, registry: ModelRegistry, ref: str) -> ModelEntry:
    """Pull a published model if needed, activate it (verified again) and audit it."""
    entry = pull_model(store, registry, ref)
    return model_service.activate(registry, store, entry.name, entry.version).entry


# ------------------------------------------------------------------ locked test set
def department_locked_test(store: Store) -> LockedTestSet | None:
    record = sh.active_locked_test(store)
    return None if record is None else LockedTestSet.from_dict(record.payload, f"{store.url} locked test set")


def publish_locked_test(store: Store, path: Path | None = None) -> LockedTestSet:
    """Make this workstation's locked test set the department's (refused if it has another)."""
    local = load_locked_test(path)
    if local is None:
        where = locked_test_path() if path is None else path
        raise DepartmentError(f"no locked test set on this workstation ({where})")
    sh.publish_locked_test(store, local.to_dict())
    return local


def pull_locked_test(store: Store, path: Path | None = None, replace: bool = False) -> LockedTestSet:
    """Write the department's locked test set to this workstation's file. A different local
    set is replaced only with ``replace`` (it is archived, and the replacement audited)."""
    dept = department_locked_test(store)
    if dept is None:
        raise DepartmentError(
            f"{store.url} has no locked test set yet: publish one (`busviewer share locked-test publish`)"
        )
    try:
        local = load_locked_test(path)
    except LockedTestError:
        local = None
        if not replace:
            raise
    if local is not None and local.to_dict() == dept.to_dict():
        return dept
    if local is not None and not replace:
        raise DepartmentError(
            f"this workstation has another locked test set (created {local.created}); "
            "pull with replace to archive it and use the department's"
        )
    archive = reset_locked_test(path) if replace else None
    save_locked_test(dept, path)
    if archive is not None:
        store.log(AuditAction.REPLACE_LOCKED_TEST, "locked_test", None, "file", str(archive), dept.created)
    return dept


def sync_locked_test(store: Store, path: Path | None = None) -> LockedTestSet | None:
    """The department's set on this workstation: pulled when the store has one, else this
    workstation's set is published (if any). A conflicting local set raises."""
    if sh.active_locked_test(store) is not None:
        return pull_locked_test(store, path)
    if load_locked_test(path) is not None:
        return publish_locked_test(store, path)
    return None


def retire_locked_test(store: Store) -> LockedTestSet | None:
    """Retire the department's set (kept in the store, marked retired, audited)."""
    record = sh.retire_locked_test(store)
    return None if record is None else LockedTestSet.from_dict(record.payload)
