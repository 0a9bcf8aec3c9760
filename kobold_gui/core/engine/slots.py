"""Parallel slots: several requests generate at once on one llama.cpp context, with
continuous batching (the `parallel` launch option, core/launch/parallel.py: while the loaded
context holds several sequences; with one, requests go to the FIFO queue of
core/engine/worker.py). The worker has one scheduler (slots_for): the API's requests and
the window's chat (ui/engine/controller.py) are its clients alike, and generate together.

Requests wait in this scheduler's queue. While any wait or run, one job of the engine worker
runs the loop, on the engine thread that owns the context: each step builds one llama_batch
with one token for every generating slot and chunks of the prompts still to process (at most
n_ubatch tokens in all, so a long prompt never stalls the others' streams for more than a
ubatch), decodes it, then samples each slot with its own sampler chain and streams its text
(core/engine/slot.py). New requests take free slots between steps; a finished or cancelled
slot is free at once, and its sequence keeps its KV cells as a cache: the next request that
starts alike (a chat's next turn) takes that sequence and decodes only what is new (as the
queue's engine does with its one cache). Idle caches are dropped as soon as a request needs
their room (or a decode finds none), and when anything else (a benchmark sweep) used the
context. When another job (a sweep, a load) waits on the worker, the loop takes no new
request, ends when its slots are done, and queues itself again behind that job; a load
stops the running replies (their clients get a 503-style error, as with the queue).

The KV cache is unified (llama.cpp's kv_unified): all sequences share the n_ctx cells the
launch asks for, instead of n_ctx / N each. So a lone long chat can still use the whole
context, the KV memory is the same for any N (the plan needs no per-slot KV), and `--parallel`
never shrinks what a client may send. A request takes a slot only when its reservation
(core/engine/slot.py's reservation(): its prompt and its reply, up to a fair share of the
context) fits beside those of the running slots, or when no slot runs; a reply that grows
past its reservation is the one cut ("length") if the cache fills.

On an engine that is not in-process (a child process, for loads over other machines) the
loop serves the queue one request at a time.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from typing import Any

import llama_cpp

from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.protocol import Engine, check_prompt
from kobold_gui.core.engine.slot import Slot, SlotRequest, reservation
from kobold_gui.core.engine.types import EngineError, GenerationResult, Stopped
from kobold_gui.core.engine.vocab import Vocab
from kobold_gui.core.engine.worker import EngineWorker, Job, ModelUnavailable

log = logging.getLogger(__name__)

ENGINE_GONE = "the model is being unloaded or replaced; the reply was stopped"


_SHARED: weakref.WeakKeyDictionary[EngineWorker, ParallelSlots] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def slots_for(worker: EngineWorker) -> ParallelSlots:
    """The worker's one scheduler (made on first use): every client of the engine, the API
    server and the window's chat, submits to the same slots."""
    with _SHARED_LOCK:
        slots = _SHARED.get(worker)
        if slots is None:
            slots = _SHARED[worker] = ParallelSlots(worker)
        return slots


class ParallelSlots:
    """The scheduler: submit() and cancel() from any thread."""

    def __init__(self, worker: EngineWorker) -> None:
        self.worker = worker
        self._lock = threading.Lock()
        self._waiting: deque[SlotRequest] = deque()
        self._job: Job[None] | None = None  # the loop's job, queued or running
        # Per sequence: the tokens its KV cells still hold from its last request (kept for
        # the next one that starts alike, as a chat's next turn does, until room is needed).
        self.cached: list[list[int]] = []
        self.running = 0  # requests in slots now (for views)

    @property
    def n_slots(self) -> int:
        """Sequences the loaded context holds (its launch's n_seq_max); 1 when none."""
        loaded = self.worker.loaded
        return loaded.launch.n_seq_max if loaded is not None else 1

    def active(self) -> bool:
        """Whether requests go to the slots now: the loaded model holds several sequences
        (else they are jobs in the worker's queue, one at a time)."""
        return self.n_slots > 1

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def submit(self, request: SlotRequest) -> SlotRequest:
        with self._lock:
            self._waiting.append(request)
            job = self._new_job() if self._job is None else None
        if job is not None:
            self.worker.submit(job)
        return request

    def cancel(self, request: SlotRequest) -> None:
        """A running request stops at the next step; a waiting one ends at once."""
        request.cancel.set()
        with self._lock:
            waiting = request in self._waiting
            if waiting:
                self._waiting.remove(request)
        if waiting:
            request.finish(None, None)

    def _new_job(self) -> Job[None]:
        self._job = Job("completion", self._run, client="api", on_done=self._job_done)
        return self._job

    def _job_done(self, job: Job[None]) -> None:
        """The loop ended: fail the waiting requests if it failed (a load dropped it, the
        worker closed), else queue it again when requests came meanwhile."""
        with self._lock:
            self._job = None
            failed: list[SlotRequest] = []
            if job.error is not None:
                failed, self._waiting = list(self._waiting), deque()
            again = self._new_job() if self._waiting else None
        for request in failed:
            request.finish(None, job.error)
        if again is not None:
            self.worker.submit(again)

    def _pop(self) -> SlotRequest | None:
        with self._lock:
            return self._waiting.popleft() if self._waiting else None

    def _push_back(self, request: SlotRequest) -> None:
        with self._lock:
            self._waiting.appendleft(request)

    # -- the engine thread ----------------------------------------------------------------
    def _run(self, engine: Engine, cancel: threading.Event) -> None:
        if engine.loaded is None:
            raise ModelUnavailable("no model is loaded; load one in kobold-gui first")
        if not isinstance(engine, LocalEngine):
            self._run_queue(engine, cancel)
            return
        ctx, vocab, loaded, kept = engine.slot_context(cancel, self)
        n = max(1, llama_cpp.llama_n_seq_max(ctx))
        if not kept or len(self.cached) != n:
            self.cached = [[] for _ in range(n)]
        loop = _Loop(self, ctx, vocab, loaded.n_ctx, max(loaded.n_ubatch, n), n)
        try:
            loop.run(cancel)
        finally:
            loop.free()
            self.running = 0

    def _prepare(self, engine: Engine, request: SlotRequest) -> bool:
        """Build the request's prompt and sampling; False (and it is finished) on failure
        or when it was cancelled meanwhile."""
        if request.cancel.is_set():
            request.finish(None, None)
            return False
        if request.params is not None:
            return True  # prepared before, waited for room
        try:
            request.tokens, request.params = request.prepare(engine)
            assert engine.loaded is not None
            check_prompt(request.tokens, engine.loaded.n_ctx)
        except Exception as e:
            request.finish(None, e)
            return False
        return True

    def _run_queue(self, engine: Engine, cancel: threading.Event) -> None:
        """One request at a time on an engine that is not in-process."""
        while not cancel.is_set() and not self.worker.queued():
            request = self._pop()
            if request is None:
                return
            if not self._prepare(engine, request):
                continue
            assert request.params is not None
            request.started()
            self.running = 1
            try:
                result = engine.generate(
                    request.tokens, request.params, request.on_text, request.cancel
                )
            except Exception as e:
                request.finish(None, e)
            else:
                request.finish(result, None)
            finally:
                self.running = 0


class _Loop:
    """The continuous-batching loop over the context's sequences 0..n_slots-1."""

    def __init__(
        self, owner: ParallelSlots, ctx: Any, vocab: Vocab, n_ctx: int, budget: int, n: int
    ) -> None:
        self.owner, self.ctx, self.vocab, self.n_ctx, self.budget = owner, ctx, vocab, n_ctx, budget
        self.slots: list[Slot | None] = [None] * n
        self.batch = llama_cpp.llama_batch_init(budget, 0, 1)

    def free(self) -> None:
        for slot in self.slots:
            if slot is not None:
                self._end(slot, None, EngineError("the slot loop ended"))
        llama_cpp.llama_batch_free(self.batch)

    def run(self, cancel: threading.Event) -> None:
        while True:
            if cancel.is_set():
                self._end_all(ModelUnavailable(ENGINE_GONE))
                return
            if not self.owner.worker.queued():  # others wait: let the slots run out first
                self._admit()
            active = [s for s in self.slots if s is not None]
            self.owner.running = len(active)
            if not active:
                return
            try:
                self._step(active)
            except Stopped:
                self._end_all(ModelUnavailable(ENGINE_GONE))
                return

    def _admit(self) -> None:
        engine = self.owner.worker.engine
        while any(s is None for s in self.slots):
            while (request := self.owner._pop()) is not None:
                if self.owner._prepare(engine, request):
                    break
            if request is None:
                return
            assert request.params is not None
            seq, kept = self._best_free(request.tokens)
            used = sum(s.reserved for s in self.slots if s is not None)
            need = reservation(
                len(request.tokens), request.params.max_tokens, self.n_ctx, len(self.slots)
            )
            if used + need + self._idle_cells(seq) > self.n_ctx:
                self._evict_idle(seq)
            if used and used + need > self.n_ctx:
                self.owner._push_back(request)  # waits until running slots free room
                return
            cache = self.owner.cached[seq]
            llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.ctx), seq, kept, -1)
            del cache[:]
            try:
                self.slots[seq] = Slot(seq, request, self.vocab, self.n_ctx, need, kept)
            except Exception as e:  # e.g. a sampler llama.cpp refused
                llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.ctx), seq, -1, -1)
                request.finish(None, e)
                continue
            request.started()

    def _best_free(self, tokens: list[int]) -> tuple[int, int]:
        """The free sequence whose cache starts most like `tokens` (else the emptiest) and
        how many of its tokens it keeps (one is always decoded again, for its logits)."""
        free = [i for i, s in enumerate(self.slots) if s is None]
        cached = self.owner.cached
        prefix = {i: _common_prefix(cached[i], tokens) for i in free}
        seq = max(free, key=lambda i: (prefix[i], -len(cached[i])))
        return seq, min(prefix[seq], len(tokens) - 1)

    def _idle_cells(self, but: int) -> int:
        return sum(
            len(c) for i, c in enumerate(self.owner.cached) if i != but and self.slots[i] is None
        )

    def _evict_idle(self, but: int = -1) -> bool:
        """Free the cells of the caches of idle sequences (but `but`); True if any were."""
        mem = llama_cpp.llama_get_memory(self.ctx)
        evicted = False
        for i, cache in enumerate(self.owner.cached):
            if i != but and self.slots[i] is None and cache:
                llama_cpp.llama_memory_seq_rm(mem, i, -1, -1)
                cache.clear()
                evicted = True
        return evicted

    def _step(self, active: list[Slot]) -> None:
        """One decode: the generating slots' tokens, then prompt chunks. Raises Stopped."""
        for slot in active:
            if slot.request.cancel.is_set():
                slot.reason = "stopped"
                self._end(slot, self._result(slot), None)
        active = [s for s in active if self.slots[s.seq] is s]
        before = [(s, s.n_past, s.next_token, list(s.todo)) for s in active]
        with_logits = self._fill(active)
        if self.batch.n_tokens == 0:
            return
        rc = llama_cpp.llama_decode(self.ctx, self.batch)
        if rc != 0:
            mem = llama_cpp.llama_get_memory(self.ctx)
            for slot, n_past, next_token, todo in before:  # as before the step
                llama_cpp.llama_memory_seq_rm(mem, slot.seq, n_past, -1)
                del slot.decoded[n_past:]
                slot.next_token, slot.todo = next_token, todo
            if rc == 2:
                raise Stopped
            self._decode_failed(rc, active)
            return
        for slot in with_logits:
            if slot.sample(self.ctx):
                self._end(slot, self._result(slot), None)

    def _fill(self, active: list[Slot]) -> list[Slot]:
        """Put the step's tokens in the batch; the slots whose logits it asks for."""
        b, n = self.batch, 0
        with_logits: list[Slot] = []

        def add(slot: Slot, token: int, logits: bool) -> None:
            nonlocal n
            b.token[n], b.pos[n], b.n_seq_id[n] = token, slot.n_past, 1
            b.seq_id[n][0], b.logits[n] = slot.seq, logits
            slot.decoded.append(token)
            if logits:
                slot.batch_index = n
                with_logits.append(slot)
            n += 1

        for slot in active:
            if slot.next_token is not None:
                add(slot, slot.next_token, True)
                slot.next_token = None
        for slot in active:
            if slot.todo and n < self.budget:
                chunk = slot.take(self.budget - n)
                for k, token in enumerate(chunk):
                    add(slot, token, not slot.todo and k == len(chunk) - 1)
        b.n_tokens = n
        return with_logits

    def _decode_failed(self, rc: int, active: list[Slot]) -> None:
        """No room in the cache (1): the slot furthest past its reservation ends
        (context_full), the others decode their tokens again in the next step. Another
        failure ends them all."""
        log.warning("llama_decode failed with code %d over %d slots", rc, len(active))
        if rc != 1:
            self._end_all(EngineError(f"llama_decode failed with code {rc}"))
            return
        if self._evict_idle():
            return  # room made: the step is tried again
        slot = max(active, key=lambda s: s.n_past + len(s.todo) - s.reserved)
        slot.reason = "context_full"
        slot.decoded.clear()  # its cells go, not into a cache
        self._end(slot, self._result(slot), None)

    def _result(self, slot: Slot) -> GenerationResult:
        return slot.close()

    def _end(self, slot: Slot, result: GenerationResult | None, error: Exception | None) -> None:
        """The slot is free; its sequence's cells stay as its cache (for a request that
        starts alike) unless it failed."""
        if self.slots[slot.seq] is slot:
            self.slots[slot.seq] = None
        if result is None:
            slot.close()
            slot.decoded.clear()
        mem = llama_cpp.llama_get_memory(self.ctx)
        llama_cpp.llama_memory_seq_rm(mem, slot.seq, len(slot.decoded), -1)
        self.owner.cached[slot.seq] = slot.decoded
        slot.request.finish(result, error)

    def _end_all(self, error: Exception) -> None:
        for slot in self.slots:
            if slot is not None:
                self._end(slot, None, error)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
