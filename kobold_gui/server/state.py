"""What the API's routes share: the engine worker, the settings, the activity log, the
generations in flight by genkey, and KoboldCPP's counters for /api/extra/perf."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from kobold_gui.core.engine.slots import ParallelSlots, slots_for
from kobold_gui.core.engine.types import GenerationResult, TokenLogprob
from kobold_gui.core.engine.worker import EngineWorker
from kobold_gui.core.models.names import display_stem
from kobold_gui.server.activity import ActivityLog, RequestRecord


class Generation(Protocol):
    """What the shared state knows of a request in flight (server/generation.py's
    Generation); a protocol, so that state and generation do not import each other."""

    record: RequestRecord
    genkey: str
    started: bool
    seed: int

    @property
    def text(self) -> str: ...

    def cancel(self, outcome: str = "aborted") -> None: ...


DEFAULT_PORT = 5001
DEFAULT_HOST = "127.0.0.1"
DEFAULT_WAITING = 16  # requests that may wait behind the running one (--multiuser 1)
DEFAULT_MAX_REQUEST_MB = 32.0  # KoboldCPP's --maxrequestsize default
KEPT_TEXTS = 64  # finished generations whose text /api/extra/generate/check still returns


@dataclass(frozen=True)
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str = ""
    multiuser: int = 1  # KoboldCPP's: 0 = busy answers 503, 1 = default queue, N = N at once
    max_request_mb: float = DEFAULT_MAX_REQUEST_MB  # larger bodies are answered 413
    preload_story: str = ""  # a KoboldAI Lite story file /api/extra/preloadstory serves
    # How many generate at once is the loaded model's `parallel` launch option (its
    # n_seq_max; ServerState.n_slots), not a server setting: the window's chat shares them.

    @property
    def max_waiting(self) -> int:
        if self.multiuser <= 0:
            return 0
        return self.multiuser - 1 if self.multiuser > 1 else DEFAULT_WAITING


def settings_from_args(args: Any) -> ServerSettings:
    """--port, --host, --password, --multiuser, --maxrequestsize, --preloadstory; where not
    given, those of a --config KoboldCPP file (`args.kcpps_server`, set by whoever read it);
    else the defaults. (--parallel is a launch option: core/launch/options.py.)"""
    file: dict[str, Any] = getattr(args, "kcpps_server", None) or {}

    def pick(name: str) -> Any:
        value = getattr(args, name, None)
        return file.get(name) if value is None else value

    port, multiuser, size = pick("port"), pick("multiuser"), pick("maxrequestsize")
    return ServerSettings(
        host=pick("host") or DEFAULT_HOST,
        port=DEFAULT_PORT if port is None else port,
        api_key=pick("password") or "",
        multiuser=1 if multiuser is None else multiuser,
        max_request_mb=DEFAULT_MAX_REQUEST_MB if not size or size <= 0 else size,
        preload_story=pick("preloadstory") or "",
    )


class ServerState:
    def __init__(self, worker: EngineWorker, settings: ServerSettings) -> None:
        self.worker = worker
        self.settings = settings
        # The worker's one scheduler of parallel slots, shared with the window's chat; used
        # while the loaded model holds several sequences (else the worker's queue).
        self.slots: ParallelSlots = slots_for(worker)
        self.activity = ActivityLog()
        self.started = time.time()
        self.last_request = time.time()
        self._lock = threading.Lock()
        self.active: dict[int, Generation] = {}  # by record id, in order of arrival
        self.by_genkey: dict[str, Generation] = {}
        self.finished_texts: OrderedDict[str, str] = OrderedDict()
        self.finished_logprobs: OrderedDict[str, tuple[TokenLogprob, ...]] = OrderedDict()
        self.last_genkey = ""
        self.total_gens = 0
        self.last: GenerationResult | None = None
        self.last_seed = -1

    def model_name(self) -> str:
        loaded = self.worker.loaded
        if loaded is None:
            return "koboldcpp/no-model-loaded"
        return f"koboldcpp/{display_stem(loaded.info.path)}"  # an Ollama blob by its name:tag

    def n_slots(self) -> int:
        """Requests generated at once: the loaded model's `parallel` (1: the queue)."""
        return self.slots.n_slots

    def waiting(self) -> int:
        with self._lock:
            return sum(not g.started for g in self.active.values())

    def count(self) -> int:
        """Requests running or waiting."""
        with self._lock:
            return len(self.active)

    def busy(self) -> bool:
        with self._lock:
            return bool(self.active)

    def add(self, gen: Generation) -> None:
        with self._lock:
            self.active[gen.record.id] = gen
            if gen.genkey:
                self.by_genkey[gen.genkey] = gen
        self.last_request = time.time()

    def remove(self, gen: Generation, result: GenerationResult | None) -> None:
        with self._lock:
            self.active.pop(gen.record.id, None)
            if gen.genkey and self.by_genkey.get(gen.genkey) is gen:
                del self.by_genkey[gen.genkey]
                self.finished_texts[gen.genkey] = gen.text
                self.finished_logprobs[gen.genkey] = result.logprobs if result else ()
                while len(self.finished_texts) > KEPT_TEXTS:
                    self.finished_texts.popitem(last=False)
                while len(self.finished_logprobs) > KEPT_TEXTS:
                    self.finished_logprobs.popitem(last=False)
            if result is not None:
                self.total_gens += 1
                self.last = result
                self.last_seed = gen.seed
                self.last_genkey = gen.genkey

    def last_unkeyed_logprobs(self) -> tuple[TokenLogprob, ...]:
        """The last request's logprobs when it was sent without a genkey."""
        with self._lock:
            last = self.last
            return last.logprobs if last is not None and not self.last_genkey else ()

    def running(self) -> Generation | None:
        with self._lock:
            return next((g for g in self.active.values() if g.started), None)

    def find(self, genkey: str) -> Generation | None:
        with self._lock:
            return self.by_genkey.get(genkey)

    def all_active(self) -> list[Generation]:
        with self._lock:
            return list(self.active.values())


def server_state(request: Any) -> ServerState:
    """The server's state, from a request to it (app.py keeps it on the FastAPI app)."""
    state: ServerState = request.app.state.server
    return state
