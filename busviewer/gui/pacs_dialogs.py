"""Hospital integration in the GUI: File > Query PACS..., PACS nodes..., Send results to
PACS..., Export de-identified..., and the listener indicator in the status bar.

Only widgets live here: every action is a :mod:`busviewer.services` call run by
:func:`busviewer.gui.workers.submit` with plain data (settings, store, keys), never a
QObject; the listener runs in a worker and streams plain :class:`ListenerEvent` values.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from busviewer.dicomnet.nodes import LocalAE, NetworkSettings, RemoteNode, SettingsError, load_settings, save_settings
from busviewer.gui import workers
from busviewer.gui.dialogs import ProgressDialog


# ------------------------------------------------------------------ worker bodies (plain data)
def task_retrieve(store: Any, settings: NetworkSettings, node: str, study_uid: str, ctx: workers.TaskContext) -> Any:
    from busviewer.services.pacs import retrieve

    return retrieve(store, settings, node, study_uid, progress=ctx.progress, cancel=ctx.cancel)


def task_listen(store: Any, local: LocalAE, ctx: workers.TaskContext) -> None:
    from busviewer.services.pacs import Listener

    Listener(store, local).run(ctx.cancel, ctx.partial)


def task_send(
    store: Any, settings: NetworkSettings, node: str, patient: str, analysis: Any, cams: dict, operating_point: str
) -> Any:
    from busviewer.services.results_export import send_results

    return send_results(store, settings, node, patient, analysis, cams or None, operating_point)


def task_deid(store: Any, patients: list[str], out: Path, burned_in: str, ctx: workers.TaskContext) -> Any:
    from busviewer.services.deid import DeidOptions, export_deidentified

    return export_deidentified(store, patients, out, DeidOptions(burned_in=burned_in), ctx.progress, ctx.cancel)


# ------------------------------------------------------------------ dialogs
class NodesDialog(QDialog):
    """The local AE and the remote nodes; Test runs an echo in a worker."""

    def __init__(self, settings: NetworkSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS nodes")
        self.settings = settings
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.aet = QLineEdit(settings.local.ae_title, self)
        self.port = QSpinBox(self)
        self.port.setRange(1, 65535)
        self.port.setValue(settings.local.port)
        form.addRow("This workstation's AE title", self.aet)
        form.addRow("Listener port", self.port)
        lay.addLayout(form)
        self.table = QTableWidget(0, 6, self)
        self.table.setHorizontalHeaderLabels(["Name", "AE title", "Host", "Port", "DICOMweb URL", "Retrieve"])
        for n in settings.nodes:
            self._add_row(n)
        lay.addWidget(self.table)
        row = QHBoxLayout()
        for text, slot in (
            ("Add", lambda: self._add_row(RemoteNode("new", "PACS", "localhost", 104))),
            ("Remove", lambda: self.table.removeRow(self.table.currentRow())),
            ("Test", self.test),
        ):
            b = QPushButton(text, self)
            b.clicked.connect(slot)
            row.addWidget(b)
        self.status = QLabel("", self)
        row.addWidget(self.status, 1)
        lay.addLayout(row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def _add_row(self, n: RemoteNode) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, v in enumerate((n.name, n.ae_title, n.host, str(n.port), n.url, n.retrieve)):
            self.table.setItem(r, c, QTableWidgetItem(v))

    def collect(self) -> NetworkSettings:
        nodes = []
        for r in range(self.table.rowCount()):
            v = [(self.table.item(r, c).text() if self.table.item(r, c) else "").strip() for c in range(6)]
            nodes.append(
                RemoteNode(
                    v[0], v[1], v[2], int(v[3] or 104), "dicomweb" if v[4] else "dimse", v[4], v[5] or "get"
                ).checked()
            )
        return NetworkSettings(
            replace(self.settings.local, ae_title=self.aet.text().strip(), port=self.port.value()), tuple(nodes)
        )

    def save(self) -> None:
        try:
            self.settings = self.collect()
            save_settings(self.settings)
        except (SettingsError, ValueError) as exc:
            self.status.setText(f"Not saved: {exc}")
            return
        self.accept()

    def test(self) -> None:
        try:
            settings = self.collect()
        except (SettingsError, ValueError) as exc:
            self.status.setText(str(exc))
            return
        row = max(0, self.table.currentRow())
        if not settings.nodes:
            return
        name = settings.nodes[min(row, len(settings.nodes) - 1)].name
        from busviewer.services.pacs import echo

        self.status.setText(f"Testing {name}…")
        label = self.status
        workers.submit(
            echo,
            settings,
            name,
            name="echo",
            on_result=lambda t: label.setText(f"{name}: answered in {t * 1000:.0f} ms"),
            on_error=lambda e: label.setText(str(e)),
        )


class QueryDialog(QDialog):
    """Search a node, then retrieve the chosen studies into the store (progress, cancel)."""

    def __init__(self, window: Any, settings: NetworkSettings) -> None:
        super().__init__(window)
        self.setWindowTitle("Query PACS")
        self.window_, self.settings = window, settings
        self.results: list[Any] = []
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.node = QComboBox(self)
        self.node.addItems([n.name for n in settings.nodes])
        self.patient_id, self.name_, self.date = QLineEdit(self), QLineEdit(self), QLineEdit(self)
        self.date.setPlaceholderText("YYYYMMDD or YYYYMMDD-YYYYMMDD")
        self.modality = QLineEdit("US", self)
        for text, w in (
            ("Node", self.node),
            ("Patient ID", self.patient_id),
            ("Patient name", self.name_),
            ("Study date", self.date),
            ("Modality", self.modality),
        ):
            form.addRow(text, w)
        lay.addLayout(form)
        self.search_button = QPushButton("Search", self)
        self.search_button.clicked.connect(self.search)
        lay.addWidget(self.search_button)
        self.table = QTableWidget(0, 5, self)
        self.table.setHorizontalHeaderLabels(["Patient ID", "Name", "Date", "Images", "Study UID"])
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        lay.addWidget(self.table)
        self.status = QLabel("", self)
        lay.addWidget(self.status)
        self.retrieve_button = QPushButton("Retrieve selected", self)
        self.retrieve_button.clicked.connect(self.retrieve)
        lay.addWidget(self.retrieve_button)

    def search(self) -> workers.Task:
        from busviewer.services.pacs import Query, find

        q = Query(
            self.patient_id.text().strip(),
            self.name_.text().strip(),
            self.date.text().strip(),
            self.modality.text().strip(),
        )
        self.status.setText("Searching…")
        return workers.submit(
            find,
            self.settings,
            self.node.currentText(),
            q,
            "STUDY",
            name="pacs find",
            on_result=self._found,
            on_error=lambda e: self.status.setText(str(e)),
        )

    def _found(self, results: list[Any]) -> None:
        self.results = results
        self.table.setRowCount(0)
        for r in results:
            i = self.table.rowCount()
            self.table.insertRow(i)
            for c, v in enumerate((r.patient_id, r.patient_name, r.study_date, str(r.instances or ""), r.study_uid)):
                self.table.setItem(i, c, QTableWidgetItem(v))
        self.status.setText(f"{len(results)} stud{'y' if len(results) == 1 else 'ies'} found")

    def retrieve(self, rows: list[int] | None = None) -> list[workers.Task]:
        rows = rows if rows is not None else sorted({i.row() for i in self.table.selectedIndexes()})
        tasks = []
        status = self.status
        for row in rows:
            uid = self.results[row].study_uid
            dialog = ProgressDialog(f"Retrieving {uid}", self)
            dialog.show()

            def done(report: Any, d: ProgressDialog = dialog) -> None:
                d.close()
                status.setText(report.summary())
                self.window_.refresh_worklist()
                if report.incomplete or report.rejected:
                    self.window_.report_error("Retrieve incomplete", report.summary(), icon=QMessageBox.Icon.Warning)

            def failed(exc: BaseException, d: ProgressDialog = dialog) -> None:
                d.close()
                status.setText(str(exc))
                self.window_.report_error("Retrieve failed", str(exc))

            task = workers.submit(
                task_retrieve,
                self.window_.store,
                self.settings,
                self.node.currentText(),
                uid,
                name="pacs retrieve",
                on_progress=dialog.set_progress,
                on_result=done,
                on_error=failed,
            )
            dialog.cancelRequested.connect(task.cancel)
            tasks.append(task)
        return tasks


# ------------------------------------------------------------------ the window's hooks
class PacsActions:
    """What :func:`install_pacs` adds to the main window (kept as ``window.pacs``)."""

    def __init__(self, window: Any, menu: QMenu) -> None:
        self.window = window
        self.listener_task: workers.Task | None = None
        self.events: list[Any] = []
        window.pacs = self
        menu.addAction("Query PACS…", self.open_query)
        menu.addAction("PACS nodes…", self.open_nodes)
        self.act_listen = menu.addAction("Listen for pushed studies", self.toggle_listener)
        self.act_listen.setCheckable(True)
        menu.addAction("Send results to PACS…", self.send_dialog)
        menu.addAction("Export de-identified…", self.deid_dialog)
        self.indicator = QLabel("Listener: off", window)
        self.indicator.setObjectName("listenerStatus")
        window.statusBar().addPermanentWidget(self.indicator)
        try:
            if load_settings().local.listen_on_start:
                self.toggle_listener(True)
        except SettingsError:
            pass

    def settings(self) -> NetworkSettings | None:
        try:
            return load_settings()
        except SettingsError as exc:
            self.window.report_error("PACS settings unreadable", str(exc))
            return None

    def open_nodes(self) -> NodesDialog | None:
        s = self.settings()
        if s is None:
            return None
        dlg = NodesDialog(s, self.window)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()
        return dlg

    def open_query(self) -> QueryDialog | None:
        s = self.settings()
        if s is None:
            return None
        if not s.nodes:
            self.window.report_error(
                "No PACS node", "Add a node first: File > PACS nodes…", icon=QMessageBox.Icon.Information
            )
            return None
        dlg = QueryDialog(self.window, s)
        dlg.show()
        self.query_dialog = dlg
        return dlg

    def toggle_listener(self, on: bool | None = None) -> None:
        if not isinstance(on, bool):
            on = self.listener_task is None
        if not on:
            if self.listener_task is not None:
                self.listener_task.cancel()
            return
        s = self.settings()
        if s is None or self.listener_task is not None:
            return
        self.indicator.setText(f"Listener: starting ({s.local.ae_title}:{s.local.port})")
        self.listener_task = workers.submit(
            task_listen,
            self.window.store,
            s.local,
            name="listener",
            on_partial=self._event,
            on_error=self._listener_failed,
            on_finished=self._listener_stopped,
        )

    def _event(self, ev: Any) -> None:
        self.events.append(ev)
        if ev.kind == "started":
            self.indicator.setText(f"Listener: on ({ev.text.split('listening as ')[-1]})")
            self.act_listen.setChecked(True)
        elif ev.kind == "imported":
            self.window.statusBar().showMessage(f"Received {ev.text}", 8000)
            self.window.refresh_worklist()
        elif ev.kind == "problem":
            self.window.statusBar().showMessage(f"Listener: {ev.text}", 15000)

    def _listener_failed(self, exc: BaseException) -> None:
        self.window.report_error("Listener stopped", str(exc))

    def _listener_stopped(self) -> None:
        self.listener_task = None
        self.indicator.setText("Listener: off")
        self.act_listen.setChecked(False)

    def send_dialog(self, node: str | None = None) -> workers.Task | None:
        w = self.window
        s = self.settings()
        if s is not None and (w.patient_key is None or not s.nodes):  # nothing to do yet: a note, not an error
            w.inform(
                "Nothing to send yet",
                "Open an analysed patient first."
                if s.nodes
                else "Add a PACS node first (File > PACS nodes…), then open an analysed patient.",
            )
            return None
        if s is None:
            return None
        if node is None:
            from PySide6.QtWidgets import QInputDialog

            node, ok = QInputDialog.getItem(w, "Send results to PACS", "Node", [n.name for n in s.nodes], 0, False)
            if not ok:
                return None
        point = w.ai_panel.operating_point()
        analysis = w.analyses.get(w.patient_key)
        analysis = analysis.at(point) if analysis is not None and hasattr(analysis, "at") else None
        ids = {r.id for r in w.records}
        cams = {(iid, arch): cam for (iid, arch, frame), cam in w.cams.items() if iid in ids and frame == 0}

        def done(result: Any) -> None:
            bundle, sent = result
            text = f"Sent {len(sent.sent)} object(s) to {node} (SR + {len(bundle.sc_paths)} Grad-CAM image(s))"
            w.statusBar().showMessage(text, 15000)
            if sent.problems:
                w.report_error("Some results were not sent", "\n".join(sent.problems))

        return workers.submit(
            task_send,
            w.store,
            s,
            node,
            w.patient_key,
            analysis,
            cams,
            point,
            name="send results",
            on_result=done,
            on_error=lambda e: w.report_error("Results not sent", str(e)),
        )

    def deid_dialog(self, out: Path | None = None, burned_in: str | None = None) -> workers.Task | None:
        w = self.window
        patients = [w.patient_key] if w.patient_key else []
        if not patients:
            w.inform("Nothing to export yet", "Open the patient to export first (from the worklist).")
            return None
        if out is None:
            folder = QFileDialog.getExistingDirectory(w, "Export de-identified into")
            if not folder:
                return None
            out = Path(folder)
        if burned_in is None:
            box = QMessageBox(
                QMessageBox.Icon.Question,
                "Burned-in annotation",
                "Ultrasound images often carry burned-in patient text. Images whose Burned In "
                "Annotation is YES or absent are flagged. Blank everything outside the ultrasound "
                "tissue region, or refuse those images?",
                parent=w,
            )
            blank = box.addButton("Blank outside tissue", QMessageBox.ButtonRole.AcceptRole)
            box.addButton("Refuse them", QMessageBox.ButtonRole.RejectRole)
            box.exec()
            burned_in = "blank" if box.clickedButton() is blank else "refuse"
        dialog = ProgressDialog("Exporting de-identified", w)
        dialog.show()

        def done(report: Any) -> None:
            dialog.close()
            w.statusBar().showMessage(report.summary(), 15000)
            if report.refused:
                w.report_error(
                    "Some images were not exported",
                    report.summary() + "\n\n" + "\n".join(report.refused),
                    icon=QMessageBox.Icon.Warning,
                )

        def failed(exc: BaseException) -> None:
            dialog.close()
            w.report_error("De-identified export failed", str(exc))

        task = workers.submit(
            task_deid,
            w.store,
            patients,
            out,
            burned_in,
            name="deid export",
            on_progress=dialog.set_progress,
            on_result=done,
            on_error=failed,
        )
        dialog.cancelRequested.connect(task.cancel)
        return task


def install_pacs(window: Any, menu: QMenu) -> PacsActions:
    """Add the hospital-integration actions to ``menu`` and the listener indicator."""
    return PacsActions(window, menu)
