"""Shared fixtures: every test gets its own data directory and store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

#: ``pg_server`` / ``pg_url``: a throwaway PostgreSQL server for the department-store tests.
pytest_plugins = ("pgserver",)

REPO = Path(__file__).resolve().parents[1]
BUSI_DIR = Path(os.environ.get("BUSVIEWER_BUSI", REPO.parent / "shared" / "data" / "busi"))


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember whether a test failed, so its data directory is kept for a post-mortem."""
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(autouse=True)
def _isolated_home(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Never touch the real per-user data directory from a test, and see no shipped model
    unless the test asks for ``models/`` (``monkeypatch.delenv("BUSVIEWER_SHIPPED_MODELS")``):
    tests register their own small models, and "no active model" must stay testable.

    A passed test's home is deleted at once: registered models are hundreds of MB each,
    and a whole run's homes would fill a CI machine's disk (they did: ENOSPC)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("BUSVIEWER_HOME", str(home))
    monkeypatch.setenv("BUSVIEWER_SHIPPED_MODELS", str(home / "no-shipped-models"))
    monkeypatch.delenv("BUSVIEWER_STORE", raising=False)
    monkeypatch.delenv("BUSVIEWER_DEVICE", raising=False)
    yield home
    if not request.node.stash.get(_FAILED, False):
        shutil.rmtree(home, ignore_errors=True)


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
