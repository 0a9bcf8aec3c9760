"""The inference engine: llama.cpp through llama-cpp-python's C bindings.

Why not `llama_cpp.Llama`: it takes no load-progress callback, cannot ask for llama.cpp's
automatic flash attention, and its timings do not synchronize with the GPU. This engine owns
the model and context directly: load with progress and cancel, stream tokens, stop at once
through llama.cpp's abort callback (also in the middle of a long prompt), keep the KV cache
across turns (only the new suffix of a prompt is processed), and time only finished work.

One Engine is used from one thread at a time; `request_stop` is the exception (any thread).
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import llama_cpp

from kobold_gui.core.chat_format import ChatFormatter, Message
from kobold_gui.core.gguf_info import GGUFInfo, read_gguf
from kobold_gui.core.launch import ResolvedLaunch

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """Something the user should be told about (the message is written for them)."""


class LoadCancelled(EngineError):
    pass


# --- llama.cpp's log: kept in a ring buffer (for error messages), not printed -------------
_LOG_LINES: deque[str] = deque(maxlen=2000)
_log_lock = threading.Lock()
_log_partial: list[str] = []
_log_count = 0  # lines ever logged: marks where a load's lines begin


def _on_llama_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    try:
        chunk = text.decode("utf-8", errors="replace")
        with _log_lock:
            _log_partial.append(chunk)
            if chunk.endswith("\n"):
                line = "".join(_log_partial).rstrip("\n")
                _log_partial.clear()
                _LOG_LINES.append(line)
                global _log_count
                _log_count += 1
                log.debug("llama.cpp: %s", line)
    except Exception:  # never let an exception cross into C
        pass


_on_llama_log_c = llama_cpp.llama_log_callback(_on_llama_log)  # kept alive for llama.cpp


def install_log_capture() -> None:
    llama_cpp.llama_log_set(_on_llama_log_c, ctypes.c_void_p(0))


def llama_log_tail(n: int = 400) -> list[str]:
    with _log_lock:
        return list(_LOG_LINES)[-n:]


def llama_log_count() -> int:
    with _log_lock:
        return _log_count


def llama_log_since(mark: int) -> list[str]:
    """The lines logged after llama_log_count() returned `mark` (as far as still kept)."""
    with _log_lock:
        n = min(_log_count - mark, len(_LOG_LINES))
        return list(_LOG_LINES)[len(_LOG_LINES) - n :] if n > 0 else []


def _last_error_line() -> str | None:
    for line in reversed(llama_log_tail(60)):
        low = line.lower()
        if "error" in low or "failed" in low or "unknown" in low:
            return line.split(":", 1)[-1].strip() if ": " in line else line.strip()
    return None


install_log_capture()
_backend_ready = False


def _init_backend() -> None:
    global _backend_ready
    if not _backend_ready:
        llama_cpp.llama_backend_init()
        _backend_ready = True


# --- backend facts -------------------------------------------------------------------------
@dataclass(frozen=True)
class BackendInfo:
    name: str  # CPU, CUDA, Metal, Vulkan, ...
    gpu_offload: bool
    llama_cpp_python: str
    system_info: str


def backend_info() -> BackendInfo:
    _init_backend()
    system = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    name = "CPU"
    for candidate in ("CUDA", "ROCm", "HIP", "Metal", "Vulkan", "SYCL", "OpenCL"):
        if candidate in system:
            name = candidate
            break
    return BackendInfo(name, gpu, llama_cpp.__version__, system.strip())


# --- generation values ------------------------------------------------------------------
@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 512
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64
    seed: int = -1  # -1: a new random seed each reply
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int  # tokens in the whole prompt
    prompt_tokens_processed: int  # of them, those not already in the KV cache
    generated_tokens: int
    time_to_first_token_s: float
    prompt_seconds: float
    generation_seconds: float
    stop_reason: str  # eos, length, stop_string, stopped, context_full
    dropped_messages: int = 0  # oldest turns left out so that the conversation fits

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.generation_seconds if self.generation_seconds else 0.0

    @property
    def prompt_tokens_per_s(self) -> float:
        n, s = self.prompt_tokens_processed, self.prompt_seconds
        return n / s if s else 0.0


@dataclass(frozen=True)
class LoadedModel:
    info: GGUFInfo
    launch: ResolvedLaunch
    n_ctx: int  # read back from the context
    n_batch: int
    n_ubatch: int
    load_seconds: float
    description: str
    log: tuple[str, ...] = field(repr=False, default=())


@dataclass(frozen=True)
class BatchMeasurement:
    n_batch: int
    n_ubatch: int
    prompt_tokens_per_s: float
    gen_tokens_per_s: float
    time_to_first_token_s: float
    log: tuple[str, ...] = field(repr=False, default=())
    gpu_used_peak: tuple[int, ...] = ()  # NVML used memory per GPU while the context lived


class Stopped(Exception):
    """Internal: the abort callback fired during a decode."""


class Engine:
    def __init__(self) -> None:
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
        _init_backend()
        cancel = cancel or threading.Event()
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
            reason = _last_error_line() or "llama.cpp could not load the file"
            raise EngineError(f"could not load {launch.model_path.name}: {reason}")
        cparams = self._context_params(launch, launch.batch.n_batch, launch.batch.n_ubatch)
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            llama_cpp.llama_model_free(model)
            reason = _last_error_line() or "out of memory?"
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
                f"{_last_error_line() or 'out of memory?'}"
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
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
        if self._model:
            llama_cpp.llama_model_free(self._model)
        self._ctx = self._model = self._vocab = None
        self._cached = []
        self.loaded = None

    # -- stop ------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Thread-safe: ends the running generation (or prompt processing) within one graph node."""
        self._cancel.set()

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

    def _make_sampler(self, params: SamplingParams) -> Any:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = llama_cpp.llama_sampler_chain_add
        if params.repeat_penalty != 1.0:
            n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
            add(
                chain,
                llama_cpp.llama_sampler_init_penalties(
                    n_vocab, params.repeat_last_n, params.repeat_penalty, 0.0, 0.0
                ),
            )
        if params.temperature <= 0:
            add(chain, llama_cpp.llama_sampler_init_greedy())
            return chain
        seed = params.seed if params.seed >= 0 else llama_cpp.LLAMA_DEFAULT_SEED
        if params.top_k > 0:
            add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
        add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
        add(chain, llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
        add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
        add(chain, llama_cpp.llama_sampler_init_dist(seed))
        return chain

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
        self._cancel = cancel or threading.Event()
        t0 = time.perf_counter()
        keep = _common_prefix(self._cached, prompt_tokens)
        if keep == len(prompt_tokens):
            keep -= 1  # at least one token must be decoded to get fresh logits
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self._ctx), 0, keep, -1)
        del self._cached[keep:]
        todo = prompt_tokens[keep:]

        sampler = self._make_sampler(params)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stream = _StopStringFilter(params.stop, on_text)
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


class _StopStringFilter:
    """Passes text on, holding back any tail that could begin a stop string."""

    def __init__(self, stops: Sequence[str], sink: Callable[[str], None]) -> None:
        self.stops = [s for s in stops if s]
        self.sink = sink
        self.pending = ""
        self.text = ""

    def _emit(self, piece: str) -> None:
        if piece:
            self.text += piece
            self.sink(piece)

    def feed(self, piece: str) -> bool:
        """Returns True when a stop string was reached (the text before it is emitted)."""
        if not self.stops:
            self._emit(piece)
            return False
        self.pending += piece
        for stop in self.stops:
            at = self.pending.find(stop)
            if at >= 0:
                self._emit(self.pending[:at])
                self.pending = ""
                return True
        hold = max(
            (k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])),
            default=0,
        )
        self._emit(self.pending[: len(self.pending) - hold])
        self.pending = self.pending[len(self.pending) - hold :]
        return False

    def flush(self) -> None:
        self._emit(self.pending)
        self.pending = ""
