"""What the server is doing, for the Server panel: requests running and queued, the last
requests with their tokens, speed, time to first token and errors. Qt-free and thread-safe:
listeners are told (on any thread, at most every `notify_s`) that something changed."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

HISTORY = 50


@dataclass
class RequestRecord:
    id: int
    endpoint: str
    client: str
    stream: bool
    queued_at: float = field(default_factory=time.perf_counter)
    started_at: float = 0.0
    first_text_at: float = 0.0
    finished_at: float = 0.0
    prompt_tokens: int = 0
    tokens: int = 0  # while running: pieces of text so far; then the generated tokens
    tokens_per_s: float = 0.0
    status: str = "queued"  # queued, running, done, aborted, disconnected, error
    error: str = ""

    @property
    def ttft_s(self) -> float | None:
        return self.first_text_at - self.queued_at if self.first_text_at else None


@dataclass(frozen=True)
class ActivitySnapshot:
    running: int
    queued: int
    total: int
    errors: int
    records: tuple[RequestRecord, ...]  # newest first (copies)


class ActivityLog:
    def __init__(self, notify_s: float = 0.2) -> None:
        self._lock = threading.Lock()
        self._active: dict[int, RequestRecord] = {}
        self._done: deque[RequestRecord] = deque(maxlen=HISTORY)
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[], None]] = []
        self._notify_s = notify_s
        self._last_notify = 0.0
        self.total = 0
        self.errors = 0

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, force: bool = True) -> None:
        now = time.perf_counter()
        if not force and now - self._last_notify < self._notify_s:
            return
        self._last_notify = now
        for listener in list(self._listeners):
            listener()

    def begin(self, endpoint: str, client: str, stream: bool) -> RequestRecord:
        with self._lock:
            record = RequestRecord(next(self._ids), endpoint, client, stream)
            self._active[record.id] = record
            self.total += 1
        self._notify()
        return record

    def refused(self, endpoint: str, client: str, status: int, message: str) -> None:
        """A request answered with an error before it became a generation (a bad body,
        a wrong API key, an unknown path)."""
        record = self.begin(endpoint, client, stream=False)
        self.finished(record, "error", error=f"{status}: {message}")

    def started(self, record: RequestRecord) -> None:
        with self._lock:
            record.started_at = time.perf_counter()
            record.status = "running"
        self._notify()

    def text(self, record: RequestRecord) -> None:
        with self._lock:
            if not record.first_text_at:
                record.first_text_at = time.perf_counter()
            record.tokens += 1
        self._notify(force=False)

    def finished(
        self,
        record: RequestRecord,
        status: str,
        prompt_tokens: int = 0,
        tokens: int | None = None,
        tokens_per_s: float = 0.0,
        error: str = "",
    ) -> None:
        with self._lock:
            if record.status not in ("queued", "running"):
                return  # already ended (an abort raced the job's end)
            record.finished_at = time.perf_counter()
            record.status = status
            record.prompt_tokens = prompt_tokens or record.prompt_tokens
            if tokens is not None:
                record.tokens = tokens
            record.tokens_per_s = tokens_per_s
            record.error = error
            self._active.pop(record.id, None)
            self._done.appendleft(record)
            if status == "error":
                self.errors += 1
        self._notify()

    def snapshot(self) -> ActivitySnapshot:
        with self._lock:
            active = [replace(r) for r in reversed(self._active.values())]
            records = tuple(active + [replace(r) for r in self._done])
            return ActivitySnapshot(
                running=sum(r.status == "running" for r in active),
                queued=sum(r.status == "queued" for r in active),
                total=self.total,
                errors=self.errors,
                records=records,
            )
