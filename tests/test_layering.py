"""The core, AI and training layers never import Qt; the CLI starts without torch."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import busviewer

QT_PREFIXES = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "superqt", "qtpy")


def _headless_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(busviewer.__path__, "busviewer."):
        if info.name.startswith("busviewer.gui") or info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return names


def test_headless_layers_never_import_qt() -> None:
    modules = _headless_modules()
    assert any(m.startswith("busviewer.core") for m in modules)
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {QT_PREFIXES!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"Qt imported by the headless layers: {out.stdout}"


def test_cli_parser_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from busviewer.cli import build_parser\n"
        "build_parser()\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
