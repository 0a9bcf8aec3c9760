"""The one thread that writes chats: the window hands it small journal records and returns at
once; it writes them in order, coalescing what piled up into one append, syncs each dirty
journal to the disk at most once a second, and compacts a journal that grew large. No Qt:
errors go to a callback (the window turns it into a message)."""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.chats.types import ChatSummary, Conversation, Op

SYNC_EVERY_S = 1.0  # a dirty journal is fsynced this long after its first unsynced write
COMPACT_AT_BYTES = 256 * 1024  # a journal this large is folded into a new snapshot


@dataclass
class _Append:
    conv_id: str
    ops: list[Op]
    summary: ChatSummary | None = None


@dataclass
class _Call:
    func: Callable[[], object]
    done: threading.Event = field(default_factory=threading.Event)


_STOP = object()


class ChatWriter:
    def __init__(
        self,
        store: ChatStore,
        on_error: Callable[[str], None] | None = None,
        compact_at: int = COMPACT_AT_BYTES,
    ) -> None:
        self.store = store
        self.on_error = on_error or (lambda _message: None)
        self.compact_at = compact_at
        self._queue: queue.Queue[object] = queue.Queue()
        self._dirty: dict[str, float] = {}  # journal -> when its first unsynced write was
        self._thread = threading.Thread(target=self._run, name="chat-writer", daemon=True)
        self._thread.start()

    # -- asked from the GUI thread: each returns at once ------------------------------------
    def append(self, conv_id: str, ops: list[Op], summary: ChatSummary | None = None) -> None:
        self._queue.put(_Append(conv_id, ops, summary))

    def save(self, conv: Conversation) -> None:
        """A whole snapshot (a copy is taken now: the caller goes on changing conv)."""
        snapshot = copy.deepcopy(conv)
        self.call(lambda: self.store.save(snapshot))

    def compact(self, conv_id: str) -> None:
        self.call(lambda: self._compact(conv_id))

    def call(self, func: Callable[[], object]) -> threading.Event:
        """Runs func on the writer thread after what was asked before; the event is set
        when it has run."""
        job = _Call(func)
        self._queue.put(job)
        return job.done

    def drain(self, timeout: float = 30.0) -> bool:
        """Waits until everything asked so far is written."""
        return self.call(lambda: None).wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Writes what is queued, syncs, ends the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._next_sync_in())
            except queue.Empty:
                self._sync_due()
                continue
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(job is _STOP for job in batch)
            self._do(batch)
            self._sync_due(everything=stop)
            if stop:
                return

    def _do(self, batch: list[object]) -> None:
        pending: _Append | None = None
        for job in [*batch, None]:
            if isinstance(job, _Append) and pending and pending.conv_id == job.conv_id:
                pending.ops += job.ops
                pending.summary = job.summary or pending.summary
                continue
            if pending is not None:
                self._guarded(lambda p=pending: self._append(p))  # type: ignore[misc]
                pending = None
            if isinstance(job, _Append):
                pending = _Append(job.conv_id, list(job.ops), job.summary)
            elif isinstance(job, _Call):
                self._guarded(job.func)
                job.done.set()

    def _append(self, job: _Append) -> None:
        size = self.store.append(job.conv_id, job.ops, job.summary)
        self._dirty.setdefault(job.conv_id, time.monotonic())
        if size >= self.compact_at:
            self._compact(job.conv_id)

    def _compact(self, conv_id: str) -> None:
        self.store.save(self.store.load(conv_id))
        self._dirty.pop(conv_id, None)

    def _guarded(self, func: Callable[[], object]) -> None:
        try:
            func()
        except OSError as e:
            self.on_error(f"Chat not saved: {e}")
        except Exception as e:  # a bug: say it rather than end the thread
            self.on_error(f"Chat not saved: unexpected {type(e).__name__}: {e}")

    def _next_sync_in(self) -> float | None:
        if not self._dirty:
            return None
        return max(0.0, min(self._dirty.values()) + SYNC_EVERY_S - time.monotonic())

    def _sync_due(self, everything: bool = False) -> None:
        now = time.monotonic()
        for conv_id, since in list(self._dirty.items()):
            if everything or now - since >= SYNC_EVERY_S:
                del self._dirty[conv_id]
                self._guarded(lambda c=conv_id: self.store.sync(c))  # type: ignore[misc]
