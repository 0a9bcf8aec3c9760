"""Network jobs that outlive the panel that asked: the answer is dropped, nothing crashes,
and quitting waits only for the jobs that asked for it."""

from __future__ import annotations

import threading

from PySide6.QtCore import QCoreApplication, QEvent
from pytestqt.qtbot import QtBot

from kobold_gui.ui.common.net_jobs import NetJobs


def test_an_answer_after_the_asker_is_gone_is_dropped(qtbot: QtBot) -> None:
    release, finished = threading.Event(), threading.Event()
    answers: list[object] = []

    def slow() -> str:
        release.wait(10)
        finished.set()
        return "late"

    jobs = NetJobs()
    jobs.run(slow, done=answers.append, failed=answers.append)
    jobs.deleteLater()  # the panel closes while the job still waits on the network
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    release.set()
    assert finished.wait(10)
    qtbot.wait(50)  # the queued answer, if any, would arrive now
    assert answers == []


def test_shutdown_waits_for_awaited_jobs_only(qtbot: QtBot) -> None:
    hang, download_done = threading.Event(), threading.Event()
    answers: list[object] = []
    jobs = NetJobs()
    jobs.run(lambda: hang.wait(10), done=answers.append, failed=answers.append)
    jobs.run(download_done.set, done=answers.append, failed=answers.append, await_on_quit=True)
    jobs.shutdown(timeout_s=5)
    assert download_done.is_set() and jobs.awaited == 0
    hang.set()
    qtbot.wait(50)
    assert answers == []  # nothing is delivered after shutdown
