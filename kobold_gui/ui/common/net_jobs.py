"""Network work off the GUI thread (search, file lists, header reads, downloads) on a
thread pool of its own: a download runs for hours and must not take one of the global
pool's few threads from the window's short jobs. Results, errors and progress come back
to the GUI thread through queued signals; `shutdown` waits for the jobs on quitting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool

from kobold_gui.ui.common.background import Job, Relay


class NetJobs(QObject):
    def __init__(self, parent: QObject | None = None, threads: int = 6) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)

    def run(
        self,
        func: Callable[..., Any],
        *args: Any,
        done: Callable[[Any], None],
        failed: Callable[[BaseException], None],
        progress: Callable[[Any], None] | None = None,
    ) -> None:
        """Run func(*args) on the pool; with `progress`, func gets a last argument: a
        callback that carries a value to `progress` on the GUI thread."""
        relay = Relay(self)

        def finish(callback: Callable[[Any], None], value: Any) -> None:
            relay.deleteLater()
            callback(value)

        relay.done.connect(lambda value: finish(done, value))
        relay.failed.connect(lambda error: finish(failed, error))
        if progress is not None:
            relay.progress.connect(progress)
            args = (*args, relay.progress.emit)
        self.pool.start(Job(func, args, relay))

    def shutdown(self, timeout_ms: int = 15000) -> None:
        self.pool.waitForDone(timeout_ms)
