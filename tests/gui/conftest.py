"""GUI test fixtures: offscreen Qt, isolated settings, tiny random-weight models, leak checks."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from PySide6.QtCore import QCoreApplication, QSettings, QThread, QThreadPool, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from qt_gc_guard import FinalisationRecorder, ForcedWorkerGC  # noqa: E402

MODEL_INPUT = 64


# ------------------------------------------------------------------ app, settings
@pytest.fixture(scope="session")
def qapp_args() -> list[str]:
    return ["busviewer-tests"]


@pytest.fixture(scope="session", autouse=True)
def _isolated_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """QSettings go to a temporary folder, never the user's."""
    folder = tmp_path_factory.mktemp("qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    QCoreApplication.setOrganizationName("busviewer-tests")
    QCoreApplication.setApplicationName("busviewer-tests")


@pytest.fixture(scope="session")
def styled_app(qapp: QApplication) -> QApplication:
    from busviewer.gui.app import apply_style

    apply_style(qapp)
    return qapp


# ----------------------------------------------------------------------- leaks
def _running_qthreads() -> list[QThread]:
    out = []
    for obj in gc.get_objects():
        try:
            if issubclass(type(obj), QThread) and obj is not QThread.currentThread() and obj.isRunning():
                out.append(obj)
        except RuntimeError:  # wrapper of a deleted C++ object
            continue
    return out


def _ours(obj: object) -> bool:
    return type(obj).__module__.startswith(("busviewer", "tests", "test_", "gui_helpers"))


def _active_timers() -> list[str]:
    """Active QTimers created by busviewer (Qt's own, e.g. a status message timeout, are not ours)."""
    found = []
    for top in QApplication.topLevelWidgets():
        for timer in top.findChildren(QTimer):
            if timer.isActive() and (_ours(timer.parent()) or timer.objectName().startswith("busviewer")):
                found.append(
                    f"{type(top).__name__}/{timer.parent().__class__.__name__}:{timer.objectName() or 'timer'}"
                )
    return found


@pytest.fixture(autouse=True)
def no_leaked_work(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if a worker, QThread or QTimer of ours is still running at teardown."""
    yield
    if "qapp" not in request.fixturenames and "qtbot" not in request.fixturenames:
        return
    from busviewer.gui import workers

    # A delivery may start follow-up work (e.g. the worklist refresh after a store change
    # reported while the widgets were closing): settle a few rounds; endless work still fails.
    for _ in range(5):
        assert workers.wait_all(60_000), "background work did not finish within 60 s"
        QApplication.processEvents()
        if not workers.running_tasks():
            break
    problems = []
    for pool in workers.all_pools():
        if pool.activeThreadCount() != 0:
            problems.append(f"{pool.objectName() or 'global'} pool has {pool.activeThreadCount()} active thread(s)")
    if QThreadPool.globalInstance().activeThreadCount() != 0:
        problems.append("global QThreadPool still busy")
    pending = [t.name for t in workers.running_tasks()]
    if pending:
        problems.append(f"tasks never delivered: {pending}")
    threads = _running_qthreads()
    if threads:
        problems.append(f"QThreads still running: {threads}")
    timers = _active_timers()
    if timers:
        problems.append(f"QTimers still active: {timers}")
    assert not problems, "; ".join(problems)


# ------------------------------------------------- QObjects finalised in workers (issue 18)
@pytest.fixture(scope="session")
def finalisation_recorder(qapp: QApplication) -> Iterator[FinalisationRecorder]:
    recorder = FinalisationRecorder()
    recorder.install()
    yield recorder
    recorder.uninstall()


@pytest.fixture(autouse=True)
def qobjects_finalised_on_gui_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a Qt test if any QObject wrapper was finalised outside the GUI thread during it:
    ``QObject::~QObject`` in a worker can deadlock with the GUI thread."""
    if "qapp" not in request.fixturenames and "qtbot" not in request.fixturenames:
        yield
        return
    recorder = request.getfixturevalue("finalisation_recorder")
    start = len(recorder.off_gui)
    yield
    from busviewer.gui import workers

    workers.wait_all(60_000)
    QApplication.processEvents()
    off = recorder.off_gui[start:]
    assert not off, f"{len(off)} QObject(s) finalised outside the GUI thread: {off[:10]}"


@pytest.fixture
def forced_worker_gc(finalisation_recorder: FinalisationRecorder) -> Iterator[ForcedWorkerGC]:
    """While the test runs: cyclic GC thresholds so low that any thread that allocates
    collects, and GUI-thread churn of menus/widgets in reference cycles for it to find."""
    forced = ForcedWorkerGC(finalisation_recorder)
    forced.start()
    yield forced
    forced.stop()
    from busviewer.gui import workers

    workers.wait_all(60_000)
    QApplication.processEvents()
    gc.collect()  # the churn's garbage, on the GUI thread


# ---------------------------------------------------------------------- models
@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one random-weight ensemble and one VGG-16 (input 64), both active."""
    import torch

    from busviewer.ai.modelcard import ModelCard
    from busviewer.ai.networks import build_model
    from busviewer.ai.registry import ModelRegistry

    folder = tmp_path_factory.mktemp("models")
    empty = tmp_path_factory.mktemp("shipped")
    reg = ModelRegistry(user_dir=folder, shipped_dir=empty)
    torch.manual_seed(0)
    for arch, name in (("ensemble", "test-ensemble"), ("vgg16", "test-vgg")):
        model = build_model(arch, "bmode", pretrained=False)
        card = ModelCard(
            name=name,
            version=1,
            architecture=arch,
            input_size=MODEL_INPUT,
            pretrained_init="random",
            description="random weights for GUI tests",
        )
        entry = reg.save(model, card)
        reg.activate(entry.card.name, entry.card.version)
        del model
    return folder


# ------------------------------------------------------------------------ data
@pytest.fixture(scope="session")
def dicom_2frame() -> Path:
    data_store = pytest.importorskip("data_store")
    p = Path(data_store.__file__).parent / "data" / "OBXXXX1A_2frame.dcm"
    if not p.is_file():
        pytest.skip("pydicom-data file OBXXXX1A_2frame.dcm not found")
    return p
