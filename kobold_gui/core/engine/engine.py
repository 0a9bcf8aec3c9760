"""The inference engine: llama.cpp through llama-cpp-python's C bindings.

Why not `llama_cpp.Llama`: it takes no load-progress callback, cannot ask for llama.cpp's
automatic flash attention, and its timings do not synchronize with the GPU. This engine owns
the model and context directly: load with progress and cancel, stream tokens, stop at once
through llama.cpp's abort callback (also in the middle of a long prompt), keep the KV cache
across turns (only the new suffix of a prompt is processed), and time only finished work.

One Engine is used from one thread at a time; the `cancel` event a call is given may be set
from any thread, and ends the work within one graph node.

A load that uses other machines' devices (llama.cpp's RPC backend) runs in a child process
(core/engine/child_process.py): ggml aborts the process whose connection to a machine fails.
This Engine then keeps only the vocabulary (tokenizing, chat templates, fitting a
conversation) and relays load, generation and measurements to the child; when the child
dies, the error names the machine that stopped answering and the model counts as unloaded.
`isolate=True` runs every load there. Local loads stay in-process: the child costs 1.4 s per
load and 2 % of generation speed on an H100 (bench/engine_process.py), for a containment that
only the RPC client, which aborts by design, has needed.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, cast

import llama_cpp

from kobold_gui.core.engine.child_process import ChildDied, EngineProcess, lost_model
from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.engine.prompt_template import ChatFormatter, Message
from kobold_gui.core.engine.sampler import make_sampler
from kobold_gui.core.engine.stop_strings import StopStringFilter
from kobold_gui.core.engine.types import (
    BatchMeasurement,
    EngineError,
    GenerationResult,
    LoadCancelled,
    SamplingParams,
    Stopped,
)
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.llama.library import init_backend
from kobold_gui.core.llama.log import first_error_since, llama_log_count, llama_log_since
from kobold_gui.core.models.gguf_info import GGUFInfo, read_gguf

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, isolate: bool = False, in_child: bool = False) -> None:
        self.isolate = isolate  # every load in a child process, not only remote ones
        self._in_child = in_child  # this is the child: load here, whatever the devices
        self._child: EngineProcess | None = None
        self._model: Any = None
        self._ctx: Any = None
        self._vocab: Any = None
        self._cached: list[int] = []  # tokens whose K/V are in the cache (sequence 0)
        self._cancel = threading.Event()
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)
        self._formatter: ChatFormatter | None = None
        self.loaded: LoadedModel | None = None

    # -- lifecycle --------------------------------------------------------------------
    def load(
        self,
        launch: ResolvedLaunch,
        on_progress: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
        info: GGUFInfo | None = None,
    ) -> LoadedModel:
        """Load a model (freeing the one loaded before). Raises EngineError, LoadCancelled."""
        if launch.model_path is None:
            raise EngineError("no model selected")
        info = info or read_gguf(launch.model_path)  # ModelFileError before llama.cpp
        self.close()
        init_backend()
        cancel = cancel or threading.Event()
        if (launch.rpc_servers or self.isolate) and not self._in_child:
            return self._load_in_child(launch, on_progress, cancel, info)
        log_start = llama_log_count()
        started = time.perf_counter()

        def progress(value: float, _user: ctypes.c_void_p) -> bool:
            try:
                if on_progress is not None:
                    on_progress(float(value))
            except Exception:  # a broken listener must not abort the load
                log.exception("progress listener failed")
            return not cancel.is_set()

        progress_cb = llama_cpp.llama_progress_callback(progress)
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = launch.n_gpu_layers
        mparams.main_gpu = launch.main_gpu
        mparams.split_mode = launch.split_mode
        if launch.tensor_split:  # llama.cpp reads llama_max_devices() floats
            split = (ctypes.c_float * llama_cpp.llama_max_devices())(*launch.tensor_split)
            mparams.tensor_split = split
        mparams.progress_callback = progress_cb
        if launch.device_handles is not None:  # NULL-terminated; llama.cpp copies it
            devices = (ctypes.c_void_p * (len(launch.device_handles) + 1))(
                *launch.device_handles, None
            )
            mparams.devices = ctypes.cast(devices, ctypes.c_void_p)
        model = llama_cpp.llama_model_load_from_file(str(launch.model_path).encode(), mparams)
        if not model:
            if cancel.is_set():
                raise LoadCancelled("loading was cancelled")
            reason = first_error_since(log_start) or "llama.cpp could not load the file"
            raise EngineError(f"could not load {launch.model_path.name}: {reason}")
        cparams = self._context_params(launch, launch.batch.n_batch, launch.batch.n_ubatch)
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            llama_cpp.llama_model_free(model)
            reason = first_error_since(log_start) or "out of memory?"
            raise EngineError(f"could not create a context of {launch.n_ctx} tokens: {reason}")
        self._model, self._ctx = model, ctx
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._cached = []
        self._formatter = ChatFormatter(info.chat_template, info.bos_token, info.eos_token)
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

    def _load_in_child(
        self,
        launch: ResolvedLaunch,
        on_progress: Callable[[float], None] | None,
        cancel: threading.Event,
        info: GGUFInfo,
    ) -> LoadedModel:
        """Check every machine from Python (ggml would abort on one that fails), load in a
        child process, and keep the vocabulary here."""
        from kobold_gui.core.remote.probe import RpcError, probe

        for endpoint in launch.rpc_servers:
            try:
                probe(endpoint)
            except RpcError as e:
                raise EngineError(f"cannot load over {endpoint}: {e}") from None
        child = EngineProcess()
        self._child = child

        def event(kind: str, value: Any) -> None:
            if kind == "progress" and on_progress is not None:
                on_progress(value)

        try:
            loaded: LoadedModel = child.call("load", launch, info, on_event=event, cancel=cancel)
            self._load_vocab(launch, info)
        except ChildDied as e:
            lost = lost_model(e, launch.rpc_servers, child, "while loading")
            self.close()
            raise lost from None
        except BaseException:
            self.close()
            raise
        self.loaded = loaded
        return loaded

    def _load_vocab(self, launch: ResolvedLaunch, info: GGUFInfo) -> None:
        assert launch.model_path is not None
        mparams = llama_cpp.llama_model_default_params()
        mparams.vocab_only = True
        no_devices = (ctypes.c_void_p * 1)(None)  # no device: no GPU context for a vocab
        mparams.devices = ctypes.cast(no_devices, ctypes.c_void_p)
        model = llama_cpp.llama_model_load_from_file(str(launch.model_path).encode(), mparams)
        if not model:
            raise EngineError(f"could not read the vocabulary of {launch.model_path.name}")
        self._model = model
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._formatter = ChatFormatter(info.chat_template, info.bos_token, info.eos_token)

    def _call_child(
        self,
        name: str,
        *args: Any,
        on_event: Callable[[str, Any], Any] | None = None,
        cancel: threading.Event | None = None,
    ) -> Any:
        assert self._child is not None and self.loaded is not None
        child, launch = self._child, self.loaded.launch
        try:
            return child.call(name, *args, on_event=on_event, cancel=cancel)
        except ChildDied as e:
            when = "during the benchmark" if name == "measure_batch" else "during the reply"
            lost = lost_model(e, launch.rpc_servers, child, when)
            self.close()
            raise lost from None

    def _context_params(self, launch: ResolvedLaunch, n_batch: int, n_ubatch: int) -> Any:
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = launch.n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_ubatch
        cparams.n_threads = launch.n_threads
        cparams.n_threads_batch = launch.n_threads
        cparams.flash_attn_type = launch.flash_attn_type
        cparams.type_k = cparams.type_v = launch.kv_type
        cparams.offload_kqv = launch.offload_kqv
        cparams.no_perf = True
        cparams.abort_callback = self._abort_cb
        return cparams

    def measure_batch(
        self,
        n_batch: int,
        n_ubatch: int,
        prompt_tokens: int,
        gen_tokens: int,
        cancel: threading.Event | None = None,
        gpu_used: Callable[[], Sequence[int]] | None = None,
    ) -> BatchMeasurement:
        """Time one (n_batch, n_ubatch) pair on a fresh context of the loaded model (the
        weights are not reloaded): a prompt of `prompt_tokens`, then `gen_tokens` single-token
        steps. Every clock reading follows llama_synchronize: llama_decode returns before the
        GPU has finished. Raises Stopped when cancelled, EngineError when the context fails."""
        loaded = self._require()
        if self._child is not None:
            measured = self._call_child(
                "measure_batch",
                n_batch,
                n_ubatch,
                prompt_tokens,
                gen_tokens,
                on_event=lambda _kind, _v: tuple(gpu_used()) if gpu_used else (),
                cancel=cancel,
            )
            return cast(BatchMeasurement, measured)
        if prompt_tokens + gen_tokens + 2 > loaded.n_ctx:
            raise EngineError(
                f"{prompt_tokens} prompt + {gen_tokens} generated tokens exceed the context "
                f"of {loaded.n_ctx}"
            )
        self._cancel = cancel or threading.Event()
        mark = llama_log_count()
        ctx = llama_cpp.llama_init_from_model(
            self._model, self._context_params(loaded.launch, n_batch, n_ubatch)
        )
        if not ctx:
            raise EngineError(
                f"no context for n_batch {n_batch}, n_ubatch {n_ubatch}: "
                f"{first_error_since(mark) or 'out of memory?'}"
            )
        log = llama_log_since(mark)
        try:
            n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
            # Token ids spread over the vocabulary: speed does not depend on the text.
            tokens = [(i * 7919 + 13) % (n_vocab - 1) + 1 for i in range(prompt_tokens)]
            t0 = time.perf_counter()
            pos = 0
            while pos < len(tokens):
                chunk = tokens[pos : pos + n_batch]
                self._decode_on(ctx, chunk)
                pos += len(chunk)
            llama_cpp.llama_synchronize(ctx)
            t_prompt = time.perf_counter()
            llama_cpp.llama_get_logits_ith(ctx, -1)  # the first token could be sampled now
            t_first = time.perf_counter()
            for i in range(min(2, gen_tokens)):  # untimed: CUDA graphs are captured here
                self._decode_on(ctx, [tokens[i]])
                llama_cpp.llama_synchronize(ctx)
            t_gen = time.perf_counter()
            for i in range(gen_tokens):
                self._decode_on(ctx, [tokens[i % len(tokens)]])
                llama_cpp.llama_synchronize(ctx)
            t_end = time.perf_counter()
            used = tuple(gpu_used()) if gpu_used else ()
        finally:
            llama_cpp.llama_free(ctx)
        return BatchMeasurement(
            n_batch=n_batch,
            n_ubatch=n_ubatch,
            prompt_tokens_per_s=prompt_tokens / (t_prompt - t0),
            gen_tokens_per_s=gen_tokens / (t_end - t_gen) if gen_tokens else 0.0,
            time_to_first_token_s=t_first - t0,
            log=tuple(log),
            gpu_used_peak=used,
        )

    def _decode_on(self, ctx: Any, tokens: list[int]) -> None:
        arr = (llama_cpp.llama_token * len(tokens))(*tokens)
        rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(tokens)))
        if rc == 2:
            raise Stopped
        if rc != 0:
            raise EngineError(f"llama_decode failed with code {rc} (context full?)")

    def close(self) -> None:
        if self._child is not None:
            self._child.close()
            self._child = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
        if self._model:
            llama_cpp.llama_model_free(self._model)
        self._ctx = self._model = self._vocab = None
        self._cached = []
        self.loaded = None

    # -- stop ------------------------------------------------------------------------
    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        return self._cancel.is_set()

    # -- tokens ----------------------------------------------------------------------
    def _require(self) -> LoadedModel:
        if self.loaded is None:
            raise EngineError("no model is loaded")
        return self.loaded

    def tokenize(
        self, text: str, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        self._require()
        raw = text.encode("utf-8")
        cap = len(raw) + 16
        for _attempt in range(2):  # a negative count says how much room was needed
            buf = (llama_cpp.llama_token * cap)()
            n = llama_cpp.llama_tokenize(
                self._vocab, raw, len(raw), buf, cap, add_special, parse_special
            )
            if n >= 0:
                return list(buf[:n])
            cap = -n
        raise EngineError("the text could not be tokenized")

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
        return buf.raw[:n]

    def format_chat(self, messages: Sequence[Message]) -> str:
        self._require()
        assert self._formatter is not None
        return self._formatter.render(messages)

    def chat_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The prompt tokens for a conversation, BOS added only when the template lacks it."""
        loaded = self._require()
        prompt = self.format_chat(messages)
        bos = loaded.info.bos_token
        add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab)) and not (
            bos and prompt.startswith(bos)
        )
        tokens = self.tokenize(prompt, add_special=False, parse_special=True)
        if add_bos:
            tokens.insert(0, llama_cpp.llama_vocab_bos(self._vocab))
        return tokens

    # -- generation ---------------------------------------------------------------------
    def _decode(self, tokens: list[int]) -> None:
        """Decode tokens after those cached, n_batch at a time. Raises Stopped."""
        loaded = self._require()
        start = 0
        while start < len(tokens):
            chunk = tokens[start : start + loaded.n_batch]
            pos0 = len(self._cached)
            try:
                self._decode_on(self._ctx, chunk)
            except (Stopped, EngineError):
                # Aborted or failed: ubatches already done stay in memory; drop them.
                llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self._ctx), 0, pos0, -1)
                raise
            self._cached.extend(chunk)
            start += len(chunk)

    def generate(
        self,
        prompt_tokens: list[int],
        params: SamplingParams,
        on_text: Callable[[str], None],
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Process the prompt (reusing the cached prefix), then sample and stream text.

        `on_text` gets each new piece of text (complete UTF-8, stop strings held back)."""
        loaded = self._require()
        if not prompt_tokens:
            raise EngineError("the prompt is empty")
        n_ctx = loaded.n_ctx
        if len(prompt_tokens) >= n_ctx:
            raise EngineError(
                f"the prompt has {len(prompt_tokens)} tokens, more than the context of {n_ctx}: "
                "start a new chat or load the model with a larger context size"
            )
        if self._child is not None:

            def relay(_kind: str, text: Any) -> None:
                on_text(text)

            result = self._call_child(
                "generate", prompt_tokens, params, on_event=relay, cancel=cancel
            )
            return cast(GenerationResult, result)
        self._cancel = cancel or threading.Event()
        t0 = time.perf_counter()
        keep = _common_prefix(self._cached, prompt_tokens)
        if keep == len(prompt_tokens):
            keep -= 1  # at least one token must be decoded to get fresh logits
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self._ctx), 0, keep, -1)
        del self._cached[keep:]
        todo = prompt_tokens[keep:]

        sampler = make_sampler(self._vocab, params)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stream = StopStringFilter(params.stop, on_text)
        generated = 0
        reason = "length"
        t_prompt = t_first = None
        try:
            self._decode(todo)
            llama_cpp.llama_synchronize(self._ctx)
            t_prompt = time.perf_counter()
            while generated < params.max_tokens:
                if self._cancel.is_set():
                    reason = "stopped"
                    break
                token = llama_cpp.llama_sampler_sample(sampler, self._ctx, -1)
                if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    reason = "eos"
                    break
                generated += 1
                if t_first is None:
                    t_first = time.perf_counter()
                if stream.feed(decoder.decode(self._piece(token))):
                    reason = "stop_string"
                    break
                if len(self._cached) + 1 >= n_ctx:
                    reason = "context_full"
                    break
                if generated < params.max_tokens:
                    self._decode([token])
        except Stopped:
            reason = "stopped"
        finally:
            llama_cpp.llama_sampler_free(sampler)
        if reason != "stop_string":
            stream.feed(decoder.decode(b"", final=True))
            stream.flush()
        t_end = time.perf_counter()
        t_prompt = t_prompt or t_end
        return GenerationResult(
            text=stream.text,
            prompt_tokens=len(prompt_tokens),
            prompt_tokens_processed=len(todo),
            generated_tokens=generated,
            time_to_first_token_s=(t_first or t_end) - t0,
            prompt_seconds=t_prompt - t0,
            generation_seconds=t_end - t_prompt,
            stop_reason=reason,
        )

    def chat(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        on_text: Callable[[str], None],
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Answer a conversation. When it outgrows the context, the oldest turns after the
        system prompt are left out of what is sent (room is kept for the reply).

        A conversation that ends with an assistant message is continued: that message is
        put after the generation prompt as the start of the reply (a prefill)."""
        prefill = ""
        if messages and messages[-1].role == "assistant":
            prefill = messages[-1].content
            messages = messages[:-1]
        tokens, dropped = self.fit_conversation(messages, params.max_tokens)
        if prefill:
            tokens += self.tokenize(prefill, add_special=False, parse_special=False)
        result = self.generate(tokens, params, on_text, cancel)
        return replace(result, dropped_messages=dropped) if dropped else result

    def fit_conversation(
        self, messages: Sequence[Message], reply_tokens: int
    ) -> tuple[list[int], int]:
        loaded = self._require()
        room = max(loaded.n_ctx - min(reply_tokens, loaded.n_ctx // 4), 1)
        system = [m for m in messages[:1] if m.role == "system"]
        rest = list(messages[len(system) :])
        dropped = 0
        tokens = self.chat_tokens(messages)
        while len(tokens) > room and len(rest) > 1:
            rest.pop(0)
            dropped += 1
            if rest and rest[0].role == "assistant":  # keep turns whole: start with the user
                rest.pop(0)
                dropped += 1
            tokens = self.chat_tokens(system + rest)
        return tokens, dropped


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
