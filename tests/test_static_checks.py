"""Static checks as CI gates them (issue 13): ruff lint, ruff format and mypy, with the
configuration in pyproject.toml, run by this venv's interpreter. A failure prints the
tool's findings; `python -m ruff format <path>` fixes formatting."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUFF_PATHS = ("busviewer", "tests", "benchmarks", "packaging")
TYPED_LAYERS = ("busviewer/core", "busviewer/ai", "busviewer/training", "busviewer/services")


def _run(*args: str, timeout: float) -> None:
    cmd = [sys.executable, "-m", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"`{' '.join(args)}` exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"


def test_ruff_lint() -> None:
    _run("ruff", "check", *RUFF_PATHS, timeout=60)


def test_ruff_format() -> None:
    _run("ruff", "format", "--check", *RUFF_PATHS, timeout=60)


def test_mypy_covers_the_qt_free_layers() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert set(TYPED_LAYERS) <= set(config["tool"]["mypy"]["files"])


def test_mypy() -> None:
    # The files come from [tool.mypy] in pyproject.toml; the cache (.mypy_cache) makes reruns fast.
    _run("mypy", timeout=240)
