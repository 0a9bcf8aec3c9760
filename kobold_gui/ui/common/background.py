"""Short jobs off the GUI thread (reading a GGUF header, scanning a folder, detecting the
backend) on Qt's global thread pool. Only the newest job of a kind delivers its result.

A QRunnable runs the function; a QObject owned by the GUI thread carries the result back
through a queued signal, so callbacks always run on the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class Relay(QObject):
    """Lives on the GUI thread; a job's result, error or progress reaches it queued."""

    done = Signal(object)
    failed = Signal(object)
    progress = Signal(object)


class Job(QRunnable):
    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...], relay: Relay) -> None:
        super().__init__()
        self.func, self.args, self.relay = func, args, relay

    def run(self) -> None:
        try:
            result = self.func(*self.args)
        except BaseException as e:  # delivered to the GUI thread as a value
            self.relay.failed.emit(e)
        else:
            self.relay.done.emit(result)


class LatestJob(QObject):
    """Runs a function in the thread pool; a newer run makes older results stale."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._generation = 0

    def run(
        self,
        func: Callable[..., Any],
        *args: Any,
        done: Callable[[Any], None],
        failed: Callable[[BaseException], None],
    ) -> None:
        self._generation += 1
        mine = self._generation
        relay = Relay(self)

        def finish(callback: Callable[[Any], None], value: Any) -> None:
            relay.deleteLater()
            if mine == self._generation:
                callback(value)

        relay.done.connect(lambda value: finish(done, value))
        relay.failed.connect(lambda error: finish(failed, error))
        QThreadPool.globalInstance().start(Job(func, args, relay))


def wait_for_background_jobs(timeout_ms: int = 5000) -> None:
    QThreadPool.globalInstance().waitForDone(timeout_ms)
