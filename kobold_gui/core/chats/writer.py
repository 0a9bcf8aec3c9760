"""The one thread that writes the window's chats: the window hands it small operations and
returns at once; it writes them in order, coalescing what piled up for one chat into one
transaction, and checkpoints the database (synced to the disk) at most once a second.

A write that fails for want of room (a full disk), a lock held too long or an I/O error
leaves the database as it was (one transaction) and is kept, in order with every later
write, and tried again on the next write or after RETRY_S: nothing is lost while the window
stays open. The user is told once per such spell (on_error), and again when it is written.
No Qt: messages go to a callback (the window shows them)."""

from __future__ import annotations

import contextlib
import copy
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kobold_gui.core.chats.db import is_full
from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.chats.types import ChatSummary, Conversation, Op

SYNC_EVERY_S = 1.0  # the log is checkpointed this long after its first unsynced write
RETRY_S = 1.0  # writes kept after a failure are tried again this often (and on each write)


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
Job = _Append | _Call


class ChatWriter:
    def __init__(self, store: ChatStore, on_error: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.on_error = on_error or (lambda _message: None)
        self._queue: queue.Queue[object] = queue.Queue()
        self._dirty: float | None = None  # when the first unsynced write was
        self._pending: list[Job] = []  # failed writes and those after them, in order
        self._failing = False  # in a spell of failed writes (said once)
        self._thread = threading.Thread(target=self._run, name="chat-writer", daemon=True)
        self._thread.start()

    # -- asked from the GUI thread: each returns at once ------------------------------------
    def append(self, conv_id: str, ops: list[Op], summary: ChatSummary | None = None) -> None:
        self._queue.put(_Append(conv_id, ops, summary))

    def save(self, conv: Conversation) -> None:
        """The whole conversation (a copy is taken now: the caller goes on changing conv)."""
        snapshot = copy.deepcopy(conv)
        self.call(lambda: self.store.save(snapshot))

    def compact(self, conv_id: str) -> None:
        """A turn ended: the log is checkpointed (the file store folded its journal here)."""
        self.call(lambda: self.store.sync(conv_id))

    def call(self, func: Callable[[], object]) -> threading.Event:
        """Runs func on the writer thread after what was asked before; the event is set
        when it has run (or was kept for a retry)."""
        job = _Call(func)
        self._queue.put(job)
        return job.done

    def drain(self, timeout: float = 30.0) -> bool:
        """Waits until everything asked so far is written (or kept for a retry)."""
        return self.call(lambda: None).wait(timeout)

    @property
    def unsaved(self) -> int:
        """Writes kept after a failure, not yet in the database."""
        return len(self._pending)

    def close(self, timeout: float = 30.0) -> None:
        """Writes what is queued (one more try for what failed), syncs, ends the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._wait())
            except queue.Empty:
                self._retry()
                self._sync_due()
                continue
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(job is _STOP for job in batch)
            self._retry()
            for job in _coalesced(batch):
                self._do(job)
            self._sync_due(everything=stop)
            if stop:
                return

    def _wait(self) -> float | None:
        waits = [RETRY_S] if self._pending else []
        if self._dirty is not None:
            waits.append(max(0.0, self._dirty + SYNC_EVERY_S - time.monotonic()))
        return min(waits, default=None)

    def _do(self, job: Job) -> None:
        waits = bool(self._pending) and isinstance(job, _Append)  # behind a failed write
        if waits or not self._attempt(job):
            _add(self._pending, job)
        if isinstance(job, _Call):
            job.done.set()

    def _attempt(self, job: Job) -> bool:
        """Runs the job; False when it failed in a way worth another try."""
        try:
            if isinstance(job, _Append):
                self.store.append(job.conv_id, job.ops, job.summary)
                self._dirty = self._dirty or time.monotonic()
            else:
                job.func()
        except (sqlite3.OperationalError, OSError) as e:
            if not self._failing:  # the first failure of a spell: said once
                self._failing = True
                why = "disk full" if is_full(e) else str(e)
                self.on_error(
                    f"Chat not saved: {why}. The text stays in the window and is saved "
                    "as soon as it can be."
                )
            return False
        except Exception as e:  # a bug: say it rather than end the thread
            self.on_error(f"Chat not saved: unexpected {type(e).__name__}: {e}")
        return True

    def _retry(self) -> None:
        """The kept writes, oldest first; each leaves the list once written (unsaved never
        reads 0 while some wait)."""
        if not self._pending:
            return
        while self._pending:
            if not self._attempt(self._pending[0]):
                return
            self._pending.pop(0)
        self._failing = False
        self.on_error("Chat saved: what could not be written before is written now.")

    def _sync_due(self, everything: bool = False) -> None:
        if self._dirty is None:
            return
        if everything or time.monotonic() - self._dirty >= SYNC_EVERY_S:
            self._dirty = None
            with contextlib.suppress(sqlite3.Error):  # else it runs with the next one
                self.store.sync()


def _coalesced(batch: list[object]) -> list[Job]:
    """The batch's jobs in order, appends to one chat that follow each other merged."""
    jobs: list[Job] = []
    for job in batch:
        if isinstance(job, _Append | _Call):
            _add(jobs, job)
    return jobs


def _add(jobs: list[Job], job: Job) -> None:
    last = jobs[-1] if jobs else None
    if isinstance(job, _Append) and isinstance(last, _Append) and last.conv_id == job.conv_id:
        jobs[-1] = _Append(job.conv_id, [*last.ops, *job.ops], job.summary or last.summary)
    else:
        jobs.append(job)
