"""The window's side of the engine: a thin Qt adapter over the core job runner
(core/engine/worker.py), whose thread owns the engine. The window's requests become jobs in
the same queue as the API's, and its chat replies, while the loaded model holds several
sequences (the `parallel` launch option), requests of the same parallel slots as the API's
(core/engine/slots.py): one more client, generating beside them. Results come back as
signals on the GUI thread."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from kobold_gui.core.benchmark.results import Candidate, SweepRow
from kobold_gui.core.benchmark.sweep import run_sweep
from kobold_gui.core.engine.child_process import end_children
from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.engine.slot import SlotRequest
from kobold_gui.core.engine.slots import slots_for
from kobold_gui.core.engine.text_batcher import ENGINE_TO_GUI_S, TextBatcher
from kobold_gui.core.engine.types import (
    EngineError,
    GenerationResult,
    LoadCancelled,
    SamplingParams,
)
from kobold_gui.core.engine.worker import EngineWorker, Job
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.models.gguf_info import GGUFInfo, ModelFileError
from kobold_gui.ui.engine.events import (
    EngineEvent,
    Loaded,
    LoadFailed,
    LoadProgress,
    ReplyFailed,
    ReplyFinished,
    SweepEstimate,
    SweepFinished,
    SweepRowDone,
    Text,
    Unloaded,
)


def _stopped_before_start() -> GenerationResult:
    return GenerationResult("", 0, 0, 0, 0.0, 0.0, 0.0, "stopped")


class EngineController(QObject):
    """Owned by the window (GUI thread). Every signal is emitted on the GUI thread: the
    engine thread posts typed events (ui/engine/events.py) through `_post`, a queued
    connection to `_deliver`."""

    loadProgress = Signal(float)
    loaded = Signal(object)  # LoadedModel
    loadFailed = Signal(str, bool, object)  # message, cancelled, LoadedModel still loaded
    unloaded = Signal()
    modelLost = Signal(str)  # why (after `unloaded`): a machine lost, the engine ended
    text = Signal(str)
    replyFinished = Signal(object)  # GenerationResult
    replyFailed = Signal(str)
    sweepRow = Signal(int, object)  # index, SweepRow
    sweepEstimate = Signal(float)  # seconds the whole sweep will take (after its warm-up)
    sweepFinished = Signal(object)  # list[SweepRow]

    _post = Signal(object)  # an EngineEvent

    def __init__(self, parent: QObject | None = None, worker: EngineWorker | None = None):
        super().__init__(parent)
        self.worker = worker or EngineWorker()
        self._post.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        # The model's engine process ended (a remote machine dropped or froze), in the
        # window's reply or an API client's: either way the window shows it unloaded, and why.
        self.worker.add_model_lost_listener(lambda e: self._post.emit(Unloaded(str(e))))
        self._load_job: Job[Any] | None = None
        self._reply_job: Job[Any] | None = None
        self._reply_request: SlotRequest | None = None  # the chat's reply in the slots

    @Slot(object)
    def _deliver(self, event: EngineEvent) -> None:
        if isinstance(event, LoadProgress):
            self.loadProgress.emit(event.value)
        elif isinstance(event, Loaded):
            self.loaded.emit(event.model)
        elif isinstance(event, LoadFailed):
            self.loadFailed.emit(event.message, event.cancelled, event.still_loaded)
        elif isinstance(event, Unloaded):
            self.unloaded.emit()
            if event.reason:
                self.modelLost.emit(event.reason)
        elif isinstance(event, Text):
            self.text.emit(event.text)
        elif isinstance(event, ReplyFinished):
            self.replyFinished.emit(event.result)
        elif isinstance(event, ReplyFailed):
            self.replyFailed.emit(event.message)
        elif isinstance(event, SweepRowDone):
            self.sweepRow.emit(event.index, event.row)
        elif isinstance(event, SweepEstimate):
            self.sweepEstimate.emit(event.seconds)
        else:
            self.sweepFinished.emit(event.rows)

    # -- loading ------------------------------------------------------------------------
    def load(self, launch: ResolvedLaunch, info: GGUFInfo | None = None) -> None:
        last = [-1.0]

        def progress(value: float) -> None:
            if value - last[0] >= 0.01 or value >= 1.0:
                last[0] = value
                self._post.emit(LoadProgress(value))

        self._load_job = self.worker.load(launch, progress, info, on_done=self._load_done)

    def _load_done(self, job: Job[LoadedModel]) -> None:
        still = self.worker.loaded
        e = job.error
        if job.result is not None and e is None:
            self._post.emit(Loaded(job.result))
        elif isinstance(e, LoadCancelled) or (e is None and job.cancel.is_set()):
            self._post.emit(LoadFailed("Loading was cancelled.", True, still))
        elif isinstance(e, (EngineError, ModelFileError)):
            self._post.emit(LoadFailed(str(e), False, still))
        else:  # a bug: say it instead of dying silently
            message = f"unexpected error while loading: {type(e).__name__}: {e}"
            self._post.emit(LoadFailed(message, False, still))

    def cancel_load(self) -> None:
        if self._load_job is not None:
            self.worker.cancel(self._load_job)

    def unload(self) -> None:
        def run(engine: Engine, _cancel: threading.Event) -> None:
            engine.close()

        self.worker.submit(Job("unload", run, on_done=lambda _job: self._post.emit(Unloaded())))

    # -- chat ---------------------------------------------------------------------------
    def send(self, messages: Sequence[Message], params: SamplingParams) -> None:
        """Streamed text reaches the GUI gathered (core/engine/text_batcher.py:
        ENGINE_TO_GUI_S), all of it before the reply's end."""
        messages = list(messages)
        batcher = TextBatcher(lambda text: self._post.emit(Text(text)), ENGINE_TO_GUI_S)
        slots = slots_for(self.worker)
        if slots.active():
            self._reply_request = slots.submit(self._slot_request(messages, params, batcher))
            return

        def run(engine: Engine, cancel: threading.Event) -> GenerationResult:
            with batcher:
                return engine.chat(messages, params, batcher.add, cancel)

        def done(job: Job[GenerationResult]) -> None:
            self._reply_ended(job.result, job.error)

        self._reply_job = self.worker.submit(Job("chat", run, on_done=done))

    def _slot_request(
        self, messages: list[Message], params: SamplingParams, batcher: TextBatcher
    ) -> SlotRequest:
        """The reply as a request of the parallel slots: its prompt is made on the engine
        thread when it takes a slot, as the queue's job makes it."""
        dropped = [0]

        def prepare(engine: Engine) -> tuple[list[int], SamplingParams]:
            tokens, dropped[0] = engine.chat_prompt(messages, params.max_tokens)
            return tokens, params

        def done(request: SlotRequest) -> None:
            batcher.flush()
            result = request.result
            if result is not None and dropped[0]:
                result = replace(result, dropped_messages=dropped[0])
            self._reply_ended(result, request.error)

        return SlotRequest(prepare, batcher.add, on_done=done)

    def _reply_ended(self, result: GenerationResult | None, e: BaseException | None) -> None:
        if e is None:
            self._post.emit(ReplyFinished(result or _stopped_before_start()))
        elif isinstance(e, EngineError):
            self._post.emit(ReplyFailed(str(e)))
        else:
            self._post.emit(ReplyFailed(f"unexpected error: {type(e).__name__}: {e}"))

    # -- benchmark sweep ------------------------------------------------------------------
    def sweep(self, candidates: list[Candidate], prompt: int, gen: int, repeats: int = 1) -> None:
        def row(index: int, measured: SweepRow) -> None:
            self._post.emit(SweepRowDone(index, measured))

        def run(engine: Engine, cancel: threading.Event) -> list[SweepRow]:
            return run_sweep(
                engine, candidates, prompt, gen, row, cancel, repeats=repeats,
                on_estimate=lambda seconds: self._post.emit(SweepEstimate(seconds)),
            )  # fmt: skip

        def done(job: Job[list[SweepRow]]) -> None:
            if job.error is not None:  # any error: said, and the window gets Load back
                self._post.emit(ReplyFailed(str(job.error)))
            self._post.emit(SweepFinished(job.result or []))

        # Stop and close cancel a sweep as a reply
        self._reply_job = self.worker.submit(Job("sweep", run, on_done=done))

    def stop(self) -> None:
        """Thread-safe and immediate: ends only the window's own reply or sweep (a reply in
        the slots stops at their next step; the API's requests beside it go on)."""
        if self._reply_job is not None:
            self.worker.cancel(self._reply_job)
        if self._reply_request is not None:
            slots_for(self.worker).cancel(self._reply_request)

    def is_finished(self) -> bool:
        return not self.worker.alive

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Stop whatever runs, end the thread, free the model. True when it ended in time.
        An engine child still running then is ended: none outlives the window."""
        self.cancel_load()
        self.stop()
        ended = self.worker.close(timeout_ms / 1000)
        if not ended:
            end_children()
        return ended
