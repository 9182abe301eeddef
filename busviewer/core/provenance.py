"""Version and provenance: what ``busviewer --version`` and Help > About show.

The app version, the git commit, the torch/torchvision versions and the sha256 of every
shipped model. A PyInstaller bundle records the commit and the library versions at build
time in ``build_info.json`` next to the shipped ``models/`` (``packaging/busviewer.spec``
writes it); a source checkout asks git and reads ``torch/version.py`` as text. Nothing
here imports torch or Qt, so ``--version`` answers in well under a second.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from busviewer import __version__
from busviewer.core import paths

#: Written by packaging/busviewer.spec into the bundle (next to ``models/``).
BUILD_INFO_FILE = "build_info.json"
#: The registry's override of the shipped models folder (busviewer.ai.registry.SHIPPED_ENV).
SHIPPED_ENV = "BUSVIEWER_SHIPPED_MODELS"


@dataclass(frozen=True)
class ShippedModel:
    """One shipped model card: its reference and the sha256 it pins the weights to."""

    ref: str
    architecture: str
    sha256: str


@dataclass(frozen=True)
class Provenance:
    """Everything that identifies this installation."""

    version: str
    commit: str
    torch: str
    torchvision: str
    torch_cuda: str | None
    variant: str  # "source", "cpu" bundle or "cuda" bundle
    built: str | None = None
    models: tuple[ShippedModel, ...] = field(default_factory=tuple)

    def lines(self) -> list[str]:
        """Plain text, one fact a line (``--version``)."""
        cuda = f"CUDA {self.torch_cuda}" if self.torch_cuda else "CPU only"
        out = [
            f"busviewer {self.version}",
            f"commit: {self.commit}",
            f"build: {self.variant}" + (f", built {self.built}" if self.built else ""),
            f"torch: {self.torch} ({cuda})",
            f"torchvision: {self.torchvision}",
        ]
        if not self.models:
            out.append("shipped models: none")
        for m in self.models:
            out.append(f"shipped model {m.ref} ({m.architecture}): sha256 {m.sha256}")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


def frozen() -> bool:
    """True inside a PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


def build_info(root: Path | None = None) -> dict[str, Any] | None:
    """The bundle's ``build_info.json``, or None in a source checkout."""
    path = (root or paths.REPO_ROOT) / BUILD_INFO_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def git_commit(root: Path | None = None) -> str:
    """``HEAD``'s hash (``+dirty`` when tracked files changed), or ``unknown`` without git."""
    where = str(root or paths.REPO_ROOT)
    try:
        head = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _version_file(package: str) -> str:
    """The text of ``<package>/version.py`` without importing the package ('' if absent)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return ""
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            return (Path(folder) / "version.py").read_text(encoding="utf-8")
        except OSError:
            continue
    return ""


def _field(text: str, name: str) -> str | None:
    m = re.search(rf"^{name}\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return m.group(1) if m else None


def library_versions() -> dict[str, str | None]:
    """torch, torchvision and torch's CUDA version, read from their version.py files."""
    torch_text = _version_file("torch")
    return {
        "torch": _field(torch_text, "__version__") or "not installed",
        "torchvision": _field(_version_file("torchvision"), "__version__") or "not installed",
        "torch_cuda": _field(torch_text, "cuda"),
    }


def shipped_models_dir() -> Path:
    return Path(os.environ.get(SHIPPED_ENV) or paths.SHIPPED_MODELS_DIR)


def shipped_models(folder: Path | None = None) -> tuple[ShippedModel, ...]:
    """The shipped model cards (``models/*.json`` and sharded ``models/<name>/*.json``)."""
    folder = folder or shipped_models_dir()
    if not folder.is_dir():
        return ()
    found = []
    for card in sorted([*folder.glob("*.json"), *folder.glob("*/*.json")]):
        if card.name.startswith(".") or card.name == "active.json":
            continue
        try:
            data = json.loads(card.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not {"name", "version", "sha256"} <= data.keys():
            continue
        found.append(
            ShippedModel(f"{data['name']}:{data['version']}", str(data.get("architecture", "?")), str(data["sha256"]))
        )
    return tuple(found)


def provenance() -> Provenance:
    """This installation's provenance (bundle: as recorded at build time)."""
    info = build_info()
    if info is not None:
        return Provenance(
            version=str(info.get("version", __version__)),
            commit=str(info.get("commit", "unknown")),
            torch=str(info.get("torch", "?")),
            torchvision=str(info.get("torchvision", "?")),
            torch_cuda=info.get("torch_cuda"),
            variant=f"{info.get('variant', '?')} bundle",
            built=info.get("built"),
            models=shipped_models(),
        )
    libs = library_versions()
    return Provenance(
        version=__version__,
        commit=git_commit(),
        torch=str(libs["torch"]),
        torchvision=str(libs["torchvision"]),
        torch_cuda=libs["torch_cuda"],
        variant="source",
        models=shipped_models(),
    )
