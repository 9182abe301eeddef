"""Where busviewer keeps its data.

The user data directory comes from platformdirs and can be overridden with the
environment variable ``BUSVIEWER_HOME`` (everything) or ``BUSVIEWER_STORE`` (the
database file, or a database URL such as ``postgresql://host/db`` for a department
store); the CLI's ``--store`` sets the latter. ``BUSVIEWER_SHARED_DIR`` is this
workstation's path of the department's shared folder (model weights).
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

APP_NAME = "busviewer"

#: Shipped, read-only model directory inside the repository / installation.
REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MODELS_DIR = REPO_ROOT / "models"


def data_dir() -> Path:
    """The per-user data directory (created on demand)."""
    root = os.environ.get("BUSVIEWER_HOME")
    path = Path(root) if root else Path(user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_location() -> str:
    """The store: a database URL from ``BUSVIEWER_STORE``, else the SQLite file's path."""
    override = os.environ.get("BUSVIEWER_STORE", "")
    return override if "://" in override else str(store_path())


def shared_dir_override() -> Path | None:
    """``BUSVIEWER_SHARED_DIR``: where this workstation mounts the department's shared folder."""
    value = os.environ.get("BUSVIEWER_SHARED_DIR")
    return Path(value).expanduser() if value else None


def store_path() -> Path:
    """The SQLite store file."""
    override = os.environ.get("BUSVIEWER_STORE")
    if override and "://" not in override:
        p = Path(override)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p
    return data_dir() / "store.sqlite"


def user_models_dir() -> Path:
    """Models trained or imported by this user (writable)."""
    p = data_dir() / "models"
    p.mkdir(parents=True, exist_ok=True)
    return p


def runs_dir() -> Path:
    """Training runs (checkpoints, splits, metrics, plots)."""
    p = data_dir() / "runs"
    p.mkdir(parents=True, exist_ok=True)
    return p
