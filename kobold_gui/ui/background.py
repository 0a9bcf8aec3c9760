"""Short jobs off the GUI thread (reading a GGUF header, scanning a folder), via superqt's
workers on the global thread pool. Only the newest job of a kind delivers its result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool
from superqt.utils import create_worker


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

        def on_done(result: Any) -> None:
            if mine == self._generation:
                done(result)

        def on_error(error: BaseException) -> None:
            if mine == self._generation:
                failed(error)

        create_worker(
            func, *args, _start_thread=True, _ignore_errors=True,
            _connect={"returned": on_done, "errored": on_error},
        )


def wait_for_background_jobs(timeout_ms: int = 5000) -> None:
    QThreadPool.globalInstance().waitForDone(timeout_ms)
