"""The window's side of the engine: a thin Qt adapter over the core job runner
(core/engine/worker.py), whose thread owns the engine. The window's requests become jobs in
the same queue as the API's; their results come back as signals on the GUI thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from kobold_gui.core.benchmark.results import Candidate, SweepRow
from kobold_gui.core.benchmark.sweep import run_sweep
from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.engine.types import (
    EngineError,
    GenerationResult,
    LoadCancelled,
    SamplingParams,
)
from kobold_gui.core.engine.worker import EngineWorker, Job
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.models.gguf_info import GGUFInfo, ModelFileError

# Streamed text reaches the GUI at most this often: a burst of 1000+ tokens/s becomes ~30
# updates/s, each appending a chunk, so the GUI thread never falls behind.
TEXT_FLUSH_S = 0.033


def _stopped_before_start() -> GenerationResult:
    return GenerationResult("", 0, 0, 0, 0.0, 0.0, 0.0, "stopped")


class EngineController(QObject):
    """Owned by the window (GUI thread). Every signal is emitted on the GUI thread: the
    engine thread hands its events to `_post`, a queued connection to `_deliver`."""

    loadProgress = Signal(float)
    loaded = Signal(object)  # LoadedModel
    loadFailed = Signal(str, bool, object)  # message, cancelled, LoadedModel still loaded
    unloaded = Signal()
    text = Signal(str)
    replyFinished = Signal(object)  # GenerationResult
    replyFailed = Signal(str)
    sweepRow = Signal(int, object)  # index, SweepRow
    sweepFinished = Signal(object)  # list[SweepRow]

    _post = Signal(str, object)  # signal name, argument tuple

    def __init__(self, parent: QObject | None = None, worker: EngineWorker | None = None):
        super().__init__(parent)
        self.worker = worker or EngineWorker()
        self._post.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        # The model's engine process ended (a remote machine dropped), in the window's reply
        # or an API client's: either way the window shows it unloaded.
        self.worker.add_model_lost_listener(lambda _e: self._emit("unloaded"))
        self._load_job: Job[Any] | None = None
        self._reply_job: Job[Any] | None = None

    @Slot(str, object)
    def _deliver(self, name: str, args: tuple[object, ...]) -> None:
        getattr(self, name).emit(*args)

    def _emit(self, name: str, *args: object) -> None:
        self._post.emit(name, args)

    # -- loading ------------------------------------------------------------------------
    def load(self, launch: ResolvedLaunch, info: GGUFInfo | None = None) -> None:
        last = [-1.0]

        def progress(value: float) -> None:
            if value - last[0] >= 0.01 or value >= 1.0:
                last[0] = value
                self._emit("loadProgress", value)

        self._load_job = self.worker.load(launch, progress, info, on_done=self._load_done)

    def _load_done(self, job: Job[LoadedModel]) -> None:
        still = self.worker.loaded
        e = job.error
        if job.result is not None and e is None:
            self._emit("loaded", job.result)
        elif isinstance(e, LoadCancelled) or (e is None and job.cancel.is_set()):
            self._emit("loadFailed", "Loading was cancelled.", True, still)
        elif isinstance(e, (EngineError, ModelFileError)):
            self._emit("loadFailed", str(e), False, still)
        else:  # a bug: say it instead of dying silently
            message = f"unexpected error while loading: {type(e).__name__}: {e}"
            self._emit("loadFailed", message, False, still)

    def cancel_load(self) -> None:
        if self._load_job is not None:
            self.worker.cancel(self._load_job)

    def unload(self) -> None:
        def run(engine: Engine, _cancel: threading.Event) -> None:
            engine.close()

        self.worker.submit(Job("unload", run, on_done=lambda _job: self._emit("unloaded")))

    # -- chat ---------------------------------------------------------------------------
    def send(self, messages: Sequence[Message], params: SamplingParams) -> None:
        messages = list(messages)
        buffer: list[str] = []
        last_flush = [time.perf_counter()]

        def on_text(piece: str) -> None:
            buffer.append(piece)
            now = time.perf_counter()
            if now - last_flush[0] >= TEXT_FLUSH_S:
                self._emit("text", "".join(buffer))
                buffer.clear()
                last_flush[0] = now

        def run(engine: Engine, cancel: threading.Event) -> GenerationResult:
            try:
                return engine.chat(messages, params, on_text, cancel)
            finally:
                if buffer:
                    self._emit("text", "".join(buffer))
                    buffer.clear()

        self._reply_job = self.worker.submit(Job("chat", run, on_done=self._reply_done))

    def _reply_done(self, job: Job[GenerationResult]) -> None:
        e = job.error
        if e is None:
            self._emit("replyFinished", job.result or _stopped_before_start())
        elif isinstance(e, EngineError):
            self._emit("replyFailed", str(e))
        else:
            self._emit("replyFailed", f"unexpected error: {type(e).__name__}: {e}")

    # -- benchmark sweep ------------------------------------------------------------------
    def sweep(self, candidates: list[Candidate], prompt: int, gen: int, repeats: int = 1) -> None:
        def run(engine: Engine, cancel: threading.Event) -> list[SweepRow]:
            return run_sweep(
                engine,
                candidates,
                prompt,
                gen,
                lambda i, r: self._emit("sweepRow", i, r),
                cancel,
                repeats=repeats,
            )

        def done(job: Job[list[SweepRow]]) -> None:
            if job.error is not None:  # any error: said, and the window gets Load back
                self._emit("replyFailed", str(job.error))
            self._emit("sweepFinished", job.result or [])

        # Stop and close cancel a sweep as a reply
        self._reply_job = self.worker.submit(Job("sweep", run, on_done=done))

    def stop(self) -> None:
        """Thread-safe and immediate: ends only the window's own reply or sweep."""
        if self._reply_job is not None:
            self.worker.cancel(self._reply_job)

    def is_finished(self) -> bool:
        return not self.worker.alive

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Stop whatever runs, end the thread, free the model. True when it ended in time."""
        self.cancel_load()
        self.stop()
        return self.worker.close(timeout_ms / 1000)
