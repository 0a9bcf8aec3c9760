"""One thread owns the engine; everyone else submits jobs to it.

The window's chat, the benchmark sweep and every API client share one loaded model. Jobs
run one at a time in the order they came (FIFO across clients, as KoboldCPP's --multiuser
queues them). Each job has its own cancel event, so Stop in the window and an API abort end
only their own generation; a cancelled job that has not started leaves the queue at once.

Loading or unloading pre-empts generations: the running one is stopped and those waiting
fail with ModelUnavailable (an API answers 503), so no client waits on a model that is
going away.

Which engine runs the model is chosen per load (core/engine/choice.py): `load` replaces the
engine with the kind the launch needs (in-process, or a child process for a load over other
machines, or for every load with `isolate`). Jobs get whichever engine is current.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kobold_gui.core.engine.choice import engine_for
from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.protocol import Engine, OnProgress, model_info
from kobold_gui.core.engine.types import EngineError, ModelLost
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.models.gguf_info import GGUFInfo

log = logging.getLogger(__name__)

T = TypeVar("T")

GENERATION_KINDS = frozenset({"chat", "completion", "sweep"})


class ModelUnavailable(EngineError):
    """No model to run the job on: none is loaded, or it is being unloaded or replaced."""


class QueueClosed(EngineError):
    """The worker has shut down (the app is closing)."""


@dataclass(eq=False)
class Job(Generic[T]):
    """A unit of work for the engine thread. `run(engine, cancel)` runs there. Loads go
    through EngineWorker.load, which picks the engine for the launch."""

    kind: str  # load, unload, chat, completion, sweep, call
    run: Callable[[Engine, threading.Event], T]
    client: str = "window"
    on_done: Callable[[Job[T]], None] | None = None
    on_start: Callable[[Job[T]], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    id: int = 0
    state: str = "new"  # new, queued, running, done
    result: T | None = None
    error: BaseException | None = None
    submitted_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    _preempted: str = ""
    _done: threading.Event = field(default_factory=threading.Event)

    @property
    def is_generation(self) -> bool:
        return self.kind in GENERATION_KINDS

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()


class EngineWorker:
    """The job queue and the thread that owns `engine`."""

    def __init__(self, isolate: bool = False, name: str = "engine") -> None:
        self.isolate = isolate  # every load in a child process, not only remote ones
        self.engine: Engine = LocalEngine()  # none loaded; replaced by each load
        self._queue: deque[Job[Any]] = deque()
        self._cond = threading.Condition()
        self._running: Job[Any] | None = None
        self._closed = False
        self._ids = itertools.count(1)
        # Held while the model's pointers change (load, unload) and by tokenize(), which
        # runs on the caller's thread: llama.cpp's tokenizer only reads the vocabulary.
        self._model_lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._lost_listeners: list[Callable[[ModelLost], None]] = []
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # -- state for views ----------------------------------------------------------------
    @property
    def loaded(self) -> LoadedModel | None:
        return self.engine.loaded

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Called (on any thread) whenever a job is queued, starts or ends."""
        self._listeners.append(listener)

    def add_model_lost_listener(self, listener: Callable[[ModelLost], None]) -> None:
        """Called (on the engine thread) when any client's job lost the model (a remote
        machine dropped): the window then shows it unloaded, whoever's request it was."""
        self._lost_listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("engine worker listener failed")

    def running(self) -> Job[Any] | None:
        return self._running

    def queued(self, client: str | None = None) -> list[Job[Any]]:
        with self._cond:
            return [j for j in self._queue if client is None or j.client == client]

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- submitting -------------------------------------------------------------------
    def submit(self, job: Job[T]) -> Job[T]:
        """Queue a job (FIFO). Load and unload first stop the running generation and fail
        the generations waiting before them."""
        with self._cond:
            if self._closed:
                job.error = QueueClosed("the engine has shut down")
                job.state = "done"
                job._done.set()
                self._finish_callbacks(job)
                return job
            job.id = next(self._ids)
            job.submitted_at = time.perf_counter()
            job.state = "queued"
            dropped: list[Job[Any]] = []
            if job.kind in ("load", "unload"):
                reason = (
                    "the model is being unloaded"
                    if job.kind == "unload"
                    else "the model is being replaced by another"
                )
                dropped = [j for j in self._queue if j.is_generation]
                for j in dropped:
                    self._queue.remove(j)
                running = self._running
                if running is not None and running.is_generation:
                    running._preempted = reason
                    running.cancel.set()
            self._queue.append(job)
            self._cond.notify_all()
        for j in dropped:
            self._complete(j, error=ModelUnavailable(f"{reason}; try again when it is loaded"))
        self._notify()
        return job

    def call(self, fn: Callable[[Engine, threading.Event], T], kind: str = "call") -> Job[T]:
        return self.submit(Job(kind=kind, run=fn))

    def load(
        self,
        launch: ResolvedLaunch,
        on_progress: OnProgress | None = None,
        info: GGUFInfo | None = None,
        on_done: Callable[[Job[LoadedModel]], None] | None = None,
        client: str = "window",
    ) -> Job[LoadedModel]:
        """Queue a load of `launch` on the engine it needs; the job's cancel event ends it."""

        def run(_engine: Engine, cancel: threading.Event) -> LoadedModel:
            return self._load(launch, on_progress, cancel, info)

        return self.submit(Job("load", run, client=client, on_done=on_done))

    def _load(
        self,
        launch: ResolvedLaunch,
        on_progress: OnProgress | None,
        cancel: threading.Event,
        info: GGUFInfo | None,
    ) -> LoadedModel:
        """On the engine thread, under the model lock. The file is read before the model in
        use is freed, so a bad file leaves that model loaded."""
        info = model_info(launch, info)
        self.engine.close()
        self.engine = engine_for(launch, self.isolate)
        return self.engine.load(launch, on_progress, cancel, info)

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        """Tokenize on the caller's thread (no wait behind a generation)."""
        with self._model_lock:
            if self.engine.loaded is None:
                raise ModelUnavailable("no model is loaded")
            return self.engine.tokenize(text, add_special=add_special, parse_special=True)

    def check_grammar(self, grammar: str) -> None:
        """SamplerError when a GBNF grammar does not parse, on the caller's thread."""
        with self._model_lock:
            if self.engine.loaded is None:
                raise ModelUnavailable("no model is loaded")
            self.engine.check_grammar(grammar)

    def detokenize(self, tokens: list[int]) -> str:
        """Token ids to text, on the caller's thread."""
        with self._model_lock:
            if self.engine.loaded is None:
                raise ModelUnavailable("no model is loaded")
            return self.engine.detokenize(tokens)

    def cancel(self, job: Job[Any]) -> None:
        """Thread-safe: stop a running job; a waiting one leaves the queue at once."""
        job.cancel.set()
        with self._cond:
            waiting = job in self._queue
            if waiting:
                self._queue.remove(job)
        if waiting:
            self._complete(job, error=None)

    # -- the engine thread --------------------------------------------------------------
    def _next(self) -> Job[Any] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait(0.5)
            if not self._queue:
                return None
            job = self._queue.popleft()
            job.state = "running"
            self._running = job
            return job

    def _loop(self) -> None:
        try:
            while (job := self._next()) is not None:
                self._run(job)
        finally:
            with self._model_lock:
                self.engine.close()

    def _run(self, job: Job[Any]) -> None:
        job.started_at = time.perf_counter()
        self._notify()
        if job.on_start is not None:
            try:
                job.on_start(job)
            except Exception:
                log.exception("job start listener failed")
        result: Any = None
        error: BaseException | None = None
        try:
            if job.cancel.is_set():
                pass  # cancelled between being taken and starting
            elif job.kind in ("load", "unload"):
                with self._model_lock:
                    result = job.run(self.engine, job.cancel)
            else:
                result = job.run(self.engine, job.cancel)
        except BaseException as e:  # handed to the job's owner, never kills the thread
            error = e
        if job._preempted and error is None:
            error = ModelUnavailable(f"{job._preempted}; the reply was stopped")
        with self._cond:
            self._running = None
        self._complete(job, error=error, result=result)

    def _complete(self, job: Job[Any], error: BaseException | None, result: Any = None) -> None:
        """A job that never started ends with neither result nor error (it was cancelled)."""
        job.result, job.error = result, error
        job.finished_at = time.perf_counter()
        job.state = "done"
        job._done.set()
        self._finish_callbacks(job)
        if isinstance(error, ModelLost):  # after the job's own callbacks (its error first)
            for listener in list(self._lost_listeners):
                try:
                    listener(error)
                except Exception:
                    log.exception("model lost listener failed")
        self._notify()

    @staticmethod
    def _finish_callbacks(job: Job[Any]) -> None:
        if job.on_done is not None:
            try:
                job.on_done(job)
            except Exception:
                log.exception("job done listener failed")

    # -- shutdown -----------------------------------------------------------------------
    def close(self, timeout: float = 10.0) -> bool:
        """Stop the running job, fail the waiting ones, free the model. True when the
        thread ended in time."""
        with self._cond:
            self._closed = True
            waiting = list(self._queue)
            self._queue.clear()
            if self._running is not None:
                self._running.cancel.set()
            self._cond.notify_all()
        for j in waiting:
            self._complete(j, error=QueueClosed("the app is closing"))
        self._thread.join(timeout)
        return not self._thread.is_alive()
