"""The in-process engine: llama.cpp through llama-cpp-python's C bindings.

Why not `llama_cpp.Llama`: it takes no load-progress callback, cannot ask for llama.cpp's
automatic flash attention, and its timings do not synchronize with the GPU. This engine owns
the model and context directly: load with progress and cancel, stream tokens, stop at once
through llama.cpp's abort callback (also in the middle of a long prompt), keep the KV cache
across turns (only the new suffix of a prompt is processed), and time only finished work.

It loads whatever devices the launch names, remote ones included: that is what the child
process of a ChildEngine does (core/engine/child_main.py). In the app, a load over other
machines goes to a ChildEngine instead (core/engine/choice.py), since ggml aborts the
process whose connection to a machine fails.
"""

from __future__ import annotations

import codecs
import ctypes
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import llama_cpp

from kobold_gui.core.engine.batch_timing import time_batches
from kobold_gui.core.engine.llama_params import context_params, decode_on, load_model
from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.engine.logprobs import token_logprob
from kobold_gui.core.engine.protocol import (
    Engine,
    GpuUsed,
    OnProgress,
    OnText,
    check_prompt,
    model_info,
)
from kobold_gui.core.engine.sampler import make_sampler
from kobold_gui.core.engine.stop_strings import StopStringFilter
from kobold_gui.core.engine.types import (
    BatchMeasurement,
    EngineError,
    GenerationResult,
    SamplingParams,
    Stopped,
    TokenLogprob,
)
from kobold_gui.core.engine.vocab import Vocab
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.llama.library import init_backend
from kobold_gui.core.llama.log import first_error_since, llama_log_count, llama_log_since
from kobold_gui.core.models.gguf_info import GGUFInfo


@dataclass
class _Reply:
    """How far a generation got (kept when it stops half-way)."""

    generated: int = 0
    reason: str = "length"  # eos, length, stop_string, stopped, context_full
    t_first: float | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)


class LocalEngine(Engine):
    def __init__(self) -> None:
        self._model: Any = None
        self._ctx: Any = None
        self._vocab: Vocab | None = None
        self._cached: list[int] = []  # tokens whose K/V are in the cache (sequence 0)
        self._slots_owner: object | None = None  # parallel slots whose caches it holds
        self._cancel = threading.Event()
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)
        self.loaded: LoadedModel | None = None

    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        return self._cancel.is_set()

    # -- lifecycle --------------------------------------------------------------------
    def load(
        self,
        launch: ResolvedLaunch,
        on_progress: OnProgress | None = None,
        cancel: threading.Event | None = None,
        info: GGUFInfo | None = None,
    ) -> LoadedModel:
        info = model_info(launch, info)  # ModelFileError before llama.cpp
        self.close()
        init_backend()
        log_start = llama_log_count()
        started = time.perf_counter()
        model = load_model(launch, on_progress, cancel or threading.Event(), log_start)
        cparams = context_params(
            launch, launch.batch.n_batch, launch.batch.n_ubatch, self._abort_cb
        )
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            llama_cpp.llama_model_free(model)
            reason = first_error_since(log_start) or "out of memory?"
            raise EngineError(f"could not create a context of {launch.n_ctx} tokens: {reason}")
        self._model, self._ctx = model, ctx
        self._vocab = Vocab(model, info)
        self._cached = []
        self._slots_owner = None
        desc = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(model, desc, 256)
        self.loaded = LoadedModel(
            info=info,
            launch=launch,
            n_ctx=llama_cpp.llama_n_ctx(ctx),
            n_batch=llama_cpp.llama_n_batch(ctx),
            n_ubatch=llama_cpp.llama_n_ubatch(ctx),
            load_seconds=time.perf_counter() - started,
            description=desc.value.decode("utf-8", errors="replace"),
            log=tuple(llama_log_since(log_start)),
        )
        return self.loaded

    def close(self) -> None:
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
        if self._model:
            llama_cpp.llama_model_free(self._model)
        self._ctx = self._model = self._vocab = None
        self._cached = []
        self._slots_owner = None
        self.loaded = None

    # -- measuring ------------------------------------------------------------------------
    def measure_batch(
        self,
        n_batch: int,
        n_ubatch: int,
        prompt_tokens: int,
        gen_tokens: int,
        cancel: threading.Event | None = None,
        gpu_used: GpuUsed | None = None,
    ) -> BatchMeasurement:
        """See Engine.measure_batch; the timing is core/engine/batch_timing.py's."""
        loaded = self._require()
        if prompt_tokens + gen_tokens + 2 > loaded.n_ctx:
            raise EngineError(
                f"{prompt_tokens} prompt + {gen_tokens} generated tokens exceed the context "
                f"of {loaded.n_ctx}"
            )
        self._cancel = cancel or threading.Event()
        return time_batches(
            self._model,
            self._vocabulary().n_tokens,
            loaded.launch,
            n_batch,
            n_ubatch,
            prompt_tokens,
            gen_tokens,
            self._abort_cb,
            gpu_used,
        )

    def slot_context(
        self, cancel: threading.Event, owner: object
    ) -> tuple[Any, Vocab, LoadedModel, bool]:
        """The context, for parallel slots (core/engine/slots.py) that decode its sequences
        themselves; `cancel` aborts their decodes. True when the cache still holds what
        `owner` left in it (nothing else used the context since), else it is emptied."""
        loaded = self._require()
        kept = self._slots_owner is owner
        if not kept:
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx), True)
        self._cached = []
        self._slots_owner = owner
        self._cancel = cancel
        return self._ctx, self._vocabulary(), loaded, kept

    # -- generation ---------------------------------------------------------------------
    def generate(
        self,
        prompt_tokens: list[int],
        params: SamplingParams,
        on_text: OnText,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        check_prompt(prompt_tokens, self._require().n_ctx)
        self._cancel = cancel or threading.Event()
        t0 = time.perf_counter()
        if self._slots_owner is not None:  # parallel slots left their caches: drop them
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx), True)
            self._slots_owner = None
        todo = self._reuse_cache(prompt_tokens)
        vocab = self._vocabulary()
        sampler = make_sampler(vocab.handle, params, prompt_tokens)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stream = StopStringFilter(params.stop, on_text)
        reply = _Reply()

        def emit(token: int) -> bool:  # stream a token's text; True: a stop string came
            if params.logprobs:
                reply.logprobs.append(
                    token_logprob(self._ctx, vocab.n_tokens, token, params.logprobs, vocab.text)
                )
            return stream.feed(decoder.decode(vocab.piece(token)))

        t_prompt = None
        try:
            self._decode(todo)
            llama_cpp.llama_synchronize(self._ctx)
            t_prompt = time.perf_counter()
            self._sample(sampler, params, emit, reply)
        except Stopped:
            reply.reason = "stopped"
        finally:
            llama_cpp.llama_sampler_free(sampler)
        if reply.reason != "stop_string":
            stream.feed(decoder.decode(b"", final=True))
            stream.flush()
        elif not params.trim_stop:
            stream.emit_stop()
        t_end = time.perf_counter()
        t_prompt = t_prompt or t_end
        return GenerationResult(
            text=stream.text,
            prompt_tokens=len(prompt_tokens),
            prompt_tokens_processed=len(todo),
            generated_tokens=reply.generated,
            time_to_first_token_s=(reply.t_first or t_end) - t0,
            prompt_seconds=t_prompt - t0,
            generation_seconds=t_end - t_prompt,
            stop_reason=reply.reason,
            logprobs=tuple(reply.logprobs),
        )

    def _reuse_cache(self, prompt_tokens: list[int]) -> list[int]:
        """Keep the cached prefix the prompt starts with; the tokens left to decode."""
        keep = _common_prefix(self._cached, prompt_tokens)
        if keep == len(prompt_tokens):
            keep -= 1  # at least one token must be decoded to get fresh logits
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self._ctx), 0, keep, -1)
        del self._cached[keep:]
        return prompt_tokens[keep:]

    def _sample(
        self,
        sampler: Any,
        params: SamplingParams,
        emit: Callable[[int], bool],
        reply: _Reply,
    ) -> None:
        """Sample until the reply ends, updating `reply` as it goes; `emit(token)` streams
        a token's text and says whether a stop string was reached. Raises Stopped."""
        vocab = self._vocabulary()
        n_ctx = self._require().n_ctx
        while reply.generated < params.max_tokens:
            if self._cancel.is_set():
                reply.reason = "stopped"
                return
            token = llama_cpp.llama_sampler_sample(sampler, self._ctx, -1)
            if vocab.is_end(token):
                reply.reason = "eos"
                return
            reply.generated += 1
            if reply.t_first is None:
                reply.t_first = time.perf_counter()
            if emit(token):
                reply.reason = "stop_string"
                return
            if len(self._cached) + 1 >= n_ctx:
                reply.reason = "context_full"
                return
            if reply.generated < params.max_tokens:
                self._decode([token])

    def _decode(self, tokens: list[int]) -> None:
        """Decode tokens after those cached, n_batch at a time. Raises Stopped."""
        loaded = self._require()
        start = 0
        while start < len(tokens):
            chunk = tokens[start : start + loaded.n_batch]
            pos0 = len(self._cached)
            try:
                decode_on(self._ctx, chunk)
            except (Stopped, EngineError):
                # Aborted or failed: ubatches already done stay in memory; drop them.
                llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self._ctx), 0, pos0, -1)
                raise
            self._cached.extend(chunk)
            start += len(chunk)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
