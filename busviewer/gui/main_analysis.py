"""The main window's analysis controller: running the models on the open patient (in
workers), showing results and Grad-CAM overlays, ROI suggestion and ROI classification.

A mixin of :class:`busviewer.gui.main_window.MainWindow` (its state and widgets are the window's)."""

from __future__ import annotations

import logging
from typing import Any

from busviewer.gui import workers
from busviewer.gui.ai_panel import ARCH_SHORT
from busviewer.gui.tasks import (
    verdict_text,
)

log = logging.getLogger(__name__)


class AnalysisMixin:
    """Methods of :class:`~busviewer.gui.main_window.MainWindow`."""

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
            run,
            self.analyzer,
            key,
            pool="ai",
            name="analyse",
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

        workers.submit(
            run,
            self.store,
            name="override",
            on_result=lambda a, k=shown.patient_key: self._override_done(k, a),
            on_error=lambda e: self.report_error("Override not saved", str(e)),
        )

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
            cam_ui.set_status(
                f"{ARCH_SHORT.get(arch, arch)} on image #{self.image_number(image_id)}"
                + (f", frame {key[2] + 1}" if self.viewer.frame_count() > 1 else "")
            )
            return
        self.viewer.set_cam(None)
        if self.viewer.is_playing():
            cam_ui.set_status("Paused while the cine plays")
            return
        if self.models_state != "ready" or self.analyzer is None:
            cam_ui.set_status(
                "Grad-CAM needs an active model"
                if self.models_state in ("none", "error")
                else "Waiting for the models to load…"
            )
            return
        if arch not in (getattr(self.analyzer, "cards", None) or {arch: None}):
            cam_ui.set_status(f"No active {ARCH_SHORT.get(arch, arch)} model")
            return
        cam_ui.set_status("Computing Grad-CAM…")
        if key in self._cam_pending:
            return
        self._cam_pending.add(key)
        workers.submit(
            lambda analyzer, k: analyzer.gradcam(k[0], k[1], k[2]),
            self.analyzer,
            key,
            pool="ai",
            name="gradcam",
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

    def suggest_roi(self) -> None:
        """Ask an AI worker for a suggested ROI on the shown image (if wanted: see SuggestionBar)."""
        from busviewer.ai.roi_suggest import suggest_roi

        image_id, frame = self.current_image_id, self.viewer.frame
        if image_id is None or self._ai_hidden_for(image_id):
            return
        if (
            image_id is None
            or self._displayed_id != image_id
            or self.models_state != "ready"
            or self.analyzer is None
            or not self.rois.suggestion.begin(image_id, frame, bool(self.rois.items))
        ):
            return
        bar = self.rois.suggestion
        workers.submit(
            suggest_roi,
            self.analyzer,
            image_id,
            frame,
            None,
            self.ai_panel.cam.architecture(),
            pool="ai",
            name="suggest roi",
            on_result=lambda s, i=image_id, f=frame: bar.finish(
                i, f, *((None, RuntimeError(self._ai_hidden_for(i))) if self._ai_hidden_for(i) else (s,))
            ),
            on_error=lambda e, i=image_id, f=frame: bar.finish(i, f, None, e),
        )

    def classify_roi(self, roi_id: int) -> None:
        if self.analyzer is None or self.models_state != "ready":
            self.rois.set_result(roi_id, None, "no active model")
            return
        workers.submit(
            lambda analyzer, r: analyzer.classify_roi(r),
            self.analyzer,
            roi_id,
            pool="ai",
            name="classify roi",
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
