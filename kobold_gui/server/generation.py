"""One API generation: a job on the engine worker (or, while the loaded model holds several
sequences, the `parallel` launch option, a request for the parallel slots,
core/engine/slots.py) whose text flows into the server's event loop. It
builds its prompt tokens on the engine thread (tokenizing and templating need the loaded
model), then streams; cancel() ends it whether it waits or runs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.engine.slot import SlotRequest
from kobold_gui.core.engine.types import EngineError, GenerationResult, SamplingParams
from kobold_gui.core.engine.worker import Job, ModelUnavailable
from kobold_gui.server.state import ServerState

_END = object()


class PromptTooLong(EngineError):
    def __init__(self, prompt_tokens: int, reply_tokens: int, n_ctx: int) -> None:
        super().__init__(
            f"This model's maximum context length is {n_ctx} tokens, however you requested "
            f"{prompt_tokens + reply_tokens} tokens ({prompt_tokens} in the prompt, "
            f"{reply_tokens} for the completion). Please reduce the prompt or max_tokens."
        )
        self.prompt_tokens = prompt_tokens


class ServerBusy(EngineError):
    pass


BuildPrompt = Callable[[Engine], tuple[list[int], SamplingParams]]


class Generation:
    def __init__(
        self,
        state: ServerState,
        build: BuildPrompt,
        endpoint: str,
        client: str,
        stream: bool,
        genkey: str = "",
        kind: str = "completion",
    ) -> None:
        self.state = state
        self.genkey = genkey
        self.loop = asyncio.get_running_loop()
        self.record = state.activity.begin(endpoint, client, stream)
        self.started = False
        self.seed = -1
        self.parts: list[str] = []
        self.outcome = ""  # aborted, disconnected: set by whoever ended it early
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._build = build
        self.job: Job[GenerationResult] | SlotRequest
        if not state.slots.active():
            self.job = Job(
                kind, self._run, client="api", on_start=self._started, on_done=self._done
            )
        else:
            self.job = SlotRequest(
                self._prepare, self._on_text, on_start=self._started, on_done=self._done
            )

    @property
    def text(self) -> str:
        return "".join(self.parts)

    # -- engine thread ------------------------------------------------------------------
    def _run(self, engine: Engine, cancel: threading.Event) -> GenerationResult:
        tokens, params = self._prepare(engine)
        return engine.generate(tokens, params, self._on_text, cancel)

    def _prepare(self, engine: Engine) -> tuple[list[int], SamplingParams]:
        if engine.loaded is None:
            raise ModelUnavailable("no model is loaded; load one in kobold-gui first")
        tokens, params = self._build(engine)
        self.seed = params.seed
        return tokens, params

    def _on_text(self, piece: str) -> None:
        self.parts.append(piece)
        self.state.activity.text(self.record)
        self._post(piece)

    def _started(self, _job: Job[GenerationResult] | SlotRequest) -> None:
        self.started = True
        self.state.activity.started(self.record)

    def _done(self, job: Job[GenerationResult] | SlotRequest) -> None:
        result, error = job.result, job.error
        self.state.remove(self, result)
        if error is not None:
            status, message = "error", str(error)
        else:
            status, message = self.outcome or ("aborted" if job.cancel.is_set() else "done"), ""
        self.state.activity.finished(
            self.record,
            status,
            prompt_tokens=result.prompt_tokens if result else 0,
            tokens=result.generated_tokens if result else None,
            tokens_per_s=result.tokens_per_s if result else 0.0,
            error=message,
        )
        self._post(_END)

    def _post(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody listens
            self.loop.call_soon_threadsafe(self._queue.put_nowait, item)

    # -- event loop -----------------------------------------------------------------------
    def submit(self) -> None:
        """Queue the job, or raise ServerBusy when too many requests wait."""
        state = self.state
        limit = state.settings.max_waiting
        if isinstance(self.job, SlotRequest):  # the first `parallel` requests take slots
            full = state.count() - state.n_slots() >= limit
        else:
            full = state.busy() and state.waiting() >= limit
        if full:
            state.activity.finished(self.record, "error", error="server busy")
            raise ServerBusy("Server is busy; please try again later.")
        state.add(self)
        if isinstance(self.job, SlotRequest):
            state.slots.submit(self.job)
        else:
            state.worker.submit(self.job)

    def cancel(self, outcome: str = "aborted") -> None:
        if not self.job.done:
            self.outcome = self.outcome or outcome
            if isinstance(self.job, SlotRequest):
                self.state.slots.cancel(self.job)
            else:
                self.state.worker.cancel(self.job)

    async def pieces(self) -> AsyncIterator[str]:
        """The text as it comes, until the job ends (then `result()` has the outcome)."""
        while (item := await self._queue.get()) is not _END:
            yield item

    async def first_piece(self, watcher: asyncio.Future[Any]) -> str | None:
        """The first piece of a stream; a generation that failed before any text raises its
        error here (an HTTP error for the client, not a stream that ends at once). The
        watcher of the client's connection is done with afterwards."""
        try:
            first = await self.next_piece(watcher)
        finally:
            watcher.cancel()
        if first is None:
            self.result()  # raises the failure, if it was one
        return first

    async def next_piece(self, watcher: asyncio.Future[Any] | None = None) -> str | None:
        """The next piece of text, None at the end; when `watcher` completes first (the
        client left), the job is cancelled and its end is still awaited."""
        getter: asyncio.Future[Any] = asyncio.ensure_future(self._queue.get())
        while True:
            waits: set[asyncio.Future[Any]] = {getter}
            if watcher is not None and not watcher.done():
                waits.add(watcher)
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                item = getter.result()
                return None if item is _END else str(item)
            self.cancel("disconnected")

    def result(self) -> GenerationResult:
        """The finished job's result; raises its error. Only after pieces() ended."""
        job = self.job
        if job.error is not None:
            raise job.error
        if job.result is None:  # cancelled before it started
            return GenerationResult("", 0, 0, 0, 0.0, 0.0, 0.0, "stopped")
        return job.result

    async def wait(self, watcher: asyncio.Future[Any] | None = None) -> GenerationResult:
        """Wait for the whole text (cancelled when `watcher` completes first)."""
        while await self.next_piece(watcher) is not None:
            pass
        return self.result()


async def client_gone(receive: Callable[[], Any]) -> None:
    """Completes when the HTTP client disconnects (the body has been read already)."""
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return
