"""The QApplication, its style, and ``run(args)`` (the ``busviewer gui`` command)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox

from busviewer import __version__

log = logging.getLogger(__name__)

ORGANISATION = "busviewer"
APPLICATION = "busviewer"
RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def resource(name: str) -> Path:
    return RESOURCES / name


def dark_palette() -> QPalette:
    """A dark palette: reading rooms are dim and images must stand out."""
    p = QPalette()
    base, window, text = QColor("#1b1e21"), QColor("#25292d"), QColor("#e6e6e6")
    p.setColor(QPalette.ColorRole.Window, window)
    p.setColor(QPalette.ColorRole.WindowText, text)
    p.setColor(QPalette.ColorRole.Base, base)
    p.setColor(QPalette.ColorRole.AlternateBase, QColor("#22262a"))
    p.setColor(QPalette.ColorRole.ToolTipBase, QColor("#2f3439"))
    p.setColor(QPalette.ColorRole.ToolTipText, text)
    p.setColor(QPalette.ColorRole.Text, text)
    p.setColor(QPalette.ColorRole.Button, QColor("#2f3439"))
    p.setColor(QPalette.ColorRole.ButtonText, text)
    p.setColor(QPalette.ColorRole.BrightText, QColor("#ff5252"))
    p.setColor(QPalette.ColorRole.Highlight, QColor("#2d6da3"))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    p.setColor(QPalette.ColorRole.Link, QColor("#64b5f6"))
    p.setColor(QPalette.ColorRole.PlaceholderText, QColor("#8a9096"))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b7075"))
    return p


def apply_style(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    qss = resource("style.qss")
    if qss.is_file():
        app.setStyleSheet(qss.read_text(encoding="utf-8"))
    icon = resource("busviewer.svg")
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))


def create_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused if one exists, e.g. under pytest-qt)."""
    QCoreApplication.setOrganizationName(ORGANISATION)
    QCoreApplication.setApplicationName(APPLICATION)
    QCoreApplication.setApplicationVersion(__version__)
    app = QApplication.instance()
    if app is None:
        QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv if argv is not None else sys.argv[:1])
    apply_style(app)  # type: ignore[arg-type]
    return app  # type: ignore[return-value]


def open_imported(window: Any, report: Any) -> None:
    """Open the first patient an import brought (or found already in the store)."""
    patients = sorted(getattr(report, "patients", None) or ())
    if patients:
        window.open_patient(patients[0])


def _log_models(cards: dict[str, Any] | None) -> None:
    if cards is None:
        log.warning("models could not be loaded")
    else:
        log.info("models loaded: %s", ", ".join(f"{c.name}:{c.version}" for c in cards.values()) or "none")


def run(args: argparse.Namespace | None = None) -> int:
    """Start the workstation; returns the exit status."""
    from busviewer.core.store import Store, StoreError
    from busviewer.gui.main_window import MainWindow

    app = create_app()
    try:
        store = Store()
    except StoreError as exc:
        QMessageBox.critical(None, "busviewer: cannot open the store", str(exc))
        return 2
    # The window shows before its image viewer is built: pyqtgraph's imports (about 0.3 s)
    # come after the first paint. Worklist, models and a `busviewer PATH` import follow.
    window = MainWindow(store, defer_viewer=True)
    window.modelsLoaded.connect(_log_models)
    paths = list(getattr(args, "paths", None) or [])
    if paths:  # `busviewer PATH...` (the desktop entry's %F): import, then open the first patient
        window.importFinished.connect(lambda report: open_imported(window, report))

    def shown(painted: bool = True) -> None:
        if window.viewer is None:
            # packaging/smoke_tools.py and benchmarks/bench_app.py time these lines
            log.info("window shown" if painted else "window not painted after 2 s; building the viewer anyway")
            window.build_viewer()
            log.info("viewer ready")
            window.start()
            if paths:
                window.import_paths(paths)

    window.firstPainted.connect(shown)
    window.show()
    QTimer.singleShot(2000, lambda: shown(painted=False))  # a window never painted (minimised) still starts
    try:
        return int(app.exec())
    finally:
        window.shutdown()
        store.close()
