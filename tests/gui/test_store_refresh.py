"""Issue 14: a CLI import while the app is open reaches the worklist by itself, and the
GUI thread keeps running while it is noticed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from gui_helpers import close_window, png
from PySide6.QtCore import QTimer

from busviewer.core.importer import import_paths
from busviewer.core.store import Store
from busviewer.core.store.changes import change_marker
from busviewer.gui.main_window import MainWindow


@pytest.fixture
def window(styled_app, tmp_path: Path):  # type: ignore[no-untyped-def]
    from busviewer.ai.registry import ModelRegistry

    png(tmp_path / "first" / "PAT-1" / "a.png", seed=1)
    store = Store(tmp_path / "store.sqlite")
    import_paths(store, [tmp_path / "first"])
    (tmp_path / "models").mkdir()
    w = MainWindow(
        store, registry_factory=lambda: ModelRegistry(user_dir=tmp_path / "models", shipped_dir=tmp_path / "models")
    )
    w.ai_panel.auto.setChecked(False)
    w.show()
    yield w, store, tmp_path
    close_window(w)
    store.close()


def test_cli_import_reaches_the_open_worklist(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    w, store, root = window
    w.start()
    qtbot.waitUntil(lambda: w.worklist.model.rowCount() == 1 and w.store_watch.marker is not None, timeout=20_000)
    png(root / "second" / "PAT-2" / "b.png", seed=2)
    gaps: list[float] = []
    last = [time.monotonic()]

    def beat() -> None:
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    heart = QTimer()
    heart.timeout.connect(beat)
    heart.start(20)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "busviewer",
            "--store",
            str(root / "store.sqlite"),
            "import",
            "-q",
            str(root / "second"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    last[0] = time.monotonic()  # the GUI thread was in subprocess.run above, not in the app
    gaps.clear()
    try:
        qtbot.waitUntil(lambda: w.worklist.model.row_of("PAT-2") is not None, timeout=15_000)
    finally:
        heart.stop()
    assert max(gaps, default=0.0) < 0.5, f"GUI thread blocked {max(gaps):.2f} s"
    assert w.store_watch.marker == change_marker(store)


def test_an_unchanged_store_does_not_refresh(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    w, store, _root = window
    w.store_watch.start()
    qtbot.waitUntil(lambda: w.store_watch.marker is not None, timeout=10_000)
    seen: list[bool] = []
    w.store_watch.changed.connect(lambda: seen.append(True))
    w.store_watch.check()
    qtbot.waitUntil(lambda: not w.store_watch._pending, timeout=10_000)
    assert not seen
    other = Store(store.url.replace("sqlite:///", ""))  # a second connection, as another process has
    other.set_reviewed("PAT-1", True)
    other.close()
    qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    w.store_watch.stop()
