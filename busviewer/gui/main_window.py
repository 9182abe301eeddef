"""The review workstation's main window: worklist, thumbnails, viewer, AI panel, labels, ROIs.

The window only wires widgets to the store (quick reads and single-row writes, which
the store audits) and to background tasks (:mod:`busviewer.gui.workers`) for decoding,
import, report export and everything that touches torch. ``busviewer.ai`` is imported
only inside those tasks, so the window is up before torch loads.

This module builds the window and holds its state; its actions live in mixins by topic:
:mod:`~busviewer.gui.main_menus` (menus, shortcuts, Model menu),
:mod:`~busviewer.gui.main_files` (import, PDF export), :mod:`~busviewer.gui.main_patient`
(patients, images, labels) and :mod:`~busviewer.gui.main_analysis` (models, Grad-CAM, ROIs).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QGroupBox,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from busviewer.core.store import ImageRecord, Store
from busviewer.gui import workers
from busviewer.gui.ai_panel import ARCH_TITLES, AIPanel
from busviewer.gui.dialogs import message_box
from busviewer.gui.label_panel import LabelPanel
from busviewer.gui.main_analysis import AnalysisMixin
from busviewer.gui.main_files import FilesMixin
from busviewer.gui.main_menus import MenusMixin
from busviewer.gui.main_patient import PatientMixin
from busviewer.gui.notice import StatusNotice
from busviewer.gui.store_watch import StoreWatcher
from busviewer.gui.tasks import (
    ModelsLoaded,
    default_analyzer_factory,
    default_registry_factory,
    task_load_models,
    task_stored_verdicts,
)
from busviewer.gui.thumbnails import ThumbnailStrip
from busviewer.gui.worklist import WorklistWidget

if TYPE_CHECKING:
    from busviewer.gui.compare import CompareLayout
    from busviewer.gui.roi import RoiPanel
    from busviewer.gui.viewer import ImageViewer

log = logging.getLogger(__name__)


# ----------------------------------------------------------------- the window
class MainWindow(MenusMixin, FilesMixin, PatientMixin, AnalysisMixin, QMainWindow):
    """See the module docstring. Signals let tests (and other code) follow background work."""

    worklistLoaded = Signal()
    patientOpened = Signal(str)
    imageShown = Signal(int)
    modelsLoaded = Signal(object)
    analysisFinished = Signal(object)
    analysisFailed = Signal(str)
    infoShown = Signal(str, str)
    camShown = Signal(int, str)
    roiClassified = Signal(int, object)
    importFinished = Signal(object)
    reportExported = Signal(object)
    errorShown = Signal(str, str)
    firstPainted = Signal()  # the window's first paint while the viewer is still to be built

    def __init__(
        self,
        store: Store,
        *,
        registry_factory: Callable[[], Any] | None = None,
        analyzer_factory: Callable[[Store, Any], Any] | None = None,
        defer_viewer: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        """``defer_viewer``: build the image viewer (pyqtgraph, about 0.3 s of imports) only when
        :meth:`build_viewer` is called, so the launch can show the window first."""
        super().__init__(parent)
        self.store = store
        self.registry_factory = registry_factory or default_registry_factory
        self.analyzer_factory = analyzer_factory or default_analyzer_factory
        self.analyzer: Any = None
        self.registry: Any = None
        self.model_entries: list[Any] = []
        self.models_state = "idle"  # idle | loading | ready | none | error
        self.patient_key: str | None = None
        self.records: list[ImageRecord] = []
        self.current_image_id: int | None = None
        self._displayed_id: int | None = None
        self.analyses: dict[str, Any] = {}
        self.cams: dict[tuple[int, str, int], Any] = {}
        self.errors: list[tuple[str, str]] = []
        self._cache: OrderedDict[int, Any] = OrderedDict()
        self._decode_errors: dict[int, str] = {}
        self._patient_task: workers.Task | None = None
        self._decode_tasks: dict[int, workers.Task] = {}
        self._analysis_task: workers.Task | None = None
        self._cam_pending: set[tuple[int, str, int]] = set()
        self._pending_analysis = False
        self._shutting_down = False

        self.setWindowTitle("busviewer — breast ultrasound second reader (research use only)")
        self._build_widgets()
        self._build_menus()
        self._build_shortcuts()
        self._build_status_bar()
        self._restore_settings()
        if not defer_viewer:
            self.build_viewer()

    # ================================================================= layout
    def _build_widgets(self) -> None:
        self.worklist = WorklistWidget(self)
        self.worklist.patientActivated.connect(self.open_patient)
        self.thumbnails = ThumbnailStrip(self)
        self.thumbnails.imageSelected.connect(self.show_image)
        self.thumbnails.headerChanged.connect(lambda text: self.patient_title.setText(text))
        self.viewer: ImageViewer | None = None  # these three: built by build_viewer()
        self.rois: RoiPanel | None = None
        self.compare: CompareLayout | None = None
        self.ai_panel = AIPanel(self)
        self.ai_panel.analyseRequested.connect(self.analyse)
        self.ai_panel.cancelRequested.connect(self.cancel_analysis)
        self.ai_panel.overrideRequested.connect(self.override_outside)
        self.ai_panel.imageClicked.connect(self.show_image)
        self.ai_panel.operatingPointChanged.connect(self._operating_point_changed)
        self.ai_panel.cam.changed.connect(self._cam_controls_changed)
        self.labels = LabelPanel(self.store, self)
        self.labels.image.changed.connect(self._image_label_changed)
        self.labels.patient.changed.connect(self._patient_label_changed)
        self.labels.image.errorOccurred.connect(self.report_error)
        self.labels.patient.errorOccurred.connect(self.report_error)
        self.store_watch = StoreWatcher(self.store, self)  # writes by other processes refresh the worklist
        self.store_watch.changed.connect(self.refresh_worklist)

        centre = QWidget(self)
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(2, 2, 2, 2)
        cl.setSpacing(4)
        self.patient_title = QLabel("No patient open", centre)
        self.patient_title.setObjectName("patientTitle")
        cl.addWidget(self.patient_title)
        cl.addWidget(self.thumbnails)
        self._viewer_slot = _PaintedLabel("Loading the image viewer…", centre)
        self._viewer_slot.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._viewer_slot.painted.connect(self.firstPainted)
        cl.addWidget(self._viewer_slot, 1)

        left = QSplitter(Qt.Orientation.Vertical, self)
        left.addWidget(self.worklist)
        left.addWidget(self.labels)
        left.setStretchFactor(0, 3)
        left.setStretchFactor(1, 2)

        ai_scroll = QScrollArea(self)
        ai_scroll.setWidgetResizable(True)
        ai_scroll.setWidget(self.ai_panel)
        ai_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        ai_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        roi_box = QGroupBox("Lesion ROIs (crops)", self)
        rl = QVBoxLayout(roi_box)
        rl.setContentsMargins(2, 2, 2, 2)
        self._rois_slot = QLabel("", roi_box)
        rl.addWidget(self._rois_slot)
        right = QSplitter(Qt.Orientation.Vertical, self)
        right.addWidget(ai_scroll)
        right.addWidget(roi_box)
        right.setStretchFactor(0, 4)
        right.setStretchFactor(1, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(left)
        self.splitter.addWidget(centre)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([430, 770, 400])
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)
        self.resize(1600, 960)

    def build_viewer(self) -> None:
        """The image viewer, the ROI panel and the 1x2 layout (all pyqtgraph), in the places kept for them."""
        if self.viewer is not None:
            return
        from busviewer.gui.compare import CompareLayout
        from busviewer.gui.roi import RoiPanel
        from busviewer.gui.viewer import ImageViewer

        self.viewer = ImageViewer(self)
        self.viewer.frameChanged.connect(self._frame_changed)
        self.viewer.play_button.toggled.connect(lambda _on: self._refresh_cam())
        self.viewer.measured.connect(self._caliper_message)
        self.rois = RoiPanel(self.store, self.viewer, self)
        self.rois.classify_available = lambda: self.analyzer is not None and bool(getattr(self.analyzer, "cards", True))
        self.rois.classifyRequested.connect(self.classify_roi)
        self.rois.errorOccurred.connect(self.report_error)
        self.rois.suggestion.wanted.connect(self.suggest_roi)
        for slot, widget in ((self._viewer_slot, self.viewer), (self._rois_slot, self.rois)):
            slot.parentWidget().layout().replaceWidget(slot, widget)
            slot.hide()
            slot.deleteLater()
        self.compare = CompareLayout(self)  # the 1x2 layout (View > Compare two images)
        self.ai_panel.cam.colorbar.load_colours()

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.model_status = QLabel("AI: models not loaded yet", self)
        self.model_status.setObjectName("modelStatus")
        self.status_notice = StatusNotice(self)
        sb.addPermanentWidget(self.model_status)
        sb.addPermanentWidget(self.status_notice)

    # ================================================================ start-up
    def start(self) -> None:
        """Background start-up work, after the window is shown: worklist, then models."""
        self.refresh_worklist()
        self.store_watch.start()
        QTimer.singleShot(0, self.load_models)

    def refresh_worklist(self) -> None:
        workers.submit(
            self.store.patients,
            name="worklist",
            on_result=self._worklist_loaded,
            on_error=lambda e: self.report_error("Cannot read the worklist", str(e)),
        )

    def _worklist_loaded(self, patients: list[Any]) -> None:
        self.worklist.set_patients(patients, keep=self.patient_key)
        self.ai_panel.set_store_empty(not patients)
        if self.patient_key is None:
            self.viewer.show_message(
                "Open a patient from the worklist"
                if patients
                else "No patients in the store yet.\n\nFile > Import folder… (one folder per patient, or DICOM)\n"
                "File > Import files… (DICOM, PNG/JPEG or a CSV manifest)"
            )
        self.worklistLoaded.emit()
        workers.submit(
            task_stored_verdicts,
            self.store,
            self.ai_panel.operating_point(),
            name="verdicts",
            on_result=self.worklist.model.set_verdicts,
            on_error=lambda e: log.info("stored verdicts unavailable: %s", e),
        )

    def load_models(self) -> None:
        if self.models_state == "loading":
            return
        self.models_state = "loading"
        self.model_status.setText("AI: loading models…")
        self.ai_panel.set_models_loading()
        self.rois.sync()
        workers.submit(
            task_load_models,
            self.store,
            self.registry_factory,
            self.analyzer_factory,
            self.analyzer,
            pool="ai",
            name="load models",
            on_result=self._models_loaded,
            on_error=self._models_failed,
        )

    def _models_loaded(self, res: ModelsLoaded) -> None:
        self.analyzer, self.registry, self.model_entries = res.analyzer, res.registry, res.entries
        self._operating_point_changed(self.ai_panel.operating_point())
        self._fill_model_menus()
        if res.no_model is not None or not res.cards:
            self.models_state = "none"
            self.model_status.setText("AI: no active model" + (f" · {res.device}" if res.device else ""))
            self.ai_panel.set_no_model(installed=len(res.entries))
            self.rois.sync()
            self.modelsLoaded.emit({})
            self._pending_analysis = False
            return
        self.models_state = "ready"
        names = " + ".join(f"{c.name} v{c.version}" for _a, c in sorted(res.cards.items()))
        self.model_status.setText(f"AI: {names} · {res.device}")
        self.model_status.setToolTip(
            "\n".join(f"{ARCH_TITLES.get(a, a)}: {c.name} v{c.version}" for a, c in sorted(res.cards.items()))
        )
        self.ai_panel.set_models(
            res.cards,
            res.device,
            shipped=[e.architecture for e in res.entries if e.active and getattr(e, "location", "") == "shipped"],
        )
        self.rois.sync()
        self.modelsLoaded.emit(res.cards)
        if self._pending_analysis or (
            self.patient_key and self.ai_panel.auto_analyse() and self.patient_key not in self.analyses
        ):
            self._pending_analysis = False
            self.analyse()
        self._refresh_cam()
        self.suggest_roi()

    def _models_failed(self, exc: BaseException) -> None:
        self.models_state = "error"
        self.model_status.setText("AI: models could not be loaded")
        self.ai_panel.set_models_ready(False)
        self.ai_panel.show_message(f"The models could not be loaded: {exc}", warn=True)
        self.report_error("Models could not be loaded", str(exc))
        self.modelsLoaded.emit(None)

    # ==================================================================== misc

    def inform(self, title: str, text: str) -> None:
        """A friendly note for "nothing to do yet" (not an error; not in ``errors``)."""
        self.statusBar().showMessage(text, 10000)
        if not self._shutting_down:
            message_box(self, title, text, icon=QMessageBox.Icon.Information)
        self.infoShown.emit(title, text)

    def report_error(
        self, title: str, text: str, detail: str = "", icon: QMessageBox.Icon = QMessageBox.Icon.Critical
    ) -> None:
        """Tell the reader what went wrong (naming the file); the app keeps running."""
        log.warning("%s: %s", title, text)
        self.errors.append((title, text))
        self.statusBar().showMessage(f"{title}: {text.splitlines()[0] if text else ''}", 10000)
        if not self._shutting_down:
            message_box(self, title, text, detail, icon)
        self.errorShown.emit(title, text)

    def _restore_settings(self) -> None:
        s = QSettings()
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        sizes = s.value("window/splitter")
        if sizes is not None:
            self.splitter.restoreState(sizes)

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Stop timers, cancel and wait for background work (idempotent)."""
        self._shutting_down = True
        self.store_watch.stop()
        if self.viewer is not None:
            self.viewer.stop()
        self._cancel_patient_tasks()
        workers.shutdown(timeout_ms)

    def closeEvent(self, event: QCloseEvent) -> None:
        s = QSettings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/splitter", self.splitter.saveState())
        self.shutdown()
        super().closeEvent(event)


class _PaintedLabel(QLabel):
    """The viewer's place-holder: says once that it has been painted (the window is on screen)."""

    painted = Signal()
    _told = False

    def paintEvent(self, event: Any) -> None:
        super().paintEvent(event)
        if not self._told:
            self._told = True
            QTimer.singleShot(0, self, self.painted.emit)  # after this paint is flushed; dropped if deleted
