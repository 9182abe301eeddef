"""The main window's reading flow: opening a patient (decoding in workers, thumbnails,
a bounded cache of decoded images), stepping through images and patients, labels, review.

A mixin of :class:`busviewer.gui.main_window.MainWindow` (its state and widgets are the window's)."""

from __future__ import annotations

import logging
from typing import Any

from busviewer.core.store import ImageRecord, StoreError
from busviewer.gui import workers
from busviewer.gui.tasks import (
    stored_analysis,
    task_decode,
    task_decode_patient,
)
from busviewer.gui.thumbnails import Thumbnail, make_thumbnail

log = logging.getLogger(__name__)

#: Keep decoded images of the open patient (and a few before) in memory, up to this size.
CACHE_BYTES = 768 * 1024 * 1024


class PatientMixin:
    """Methods of :class:`~busviewer.gui.main_window.MainWindow`."""

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
                task_decode_patient,
                [r for r in records if r.id not in self._cache],
                name="thumbnails",
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
        self.statusBar().showMessage(f"Patient {self.patient_key} marked {'reviewed' if now else 'not reviewed'}", 4000)

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
                task_decode,
                rec.source_path,
                name="decode",
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
        self.viewer.set_image(
            img,
            title=f"#{self.image_number(image_id)} {rec.name}" + (f" · {view}" if view else ""),
            regions=img.regions or rec.regions,
            pixel_spacing_mm=img.pixel_spacing_mm,
            key=image_id,
        )
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

    def label_current_image(self, label: str) -> None:
        if self.current_image_id is None:
            return
        if self.labels.image.apply_label(label):
            self.statusBar().showMessage(f"Image #{self.image_number(self.current_image_id)} labelled {label}", 3000)

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

    def _ai_hidden_for(self, image_id: int) -> str:
        """Why no AI output may be shown for ``image_id`` ("" when it may)."""
        if self.ai_panel.blinded:
            return "the AI result is hidden until your first read"
        shown = self.ai_panel.analysis
        return (
            "outside the model's training data"
            if shown is not None and image_id in getattr(shown, "outside", {})
            else ""
        )
