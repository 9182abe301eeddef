"""The review workstation's main window: worklist, thumbnails, viewer, AI panel, labels, ROIs.

The window only wires widgets to the store (quick reads and single-row writes, which
the store audits) and to background tasks (:mod:`busviewer.gui.workers`) for decoding,
import, report export and everything that touches torch. ``busviewer.ai`` is imported
only inside those tasks, so the window is up before torch loads.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from busviewer.core.store import ImageRecord, Store, StoreError
from busviewer.gui import workers
from busviewer.gui.ai_panel import ARCH_SHORT, ARCH_TITLES, AIPanel
from busviewer.gui.compare import CompareLayout
from busviewer.gui.dialogs import ProgressDialog, ShortcutsDialog, message_box, show_about
from busviewer.gui.label_panel import LabelPanel
from busviewer.gui.notice import StatusNotice
from busviewer.gui.roi import RoiPanel
from busviewer.gui.store_watch import StoreWatcher
from busviewer.gui.tasks import (
    ModelsLoaded,
    verdict_text,
    default_analyzer_factory,
    default_registry_factory,
    stored_analysis,
    task_decode,
    task_decode_patient,
    task_load_models,
    task_stored_verdicts,
)
from busviewer.gui.thumbnails import Thumbnail, ThumbnailStrip, make_thumbnail
from busviewer.gui.viewer import ImageViewer
from busviewer.gui.worklist import WorklistWidget
from busviewer.services import models as model_service

log = logging.getLogger(__name__)

#: Keep decoded images of the open patient (and a few before) in memory, up to this size.
CACHE_BYTES = 768 * 1024 * 1024


# ----------------------------------------------------------------- the window
class MainWindow(QMainWindow):
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

    def __init__(
        self,
        store: Store,
        *,
        registry_factory: Callable[[], Any] | None = None,
        analyzer_factory: Callable[[Store, Any], Any] | None = None,
        parent: QWidget | None = None,
    ) -> None:
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

    # ================================================================= layout
    def _build_widgets(self) -> None:
        self.worklist = WorklistWidget(self)
        self.worklist.patientActivated.connect(self.open_patient)
        self.thumbnails = ThumbnailStrip(self)
        self.thumbnails.imageSelected.connect(self.show_image)
        self.thumbnails.headerChanged.connect(lambda text: self.patient_title.setText(text))
        self.viewer = ImageViewer(self)
        self.viewer.frameChanged.connect(self._frame_changed)
        self.viewer.play_button.toggled.connect(lambda _on: self._refresh_cam())
        self.viewer.measured.connect(self._caliper_message)
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
        self.rois = RoiPanel(self.store, self.viewer, self)
        self.rois.classify_available = lambda: self.analyzer is not None and bool(getattr(self.analyzer, "cards", True))
        self.rois.classifyRequested.connect(self.classify_roi)
        self.rois.errorOccurred.connect(self.report_error)
        self.rois.suggestion.wanted.connect(self.suggest_roi)
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
        cl.addWidget(self.viewer, 1)

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
        rl.addWidget(self.rois)
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
        self.compare = CompareLayout(self)  # the 1x2 layout (View > Compare two images)
        self.resize(1600, 960)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self.act_import_files = file.addAction("Import files…", self.import_files_dialog)
        self.act_import_files.setShortcut(QKeySequence("Ctrl+O"))
        self.act_import_folder = file.addAction("Import folder…", self.import_folder_dialog)
        self.act_import_folder.setShortcut(QKeySequence("Ctrl+Shift+O"))
        file.addSeparator()
        self.act_export = file.addAction("Export patient report (PDF)…", self.export_report_dialog)
        self.act_export.setShortcut(QKeySequence("Ctrl+E"))
        file.addSeparator()
        from busviewer.gui.pacs_dialogs import install_pacs  # PACS query/listen/send, de-identified export

        install_pacs(self, file)
        file.addSeparator()
        quit_action = file.addAction("Quit", self.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)

        model = bar.addMenu("&Model")
        self.active_menu = model.addMenu("Active model")
        self.arch_menus: dict[str, QMenu] = {}
        self.arch_groups: dict[str, QActionGroup] = {}
        for arch in ("ensemble", "vgg16"):
            sub = self.active_menu.addMenu(ARCH_TITLES[arch])
            sub.addAction("(loading…)").setEnabled(False)
            self.arch_menus[arch] = sub
        model.addSeparator()
        model.addAction("Train…", self.open_training_wizard)
        model.addAction("Import model…", self.import_model_dialog)
        model.addAction("Manage models…", self.open_model_manager)
        model.addSeparator()
        model.addAction("Reload models", self.load_models)

        view = bar.addMenu("&View")
        view.addAction("Fit image", self.viewer.fit)
        view.addAction("Image 1:1", self.viewer.one_to_one)
        view.addAction("Reset window/level", self.viewer.reset_levels)
        view.addAction("Clear calipers", self.viewer.clear_caliper)
        view.addSeparator()
        self.act_compare = view.addAction("Compare two images (1x2)")
        self.act_compare.setCheckable(True)
        self.act_compare.setShortcut(QKeySequence("C"))
        self.act_compare.toggled.connect(self.compare.set_on)

        from busviewer.gui.blinded_read import install_blinded_reading  # blinded first read, Reader vs AI

        install_blinded_reading(self, bar.addMenu("&Reading"))
        help_menu = bar.addMenu("&Help")
        help_menu.addAction("Keyboard shortcuts", self.show_shortcuts).setShortcut(QKeySequence("F1"))
        help_menu.addAction("About busviewer", lambda: show_about(self))

    def _build_shortcuts(self) -> None:
        def add(keys: Sequence[str], slot: Callable[[], Any]) -> None:
            for k in keys:
                sc = QShortcut(QKeySequence(k), self)
                sc.setContext(Qt.ShortcutContext.WindowShortcut)
                sc.activated.connect(slot)

        add(["B"], lambda: self.label_current_image("benign"))
        add(["M"], lambda: self.label_current_image("malignant"))
        add(["Left", "PgUp"], lambda: self.step_image(-1))
        add(["Right", "PgDown"], lambda: self.step_image(1))
        add(["Up", "Ctrl+PgUp"], lambda: self.step_patient(-1))
        add(["Down", "Ctrl+PgDown"], lambda: self.step_patient(1))
        add(["R"], self.toggle_reviewed)
        add(["A"], self.analyse)
        add(["G"], lambda: self.ai_panel.cam.enabled.toggle())
        add(["F"], self.viewer.fit)
        add(["1"], self.viewer.one_to_one)
        add(["Space"], self.viewer.toggle_play)
        add(["Ctrl+F"], self._focus_search)
        add(["Escape"], self._escape)

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
        workers.submit(self.store.patients, name="worklist", on_result=self._worklist_loaded,
                       on_error=lambda e: self.report_error("Cannot read the worklist", str(e)))

    def _worklist_loaded(self, patients: list[Any]) -> None:
        self.worklist.set_patients(patients, keep=self.patient_key)
        self.ai_panel.set_store_empty(not patients)
        if self.patient_key is None:
            self.viewer.show_message(
                "Open a patient from the worklist" if patients else
                "No patients in the store yet.\n\nFile > Import folder… (one folder per patient, or DICOM)\n"
                "File > Import files… (DICOM, PNG/JPEG or a CSV manifest)")
        self.worklistLoaded.emit()
        workers.submit(task_stored_verdicts, self.store, self.ai_panel.operating_point(), name="verdicts",
                       on_result=self.worklist.model.set_verdicts,
                       on_error=lambda e: log.info("stored verdicts unavailable: %s", e))

    def load_models(self) -> None:
        if self.models_state == "loading":
            return
        self.models_state = "loading"
        self.model_status.setText("AI: loading models…")
        self.ai_panel.set_models_loading()
        self.rois.sync()
        workers.submit(task_load_models, self.store, self.registry_factory, self.analyzer_factory, self.analyzer,
                       pool="ai", name="load models", on_result=self._models_loaded, on_error=self._models_failed)

    def _models_loaded(self, res: ModelsLoaded) -> None:
        self.analyzer, self.registry, self.model_entries = res.analyzer, res.registry, res.entries
        self._operating_point_changed(self.ai_panel.operating_point())
        self._fill_model_menus()
        if res.no_model is not None or not res.cards:
            self.models_state = "none"
            self.model_status.setText(f"AI: no active model · {res.device}")
            self.ai_panel.set_no_model(installed=len(res.entries))
            self.rois.sync()
            self.modelsLoaded.emit({})
            self._pending_analysis = False
            return
        self.models_state = "ready"
        names = " + ".join(f"{c.name} v{c.version}" for _a, c in sorted(res.cards.items()))
        self.model_status.setText(f"AI: {names} · {res.device}")
        self.model_status.setToolTip("\n".join(f"{ARCH_TITLES.get(a, a)}: {c.name} v{c.version}"
                                               for a, c in sorted(res.cards.items())))
        self.ai_panel.set_models(res.cards, res.device, shipped=[
            e.architecture for e in res.entries if e.active and getattr(e, "location", "") == "shipped"])
        self.rois.sync()
        self.modelsLoaded.emit(res.cards)
        if self._pending_analysis or (self.patient_key and self.ai_panel.auto_analyse()
                                      and self.patient_key not in self.analyses):
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

    def _fill_model_menus(self) -> None:
        for arch, menu in self.arch_menus.items():
            menu.clear()
            group = QActionGroup(menu)
            group.setExclusive(True)
            self.arch_groups[arch] = group
            entries = [e for e in self.model_entries if e.card.architecture == arch]
            if not entries:
                menu.addAction("(no model of this kind)").setEnabled(False)
            for e in entries:
                auc = e.card.test_metric("auc")
                text = f"{e.card.name} v{e.card.version}" + (f"  (test AUC {auc:.3f})" if auc is not None else "")
                text += "  [shipped]" if getattr(e, "location", "") == "shipped" else ""
                act = QAction(text, menu)
                act.setCheckable(True)
                act.setChecked(bool(e.active))
                act.triggered.connect(lambda _checked=False, n=e.card.name, v=e.card.version: self.activate_model(n, v))
                group.addAction(act)
                menu.addAction(act)

    def activate_model(self, name: str, version: int, confirm: bool | None = None) -> None:
        """Model menu: activate ``name`` v``version`` (audited); a model with poor or thin
        recorded test figures only after a confirmation (``confirm``: the answer)."""
        if self.registry is None:
            return
        entry = next((e for e in self.model_entries if e.card.name == name and e.card.version == version), None)
        question = model_service.activation_question(entry.card) if entry is not None else None
        if question is not None:
            if confirm is None:
                box = QMessageBox(QMessageBox.Icon.Warning, "Activate this model?", question,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
                box.setDefaultButton(QMessageBox.StandardButton.Cancel)
                confirm = box.exec() == QMessageBox.StandardButton.Yes
            if not confirm:
                self._fill_model_menus()  # the menu's check mark goes back to the active model
                return

        def task(registry: Any, store: Store) -> Any:
            return model_service.activate(registry, store, name, version).entry

        def done(_entry: Any) -> None:
            self.models_changed()

        workers.submit(task, self.registry, self.store, pool="ai", name="activate", on_result=done,
                       on_error=lambda e: self.report_error("Model not activated", str(e)))

    def models_changed(self) -> None:
        """The active models changed (menu, model manager, training wizard): reload them and
        the status bar; results of the previous models are no longer shown."""
        self.models_state = "idle"
        self.analyses.clear()
        self.cams.clear()
        self.rois.suggestion.forget()
        self.load_models()
        if self.patient_key:
            self._pending_analysis = True

    # ================================================================= patients
    def open_patient(self, patient_key: str) -> None:
        if patient_key == self.patient_key or self._shutting_down:
            return
        try:
            records = self.store.images(patient_key)
            patient_labels = self.store.patient_label(patient_key)
            studies = self.store.studies(patient_key)
        except (StoreError, KeyError) as exc:
            self.report_error("Cannot open the patient", str(exc))
            return
        self._cancel_patient_tasks()
        self.viewer.forget_levels()  # window/level is per image and per patient
        self.patient_key = patient_key
        self.records = records
        self.current_image_id = None
        self.worklist.select(patient_key, emit=False)
        self.worklist.model.mark_opened(patient_key)
        row = self.worklist.model.row_of(patient_key)
        name = self.worklist.model.patient(row).name if row is not None else None
        self.thumbnails.set_images(records, studies, patient_key, name)  # sets the patient header
        self.ai_panel.set_patient(records)
        self.labels.patient.set_patient(patient_key, patient_labels)
        if patient_key in self.analyses:
            self._show_analysis(self.analyses[patient_key])
        else:
            try:
                stored = stored_analysis(self.store, patient_key)
            except Exception as exc:  # noqa: BLE001 - stored results are a convenience
                log.info("no stored analysis for %s: %s", patient_key, exc)
                stored = None
            if stored is not None:
                self._show_analysis(stored)
            if self.models_state in ("none", "error"):
                if self.models_state == "none":
                    self.ai_panel.set_no_model("Shown: stored results of earlier models." if stored is not None else "")
            elif stored is not None:
                self.ai_panel.show_message("Showing stored results; press Analyse to run the active models again.")
        if records:
            self._patient_task = workers.submit(
                task_decode_patient, [r for r in records if r.id not in self._cache], name="thumbnails",
                on_partial=self._thumbnail_ready,
            )
            for rec in records:
                if rec.id in self._cache:
                    self._thumbnail_from_cache(rec.id)
            self.show_image(records[0].id)
        else:
            self.viewer.clear("This patient has no images")
            self.labels.image.set_image(None)
            self.rois.set_image(None)
        self.patientOpened.emit(patient_key)
        if records and self.ai_panel.auto_analyse() and patient_key not in self.analyses:
            if self.models_state == "ready":
                self.analyse()
            elif self.models_state in ("loading", "idle"):
                self._pending_analysis = True

    def _cancel_patient_tasks(self) -> None:
        if self._patient_task is not None:
            self._patient_task.cancel()
            self._patient_task = None
        for t in self._decode_tasks.values():
            t.cancel()
        self._decode_tasks.clear()
        self.cancel_analysis()
        self._pending_analysis = False
        self.viewer.stop()

    def _thumbnail_ready(self, value: tuple[Thumbnail, Any]) -> None:
        thumb, img = value
        self.thumbnails.set_thumbnail(thumb)
        if img is not None:
            self._cache_put(thumb.image_id, img)
            if thumb.image_id == self.current_image_id and self._displayed_id != thumb.image_id:
                self._display(thumb.image_id, img)
        elif thumb.error:
            self._decode_errors[thumb.image_id] = thumb.error

    def _thumbnail_from_cache(self, image_id: int) -> None:
        img = self._cache.get(image_id)
        if img is not None:
            self.thumbnails.set_thumbnail(Thumbnail(image_id, make_thumbnail(img.frame(0))))

    def _cache_put(self, image_id: int, img: Any) -> None:
        self._cache[image_id] = img
        self._cache.move_to_end(image_id)
        current = {r.id for r in self.records}
        while sum(int(i.frames.nbytes) for i in self._cache.values()) > CACHE_BYTES and len(self._cache) > 1:
            victim = next((k for k in self._cache if k not in current), next(iter(self._cache)))
            if victim == image_id:
                break
            self._cache.pop(victim)

    def step_patient(self, delta: int) -> None:
        key = self.worklist.step(delta)
        if key is not None:
            self.open_patient(key)

    def toggle_reviewed(self) -> None:
        if self.patient_key is None:
            return
        try:
            row = self.worklist.model.row_of(self.patient_key)
            current = self.worklist.model.patient(row).reviewed if row is not None else False
            now = not current
            self.store.set_reviewed(self.patient_key, now)
        except (StoreError, KeyError) as exc:
            self.report_error("Review state not saved", str(exc))
            return
        self._refresh_current_patient_row()
        self.statusBar().showMessage(
            f"Patient {self.patient_key} marked {'reviewed' if now else 'not reviewed'}", 4000)

    def _refresh_current_patient_row(self) -> None:
        if self.patient_key is None:
            return
        try:  # a filtered query: cheap even with thousands of patients
            found = self.store.patients(patient_key=self.patient_key)
            if not found:
                raise KeyError(f"no patient {self.patient_key!r} in the store")
            self.worklist.model.update_patient(found[0])
        except (StoreError, KeyError) as exc:
            self.report_error("Cannot refresh the worklist", str(exc))
        self.worklist._update_count()

    # =================================================================== images
    def record(self, image_id: int) -> ImageRecord | None:
        return next((r for r in self.records if r.id == image_id), None)

    def image_number(self, image_id: int) -> int:
        return next((i for i, r in enumerate(self.records, start=1) if r.id == image_id), 0)

    def show_image(self, image_id: int) -> None:
        rec = self.record(image_id)
        if rec is None:
            return
        if image_id == self.current_image_id and self.viewer.image is not None:
            return
        self.current_image_id = image_id
        self.thumbnails.select_image(image_id)
        self.ai_panel.highlight_image(image_id)
        self.labels.image.set_image(image_id, rec.labels)
        self.labels.image.setTitle(f"Current image #{self.image_number(image_id)} · {rec.name}")
        img = self._cache.get(image_id)
        if img is not None:
            self._display(image_id, img)
            return
        self._displayed_id = None
        self.viewer.clear(f"Loading {rec.name}…")
        self.rois.set_image(None)
        if image_id in self._decode_errors:
            self._show_decode_error(image_id, self._decode_errors[image_id])
            return
        if image_id not in self._decode_tasks:
            self._decode_tasks[image_id] = workers.submit(
                task_decode, rec.source_path, name="decode",
                on_result=lambda im, i=image_id: self._decoded(i, im),
                on_error=lambda e, i=image_id: self._decode_failed(i, e),
            )

    def _decoded(self, image_id: int, img: Any) -> None:
        self._decode_tasks.pop(image_id, None)
        self._cache_put(image_id, img)
        if image_id == self.current_image_id and self._displayed_id != image_id:
            self._display(image_id, img)

    def _decode_failed(self, image_id: int, exc: BaseException) -> None:
        self._decode_tasks.pop(image_id, None)
        self._decode_errors[image_id] = str(exc)
        if image_id == self.current_image_id:
            self._show_decode_error(image_id, str(exc))

    def _show_decode_error(self, image_id: int, text: str) -> None:
        self._displayed_id = None
        rec = self.record(image_id)
        name = rec.source_path if rec else image_id
        msg = text if str(name) in text else f"{name}: {text}"
        self.viewer.clear()
        self.viewer.show_message(f"Cannot display this image\n\n{msg}", error=True)
        self.statusBar().showMessage(f"Cannot display {msg}", 10000)
        self.errors.append(("Cannot display the image", msg))
        self.errorShown.emit("Cannot display the image", msg)

    def _display(self, image_id: int, img: Any) -> None:
        rec = self.record(image_id)
        if rec is None:
            return
        self._displayed_id = image_id
        view = self.thumbnails.view_text(image_id)
        self.viewer.set_image(img, title=f"#{self.image_number(image_id)} {rec.name}" + (f" · {view}" if view else ""),
                              regions=img.regions or rec.regions, pixel_spacing_mm=img.pixel_spacing_mm, key=image_id)
        self.rois.set_image(image_id, frame=self.viewer.frame)
        self._refresh_cam()
        self.suggest_roi()
        self.imageShown.emit(image_id)

    def _caliper_message(self, text: str) -> None:
        """A measurement in the status bar; "" (calipers gone with their image) takes it away."""
        if text:
            self.statusBar().showMessage(f"Caliper: {text}", 8000)
        elif self.statusBar().currentMessage().startswith("Caliper:"):
            self.statusBar().clearMessage()

    def step_image(self, delta: int) -> None:
        if not self.records:
            return
        ids = [r.id for r in self.records]
        cur = ids.index(self.current_image_id) if self.current_image_id in ids else -1
        nxt = max(0, min(len(ids) - 1, cur + delta))
        if ids[nxt] != self.current_image_id:
            self.show_image(ids[nxt])

    def _frame_changed(self, _frame: int) -> None:
        self._refresh_cam()

    # =================================================================== labels
    def label_current_image(self, label: str) -> None:
        if self.current_image_id is None:
            return
        if self.labels.image.apply_label(label):
            self.statusBar().showMessage(
                f"Image #{self.image_number(self.current_image_id)} labelled {label}", 3000)

    def _image_label_changed(self) -> None:
        image_id = self.labels.image.image_id
        if image_id is None:
            return
        try:
            rec = self.store.image(image_id)
        except (StoreError, KeyError) as exc:
            self.report_error("Cannot re-read the image", str(exc))
            return
        self.records = [rec if r.id == image_id else r for r in self.records]
        self.thumbnails.update_record(rec)
        self._refresh_current_patient_row()

    def _patient_label_changed(self) -> None:
        self._refresh_current_patient_row()

    # ======================================================================= AI
    def analyse(self) -> None:
        if self.patient_key is None or not self.records:
            return
        if self.models_state in ("loading", "idle"):
            self._pending_analysis = True
            self.ai_panel.show_message("The analysis starts when the models are loaded.")
            if self.models_state == "idle":
                self.load_models()
            return
        if self.models_state != "ready" or self.analyzer is None:
            self.ai_panel.set_no_model()
            return
        self.cancel_analysis()
        key = self.patient_key
        self.ai_panel.show_message("")
        self.ai_panel.set_running(True, 0, 0)

        def run(analyzer: Any, patient_key: str, ctx: workers.TaskContext) -> Any:
            from busviewer.ai.results import guard_analysis  # input guard: flags outside the training data

            analysis = analyzer.analyse_patient(patient_key, progress=ctx.progress, cancel=ctx.cancel)
            return guard_analysis(analyzer.store, analysis)

        self._analysis_task = workers.submit(
            run, self.analyzer, key, pool="ai", name="analyse",
            on_progress=lambda d, t, _s, k=key: self._analysis_progress(k, d, t),
            on_result=lambda a, k=key: self._analysis_done(k, a),
            on_error=lambda e, k=key: self._analysis_error(k, e),
        )

    def override_outside(self, on: bool) -> None:
        """The reader classifies the images flagged as outside the training data anyway (or withdraws it)."""
        shown = self.ai_panel.analysis
        if shown is None or shown.patient_key != self.patient_key:
            return
        ids = list(shown.outside if on else shown.overridden)

        def run(store: Any, ctx: workers.TaskContext) -> Any:
            from busviewer.ai.results import guard_analysis
            from busviewer.core.store.flags import set_override

            for image_id in ids:
                set_override(store, image_id, on)
            return guard_analysis(store, shown)

        workers.submit(run, self.store, name="override",
                       on_result=lambda a, k=shown.patient_key: self._override_done(k, a),
                       on_error=lambda e: self.report_error("Override not saved", str(e)))

    def _override_done(self, key: str, analysis: Any) -> None:
        self.analyses[key] = analysis
        self.worklist.model.set_verdict(key, verdict_text(dict(analysis.verdicts)))
        if key == self.patient_key:
            self._show_analysis(analysis)

    def cancel_analysis(self) -> None:
        if self._analysis_task is not None:
            self._analysis_task.cancel()
            self._analysis_task = None
        self.ai_panel.set_running(False)

    def _analysis_progress(self, key: str, done: int, total: int) -> None:
        if key == self.patient_key and self._analysis_task is not None:
            self.ai_panel.set_running(True, done, total)

    def _analysis_done(self, key: str, analysis: Any) -> None:
        self.analyses[key] = analysis
        self.worklist.model.set_verdict(key, verdict_text(dict(analysis.verdicts)))
        if key != self.patient_key:
            return
        self._analysis_task = None
        self.ai_panel.set_running(False)
        self.ai_panel.show_message("")
        self._show_analysis(analysis)
        problems = tuple(getattr(analysis, "problems", ()) or ())
        if problems:
            self.ai_panel.show_message("Not analysed (file problem):\n" + "\n".join(problems), warn=True)
            self.errors.append(("Some images were not analysed", "\n".join(problems)))
            self.errorShown.emit("Some images were not analysed", "\n".join(problems))
        self.analysisFinished.emit(analysis)

    def _show_analysis(self, analysis: Any) -> None:
        self.ai_panel.show_analysis(analysis)
        if self.current_image_id is not None and self._ai_hidden_for(self.current_image_id):
            self.rois.suggestion.clear()  # a Grad-CAM suggestion made before the image was flagged or hidden
        self.thumbnails.set_ai(self.ai_panel.image_short_labels())
        if self.current_image_id is not None:
            self.ai_panel.highlight_image(self.current_image_id)

    def _operating_point_changed(self, name: str) -> None:
        """Later analyses call images at ``name``; what is shown was re-summarised by the panel."""
        if self.analyzer is not None and hasattr(self.analyzer, "set_operating_point"):
            self.analyzer.set_operating_point(name)
        shown = self.ai_panel.analysis
        if shown is not None and self.patient_key is not None and shown.patient_key == self.patient_key:
            self.thumbnails.set_ai(self.ai_panel.image_short_labels())
            self.worklist.model.set_verdict(self.patient_key, verdict_text(dict(shown.verdicts)))

    def _analysis_error(self, key: str, exc: BaseException) -> None:
        if key != self.patient_key:
            return
        self._analysis_task = None
        self.ai_panel.set_running(False)
        if type(exc).__name__ == "NoActiveModel":
            self.ai_panel.set_no_model()
        elif type(exc).__name__ == "Cancelled":
            self.ai_panel.show_message("Analysis cancelled.")
        else:
            self.ai_panel.show_message(f"The analysis failed: {exc}", warn=True)
            self.report_error("Analysis failed", f"Patient {key}: {exc}")
        self.analysisFailed.emit(str(exc))

    # ----------------------------------------------------------------- Grad-CAM
    def _cam_controls_changed(self) -> None:
        self.viewer.set_cam_opacity(self.ai_panel.cam.alpha())
        self._refresh_cam()

    def _refresh_cam(self) -> None:
        cam_ui = self.ai_panel.cam
        image_id = self.current_image_id
        if not cam_ui.is_on() or image_id is None or self.viewer.image is None:
            self.viewer.set_cam(None)
            cam_ui.set_status("")
            return
        arch = cam_ui.architecture()
        key = (image_id, arch, self.viewer.frame)
        if key in self.cams:
            self.viewer.set_cam(self.cams[key], cam_ui.alpha())
            cam_ui.set_status(f"{ARCH_SHORT.get(arch, arch)} on image #{self.image_number(image_id)}"
                              + (f", frame {key[2] + 1}" if self.viewer.frame_count() > 1 else ""))
            return
        self.viewer.set_cam(None)
        if self.viewer.is_playing():
            cam_ui.set_status("Paused while the cine plays")
            return
        if self.models_state != "ready" or self.analyzer is None:
            cam_ui.set_status("Grad-CAM needs an active model" if self.models_state in ("none", "error")
                              else "Waiting for the models to load…")
            return
        if arch not in (getattr(self.analyzer, "cards", None) or {arch: None}):
            cam_ui.set_status(f"No active {ARCH_SHORT.get(arch, arch)} model")
            return
        cam_ui.set_status("Computing Grad-CAM…")
        if key in self._cam_pending:
            return
        self._cam_pending.add(key)
        workers.submit(
            lambda analyzer, k: analyzer.gradcam(k[0], k[1], k[2]), self.analyzer, key, pool="ai", name="gradcam",
            on_result=lambda cam, k=key: self._cam_done(k, cam),
            on_error=lambda e, k=key: self._cam_failed(k, e),
        )

    def _cam_done(self, key: tuple[int, str, int], cam: Any) -> None:
        self._cam_pending.discard(key)
        self.cams[key] = cam
        if key[0] == self.current_image_id:
            self._refresh_cam()
            if self.viewer.has_cam():
                self.camShown.emit(key[0], key[1])

    def _cam_failed(self, key: tuple[int, str, int], exc: BaseException) -> None:
        self._cam_pending.discard(key)
        if key[0] == self.current_image_id:
            self.ai_panel.cam.set_status(f"Grad-CAM failed: {exc}")
            self.report_error("Grad-CAM failed", str(exc))

    # ---------------------------------------------------------------- ROI crops
    def suggest_roi(self) -> None:
        """Ask an AI worker for a suggested ROI on the shown image (if wanted: see SuggestionBar)."""
        from busviewer.ai.roi_suggest import suggest_roi

        image_id, frame = self.current_image_id, self.viewer.frame
        if image_id is None or self._ai_hidden_for(image_id):
            return
        if (image_id is None or self._displayed_id != image_id or self.models_state != "ready"
                or self.analyzer is None or not self.rois.suggestion.begin(image_id, frame, bool(self.rois.items))):
            return
        bar = self.rois.suggestion
        workers.submit(suggest_roi, self.analyzer, image_id, frame, None, self.ai_panel.cam.architecture(),
                       pool="ai", name="suggest roi",
                       on_result=lambda s, i=image_id, f=frame: bar.finish(
                           i, f, *((None, RuntimeError(self._ai_hidden_for(i))) if self._ai_hidden_for(i) else (s,))),
                       on_error=lambda e, i=image_id, f=frame: bar.finish(i, f, None, e))

    def _ai_hidden_for(self, image_id: int) -> str:
        """Why no AI output may be shown for ``image_id`` ("" when it may)."""
        if self.ai_panel.blinded:
            return "the AI result is hidden until your first read"
        shown = self.ai_panel.analysis
        return "outside the model's training data" if shown is not None and image_id in getattr(
            shown, "outside", {}) else ""

    def classify_roi(self, roi_id: int) -> None:
        if self.analyzer is None or self.models_state != "ready":
            self.rois.set_result(roi_id, None, "no active model")
            return
        workers.submit(
            lambda analyzer, r: analyzer.classify_roi(r), self.analyzer, roi_id, pool="ai", name="classify roi",
            on_result=lambda res, r=roi_id: self._roi_done(r, res),
            on_error=lambda e, r=roi_id: self._roi_failed(r, e),
        )

    def _roi_done(self, roi_id: int, result: dict[str, Any]) -> None:
        if roi_id in self.rois.items:
            self.rois.set_result(roi_id, result)
        self.roiClassified.emit(roi_id, result)

    def _roi_failed(self, roi_id: int, exc: BaseException) -> None:
        self.rois.set_result(roi_id, None, f"failed: {exc}")
        self.report_error("ROI not classified", str(exc))

    # =================================================================== import
    def import_files_dialog(self) -> None:
        last = QSettings().value("paths/import", str(Path.home()))
        files, _ = QFileDialog.getOpenFileNames(
            self, "Import files", str(last),
            "Images and manifests (*.dcm *.dicom *.png *.jpg *.jpeg *.csv);;All files (*)")
        if files:
            QSettings().setValue("paths/import", str(Path(files[0]).parent))
            self.import_paths(files)

    def import_folder_dialog(self) -> None:
        last = QSettings().value("paths/import", str(Path.home()))
        folder = QFileDialog.getExistingDirectory(self, "Import folder (one folder per patient, or DICOM)", str(last))
        if folder:
            QSettings().setValue("paths/import", folder)
            self.import_paths([folder])

    def import_paths(self, paths: Sequence[str | Path]) -> workers.Task:
        dialog = ProgressDialog("Importing", self)
        dialog.show()

        def run(store: Store, items: list[str], ctx: workers.TaskContext) -> Any:
            from busviewer.core.importer import import_paths

            return import_paths(store, items, progress=lambda ev: ctx.progress(
                ev.done, ev.total, f"{ev.done} of {ev.total}: {ev.path.name}"), cancel=ctx.cancel)

        def done(report: Any) -> None:
            dialog.close()
            dialog.deleteLater()
            self.activateWindow()
            self.statusBar().showMessage(f"Import: {report.summary()}", 15000)
            if report.problems:
                lines = [str(p) for p in report.problems]
                shown = "\n".join(lines[:12]) + (f"\n… and {len(lines) - 12} more" if len(lines) > 12 else "")
                self.report_error("Some files were not imported",
                                  f"{report.summary()}\n\n{shown}", detail="\n".join(lines), icon=QMessageBox.Icon.Warning)
            self.refresh_worklist()
            self.importFinished.emit(report)

        def failed(exc: BaseException) -> None:
            dialog.close()
            dialog.deleteLater()
            self.report_error("Import failed", str(exc))
            self.importFinished.emit(None)

        task = workers.submit(run, self.store, [str(p) for p in paths], name="import",
                              on_progress=dialog.set_progress, on_result=done, on_error=failed)
        dialog.cancelRequested.connect(task.cancel)
        return task

    # ============================================================ export report
    def export_report_dialog(self) -> None:
        if self.patient_key is None:  # nothing to do yet: a note, not an error
            from busviewer.services.guidance import nothing_to_export

            self.inform("Nothing to export yet", nothing_to_export(self.worklist.model.rowCount() == 0))
            return
        last = QSettings().value("paths/export", str(Path.home()))
        path, _ = QFileDialog.getSaveFileName(
            self, "Export patient report", str(Path(str(last)) / f"{self.patient_key}_report.pdf"), "PDF (*.pdf)")
        if path:
            QSettings().setValue("paths/export", str(Path(path).parent))
            self.export_report(Path(path))

    def export_report(self, out_path: Path) -> workers.Task | None:
        if self.patient_key is None:
            return None
        key = self.patient_key
        analysis = self.analyses.get(key)
        if analysis is not None and getattr(analysis, "stored", False):
            analysis = None
        if analysis is not None and hasattr(analysis, "at"):  # at the reader's operating point
            analysis = analysis.at(self.ai_panel.operating_point())
        ids = {r.id for r in self.records}
        cams = {(iid, arch): cam for (iid, arch, frame), cam in self.cams.items() if iid in ids and frame == 0}
        self.statusBar().showMessage(f"Exporting the report of {key}…")

        def run(store: Store, patient_key: str, path: Path, analysis: Any, cams: dict) -> Path:
            from busviewer.report import export_patient_report

            return export_patient_report(store, patient_key, path, analysis, cams or None)

        def done(path: Any) -> None:
            self.statusBar().showMessage(f"Report saved: {path}", 15000)
            self.reportExported.emit(Path(path))

        def failed(exc: BaseException) -> None:
            what = "the report module is not installed" if isinstance(exc, ModuleNotFoundError) else str(exc)
            self.report_error("Report not exported", f"{out_path}: {what}")
            self.reportExported.emit(None)

        return workers.submit(run, self.store, key, Path(out_path), analysis, cams, name="report",
                              on_result=done, on_error=failed)

    # ============================================================ model dialogs
    def import_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import model", str(Path.home()),
                                              "Model (*.safetensors *.json);;All files (*)")
        if path:
            self.import_model(Path(path))

    def import_model(self, path: Path) -> workers.Task:
        """Model > Import model...: the same audited import as the model manager's."""
        def run(registry: Any, factory: Callable[[], Any], store: Store, p: Path) -> Any:
            return model_service.import_model(registry or factory(), store, p).entry

        def done(entry: Any) -> None:
            self.statusBar().showMessage(
                f"Imported model {entry.card.name} v{entry.card.version} ({entry.card.architecture}); "
                "choose it in Model > Active model", 15000)
            self.models_state = "idle" if self.models_state != "loading" else self.models_state
            self.load_models()

        return workers.submit(run, self.registry, self.registry_factory, self.store, path, pool="ai",
                              name="import model",
                              on_result=done, on_error=lambda e: self.report_error("Model not imported", str(e)))

    def open_training_wizard(self) -> None:
        from busviewer.gui.training_wizard import open_wizard  # lazily: its pages are many widgets

        self._show_dialog(open_wizard(self.store, parent=self))

    def open_model_manager(self) -> None:
        from busviewer.gui.model_manager import open_manager

        self._show_dialog(open_manager(self.store, parent=self))

    def _show_dialog(self, widget: Any) -> None:
        """Show a non-modal tool window; its model changes reload the models here."""
        if widget is None:
            return
        self._optional_dialog = widget
        if not getattr(widget, "_busviewer_connected", False):
            widget._busviewer_connected = True
            widget.finished.connect(lambda *_: self.load_models())
            widget.modelsChanged.connect(self.models_changed)
            if hasattr(widget, "registryChanged"):
                widget.registryChanged.connect(lambda: self.load_models())
        widget.show()

    # ==================================================================== misc
    def show_shortcuts(self) -> None:
        dlg = ShortcutsDialog(self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()

    def _focus_search(self) -> None:
        self.worklist.search.setFocus()
        self.worklist.search.selectAll()

    def _escape(self) -> None:
        from busviewer.gui.viewer import MODE_NAVIGATE

        self.viewer.set_mode(MODE_NAVIGATE)
        if self.focusWidget() is self.worklist.search:
            self.worklist.table.setFocus()

    def inform(self, title: str, text: str) -> None:
        """A friendly note for "nothing to do yet" (not an error; not in ``errors``)."""
        self.statusBar().showMessage(text, 10000)
        if not self._shutting_down:
            message_box(self, title, text, icon=QMessageBox.Icon.Information)
        self.infoShown.emit(title, text)

    def report_error(self, title: str, text: str, detail: str = "",
                     icon: QMessageBox.Icon = QMessageBox.Icon.Critical) -> None:
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
        self.viewer.stop()
        self._cancel_patient_tasks()
        workers.shutdown(timeout_ms)

    def closeEvent(self, event: QCloseEvent) -> None:
        s = QSettings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/splitter", self.splitter.saveState())
        self.shutdown()
        super().closeEvent(event)
