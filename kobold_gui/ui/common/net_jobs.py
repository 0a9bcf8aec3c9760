"""Network work off the GUI thread (search, file lists, header reads, downloads) on threads
of its own, at most `threads` at once: a download runs for hours and must not take one of
the global pool's few threads from the window's short jobs. Results, errors and progress
come back to the GUI thread through queued signals.

The threads are daemon threads, not a QThreadPool's: a call stuck on the network (a hub
that accepts the connection and never answers, until its read limit) never keeps the
window from closing or the app from quitting. `shutdown` waits only for the jobs that asked
for it (downloads, which stop at their next chunk once paused), and only so long.

A job may so outlive the panel that asked for it. Its relay therefore has no parent (it
lives until its answer is delivered, never deleted under the thread that emits on it), and
an answer that comes after `shutdown`, or after this object is destroyed, is dropped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject

from kobold_gui.ui.common.background import Relay


class NetJobs(QObject):
    def __init__(self, parent: QObject | None = None, threads: int = 6) -> None:
        super().__init__(parent)
        self._slots = threading.BoundedSemaphore(threads)
        self._awaited: set[threading.Thread] = set()  # jobs quitting waits for
        self._lock = threading.Lock()
        self._open = threading.Event()  # answers are delivered while set
        self._open.set()
        self.destroyed.connect(self._open.clear)

    def run(
        self,
        func: Callable[..., Any],
        *args: Any,
        done: Callable[[Any], None],
        failed: Callable[[BaseException], None],
        progress: Callable[[Any], None] | None = None,
        await_on_quit: bool = False,
    ) -> None:
        """Run func(*args) on a thread; with `progress`, func gets a last argument: a
        callback that carries a value to `progress` on the GUI thread."""
        relay = Relay()  # no parent: see the module's docstring
        open_ = self._open

        def finish(callback: Callable[[Any], None], value: Any) -> None:
            relay.deleteLater()
            if open_.is_set():
                callback(value)

        relay.done.connect(lambda value: finish(done, value))
        relay.failed.connect(lambda error: finish(failed, error))
        if progress is not None:
            relay.progress.connect(lambda value: open_.is_set() and progress(value))
            args = (*args, relay.progress.emit)
        thread = threading.Thread(
            target=self._work, args=(func, args, relay), name="net-job", daemon=True
        )
        if await_on_quit:
            with self._lock:
                self._awaited.add(thread)
        thread.start()

    def _work(self, func: Callable[..., Any], args: tuple[Any, ...], relay: Relay) -> None:
        with self._slots:
            try:
                result = func(*args)
            except BaseException as e:  # delivered to the GUI thread as a value
                outcome, value = relay.failed, e
            else:
                outcome, value = relay.done, result
        try:
            outcome.emit(value)
        except RuntimeError:  # the window that asked is gone: nobody waits for the answer
            pass
        finally:
            with self._lock:
                self._awaited.discard(threading.current_thread())

    @property
    def awaited(self) -> int:
        """How many jobs that quitting waits for are still running."""
        with self._lock:
            return len(self._awaited)

    def shutdown(self, timeout_s: float = 15.0) -> None:
        """Wait, at most timeout_s in all, for the jobs started with await_on_quit; no
        answer is delivered after this."""
        self._open.clear()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            awaited = list(self._awaited)
        for thread in awaited:
            thread.join(max(0.0, deadline - time.monotonic()))
