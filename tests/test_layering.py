"""The core, AI and training layers never import Qt; the CLI starts without torch."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

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
    code = "import sys\nfrom busviewer.cli import build_parser\nbuild_parser()\nprint('torch' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


#: Each layer may import only itself and the layers listed (core <- ai <- training <- services <- {cli, gui}).
ALLOWED = {
    "core": {"core"},
    "dicomnet": {"core", "dicomnet"},
    "ai": {"core", "ai"},
    "training": {"core", "ai", "training"},
    "services": {"core", "dicomnet", "ai", "training", "services"},
    "report": {"core", "ai", "report"},
    "cli": {"core", "dicomnet", "ai", "training", "services", "report", "cli"},
    "gui": {"core", "dicomnet", "ai", "training", "services", "report", "gui"},
}


#: The ``busviewer`` command starts the workstation (``busviewer gui``): its one way up.
ENTRY_POINTS = {("cli", "busviewer.gui.app")}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ``busviewer.*`` module an import statement names (also inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("busviewer.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "busviewer":
                found += [(node.lineno, f"busviewer.{a.name}") for a in node.names]
            elif node.module.startswith("busviewer."):
                found.append((node.lineno, node.module))
    return found


def _layer(module: str) -> str:
    part = module.split(".")[1]
    return part.removesuffix(".py")


def test_layers_import_only_the_layers_below() -> None:
    root = Path(busviewer.__file__).parent
    problems = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = rel.parts
        if len(parts) < 2 or parts[1] in ("__init__", "__main__"):
            continue
        layer = parts[1]
        allowed = ALLOWED.get(layer)
        assert allowed is not None, f"{rel}: a layer the layering test does not know; add it to ALLOWED"
        for line, module in _imports(path):
            target = _layer(module)
            if module == "busviewer.__version__" or (layer, module) in ENTRY_POINTS:
                continue
            if target not in allowed:
                problems.append(f"{rel}:{line} imports {module} ({layer} may import {sorted(allowed)})")
    assert not problems, "\n".join(problems)
