"""The main window's file actions: importing studies and exporting the patient report.

A mixin of :class:`busviewer.gui.main_window.MainWindow` (its state and widgets are the window's)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QFileDialog,
    QMessageBox,
)

from busviewer.core.store import Store
from busviewer.gui import workers
from busviewer.gui.dialogs import ProgressDialog

log = logging.getLogger(__name__)


class FilesMixin:
    """Methods of :class:`~busviewer.gui.main_window.MainWindow`."""

    def import_files_dialog(self) -> None:
        last = QSettings().value("paths/import", str(Path.home()))
        files, _ = QFileDialog.getOpenFileNames(
            self,
            "Import files",
            str(last),
            "Images and manifests (*.dcm *.dicom *.png *.jpg *.jpeg *.csv);;All files (*)",
        )
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

            return import_paths(
                store,
                items,
                progress=lambda ev: ctx.progress(ev.done, ev.total, f"{ev.done} of {ev.total}: {ev.path.name}"),
                cancel=ctx.cancel,
            )

        def done(report: Any) -> None:
            dialog.close()
            dialog.deleteLater()
            self.activateWindow()
            self.statusBar().showMessage(f"Import: {report.summary()}", 15000)
            if report.problems:
                lines = [str(p) for p in report.problems]
                shown = "\n".join(lines[:12]) + (f"\n… and {len(lines) - 12} more" if len(lines) > 12 else "")
                self.report_error(
                    "Some files were not imported",
                    f"{report.summary()}\n\n{shown}",
                    detail="\n".join(lines),
                    icon=QMessageBox.Icon.Warning,
                )
            self.refresh_worklist()
            self.importFinished.emit(report)

        def failed(exc: BaseException) -> None:
            dialog.close()
            dialog.deleteLater()
            self.report_error("Import failed", str(exc))
            self.importFinished.emit(None)

        task = workers.submit(
            run,
            self.store,
            [str(p) for p in paths],
            name="import",
            on_progress=dialog.set_progress,
            on_result=done,
            on_error=failed,
        )
        dialog.cancelRequested.connect(task.cancel)
        return task

    def export_report_dialog(self) -> None:
        if self.patient_key is None:  # nothing to do yet: a note, not an error
            from busviewer.services.guidance import nothing_to_export

            self.inform("Nothing to export yet", nothing_to_export(self.worklist.model.rowCount() == 0))
            return
        last = QSettings().value("paths/export", str(Path.home()))
        path, _ = QFileDialog.getSaveFileName(
            self, "Export patient report", str(Path(str(last)) / f"{self.patient_key}_report.pdf"), "PDF (*.pdf)"
        )
        if path:
            QSettings().setValue("paths/export", str(Path(path).parent))
            self.export_report(Path(path))

    def export_report(self, out_path: Path) -> workers.Task | None:
        if self.patient_key is None:
            return None
        if self.ai_panel.blinded:  # the report holds the AI result: not before the reader's first read
            self.inform(
                "Record your first read first",
                "The report shows the AI result, which stays hidden until you record your own call "
                "(benign/malignant and BI-RADS) for this patient.",
            )
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

        return workers.submit(
            run, self.store, key, Path(out_path), analysis, cams, name="report", on_result=done, on_error=failed
        )
