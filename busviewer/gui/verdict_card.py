"""One model's patient-level vote in the AI panel, with the operating point in force, the
indeterminate band and the tie note (display only; the numbers come from
``busviewer.ai.results``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from busviewer.core import operating
from busviewer.core.numbering import image_list

ARCH_TITLES = {"ensemble": "Ensemble (AlexNet + ResNet-18)", "vgg16": "VGG-16"}
ARCH_SHORT = {"ensemble": "Ensemble", "vgg16": "VGG-16"}
MALIGNANT = QColor("#ff8a80")
BENIGN = QColor("#8fd19e")
INDETERMINATE = QColor("#e0c060")
NOT_CLASSIFIED = QColor("#9aa0a6")
INDETERMINATE_WORD = "indeterminate"


def label_colour(label: str) -> QColor:
    return {"malignant": MALIGNANT, "benign": BENIGN, "outside": NOT_CLASSIFIED, "not classified": NOT_CLASSIFIED}.get(
        label, INDETERMINATE
    )


def verdict_summary(verdict: Any) -> str:
    """Short text for the worklist column, e.g. "malignant 3/4" or "indeterminate (2 unsure)"."""
    unsure = len(getattr(verdict, "indeterminate_images", ()) or ())
    if verdict.label == "not classified":
        return "not classified (outside training data)"
    if verdict.label == INDETERMINATE_WORD:
        return f"indeterminate ({unsure} unsure)" if unsure else "indeterminate"
    total = verdict.benign_votes + verdict.malignant_votes
    votes = verdict.malignant_votes if verdict.label == "malignant" else verdict.benign_votes
    return (
        f"{verdict.label} {votes}/{total}"
        + (" (tie)" if verdict.tie_decided else "")
        + (f" +{unsure}?" if unsure else "")
    )


def cell_text(p: Any, unsure: bool) -> str:
    """A per-image cell: "M 0.82", "B 0.31" or "? 0.51" (indeterminate)."""
    mark = "?" if unsure else ("M" if p.label == "malignant" else "B")
    return f"{mark} {p.malignant_probability:.2f}"


def operating_point_combo(parent: QWidget, current: str) -> QComboBox:
    """The operating-point chooser (item data: the point's name; tooltips: how it was chosen)."""
    combo = QComboBox(parent)
    combo.setObjectName("operatingPoint")
    for name in operating.OPERATING_POINTS:
        combo.addItem(operating.TITLES[name], name)
        combo.setItemData(combo.count() - 1, operating.HELP[name], Qt.ItemDataRole.ToolTipRole)
    combo.setToolTip(
        "Operating point: the threshold on the calibrated p(malignant) that makes an image's call, "
        "chosen on the model's validation patients"
    )
    combo.setCurrentIndex(max(0, combo.findData(current)))
    return combo


def prediction_table(parent: QWidget) -> QTableWidget:
    """The AI panel's per-image table: image, ensemble and VGG-16 p(malignant)."""
    table = QTableWidget(0, 3, parent)
    table.setObjectName("predictionTable")
    table.setHorizontalHeaderLabels(["Image", "Ensemble", "VGG-16"])
    table.horizontalHeaderItem(1).setToolTip("p(malignant) from the ensemble")
    table.horizontalHeaderItem(2).setToolTip("p(malignant) from VGG-16")
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(22)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    table.setWordWrap(False)
    header = table.horizontalHeader()
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
    return table


def outside_lines(outside: dict[int, str], overridden: dict[int, str], numbers: dict[int, int]) -> list[str]:
    """The AI panel's note on images outside the training data (and overrides)."""

    def nums(ids: Any) -> str:
        return image_list(ids, numbers)

    lines = [
        f"⚠ Image {nums([i])}: {reason}. No result is shown for it and it does not vote."
        for i, reason in sorted(outside.items(), key=lambda kv: numbers.get(kv[0], kv[0]))
    ]
    if overridden:
        lines.append(
            f"Classified on the reader's override (flagged as outside the training data): "
            f"{nums(overridden)} by {', '.join(sorted(set(overridden.values())))}."
        )
    return lines


class VerdictCard(QFrame):
    """One model's patient-level vote."""

    def __init__(self, architecture: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.architecture = architecture
        self.setObjectName("verdictCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(ARCH_SHORT.get(architecture, architecture), self)
        self.title.setObjectName("verdictTitle")
        self.title.setWordWrap(True)
        self.verdict = QLabel("–", self)
        self.verdict.setObjectName("verdictLabel")
        f = QFont(self.verdict.font())
        f.setPointSizeF(f.pointSizeF() * 1.35)
        f.setBold(True)
        self.verdict.setFont(f)
        self.detail = QLabel("", self)
        self.detail.setWordWrap(True)
        self.detail.setObjectName("verdictDetail")
        self.point = QLabel("", self)
        self.point.setObjectName("operatingPointNote")
        self.point.setWordWrap(True)
        self.tie = QLabel("", self)
        self.tie.setObjectName("tieNote")
        self.tie.setWordWrap(True)
        self.tie.hide()
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.verdict)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        lay.setSpacing(2)
        lay.addLayout(head)
        lay.addWidget(self.detail)
        lay.addWidget(self.point)
        lay.addWidget(self.tie)

    def clear(self, text: str = "–") -> None:
        self.verdict.setText(text)
        self.verdict.setStyleSheet("")
        self.detail.setText("")
        self.point.setText("")
        self.tie.hide()

    def show_verdict(self, v: Any, numbers: dict[int, int], model: str = "") -> None:
        unsure = tuple(getattr(v, "indeterminate_images", ()) or ())
        self.verdict.setText(v.label.upper())
        colour = label_colour(v.label)
        # only a determinate verdict is bold; an indeterminate one is shown plainly
        weight = "bold" if v.label in ("benign", "malignant") else "normal"
        self.verdict.setStyleSheet(f"color: {colour.name()}; font-weight: {weight};")
        self.title.setText(
            ARCH_SHORT.get(self.architecture, self.architecture)
            + (f"  <span style='color:#9aa0a6; font-weight:normal'>{model}</span>" if model else "")
        )
        self.title.setToolTip(ARCH_TITLES.get(self.architecture, self.architecture) + (f" · {model}" if model else ""))

        def names(ids: Sequence[int]) -> str:
            return image_list(ids, numbers, empty="none")

        mean = v.mean_malignant_probability
        lines = [f"Votes: {v.malignant_votes} malignant, {v.benign_votes} benign"]
        if mean is not None:
            lines.append(f"Mean p(malignant): {mean:.2f}")
        lines += [f"Malignant: {names(v.malignant_images)}", f"Benign: {names(v.benign_images)}"]
        if unsure:
            lines.append(f"Indeterminate (not counted in the vote): {names(unsure)}")
        if v.label == INDETERMINATE_WORD:
            lines.append("No image gives a clear call: read the images.")
        elif v.label == "not classified":
            lines.append("No image is of the kind the models were trained for.")
        self.detail.setText("\n".join(lines))
        op = getattr(v, "operating_point", operating.DEFAULT_OPERATING_POINT)
        text = operating.describe(op, getattr(v, "threshold", operating.DEFAULT_THRESHOLD))
        band = getattr(v, "band", None)
        if band is not None:
            text += "; " + operating.describe_band(band)
        self.point.setText(text)
        if v.tie_decided:
            self.tie.setText("Tie: counted as malignant (a tied vote is read as malignant)")
            self.tie.show()
        else:
            self.tie.hide()
