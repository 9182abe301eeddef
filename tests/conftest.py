"""Shared fixtures: every test gets its own data directory and store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: ``pg_server`` / ``pg_url``: a throwaway PostgreSQL server for the department-store tests.
pytest_plugins = ("pgserver",)

REPO = Path(__file__).resolve().parents[1]
BUSI_DIR = Path(os.environ.get("BUSVIEWER_BUSI", REPO.parent / "shared" / "data" / "busi"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the real per-user data directory from a test, and see no shipped model
    unless the test asks for ``models/`` (``monkeypatch.delenv("BUSVIEWER_SHIPPED_MODELS")``):
    tests register their own small models, and "no active model" must stay testable."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("BUSVIEWER_HOME", str(home))
    monkeypatch.setenv("BUSVIEWER_SHIPPED_MODELS", str(home / "no-shipped-models"))
    monkeypatch.delenv("BUSVIEWER_STORE", raising=False)
    monkeypatch.delenv("BUSVIEWER_DEVICE", raising=False)
    return home


@pytest.fixture
def store(tmp_path: Path):
    from busviewer.core.store import Store

    s = Store(tmp_path / "store.sqlite")
    yield s
    s.close()


@pytest.fixture(scope="session")
def busi_dir() -> Path:
    if not (BUSI_DIR / "manifest.csv").is_file():
        pytest.skip(f"BUSI data not found at {BUSI_DIR}")
    return BUSI_DIR


@pytest.fixture(scope="session")
def us_dicom_dir() -> Path:
    data_store = pytest.importorskip("data_store")
    return Path(data_store.__file__).parent / "data"
