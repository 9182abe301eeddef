"""The research-use notice, as a banner wherever model output is shown."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from busviewer.core.notice import RESEARCH_NOTICE

SHORT_NOTICE = "Research use only — decision support, not a diagnosis"


class NoticeBanner(QLabel):
    """An amber, word-wrapped banner with the full research-use notice."""

    def __init__(self, parent: QWidget | None = None, compact: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("noticeBanner")
        self.setText(("⚠ " if not compact else "") + RESEARCH_NOTICE)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setToolTip(RESEARCH_NOTICE)
        self.setAccessibleName("Research use notice")


class StatusNotice(QLabel):
    """The notice in the status bar (always visible)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(RESEARCH_NOTICE, parent)
        self.setObjectName("statusNotice")
        self.setToolTip(RESEARCH_NOTICE)
