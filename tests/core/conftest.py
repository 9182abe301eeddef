"""The store tests run against SQLite and against a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new store's location: a SQLite file, or an empty database on the test server."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_location: str):
    from busviewer.core.store import Store

    s = Store(store_location)
    yield s
    s.close()
