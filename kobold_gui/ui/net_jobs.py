"""Network work off the GUI thread (search, file lists, header reads, downloads) on a
thread pool of its own: a download runs for hours and must not take one of the global
pool's few threads from the window's short jobs. Results, errors and progress come back
to the GUI thread through queued signals; `shutdown` waits for the jobs on quitting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object)
    progress = Signal(object)


class _Job(QRunnable):
    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...], relay: _Relay) -> None:
        super().__init__()
        self.func, self.args, self.relay = func, args, relay

    def run(self) -> None:
        try:
            result = self.func(*self.args)
        except BaseException as e:  # delivered to the GUI thread as a value
            self.relay.failed.emit(e)
        else:
            self.relay.done.emit(result)


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
        relay = _Relay(self)

        def finish(callback: Callable[[Any], None], value: Any) -> None:
            relay.deleteLater()
            callback(value)

        relay.done.connect(lambda value: finish(done, value))
        relay.failed.connect(lambda error: finish(failed, error))
        if progress is not None:
            relay.progress.connect(progress)
            args = (*args, relay.progress.emit)
        self.pool.start(_Job(func, args, relay))

    def shutdown(self, timeout_ms: int = 15000) -> None:
        self.pool.waitForDone(timeout_ms)
