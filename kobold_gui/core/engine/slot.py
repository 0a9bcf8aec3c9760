"""One request of the parallel slots (core/engine/slots.py) and the state of the sequence
that serves it: its prompt still to decode, the token to decode next, its own sampler chain,
text stream, stop strings and counts."""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llama_cpp

from kobold_gui.core.engine.logprobs import token_logprob
from kobold_gui.core.engine.protocol import Engine, OnText
from kobold_gui.core.engine.sampler import make_sampler
from kobold_gui.core.engine.stop_strings import StopStringFilter
from kobold_gui.core.engine.types import GenerationResult, SamplingParams, TokenLogprob
from kobold_gui.core.engine.vocab import Vocab

log = logging.getLogger(__name__)

Prepare = Callable[[Engine], tuple[list[int], SamplingParams]]

GUARANTEED_REPLY = 128  # tokens of reply a request's reservation always holds


def reservation(n_prompt: int, max_tokens: int, n_ctx: int, n_slots: int) -> int:
    """The KV cells a request is sure to get: its prompt and its whole reply when that
    fits in a fair share of the context (n_ctx / n_slots), else its prompt and at least
    GUARANTEED_REPLY tokens of reply (or the whole share). A reply that grows past its
    reservation may be cut ("length") when the others fill the cache; one without
    max_tokens (OpenAI's default: the rest of the context) does not make the others wait."""
    share = n_ctx // n_slots
    return min(n_prompt + max_tokens, max(share, n_prompt + GUARANTEED_REPLY), n_ctx)


@dataclass(eq=False)
class SlotRequest:
    """A generation for the slots. `prepare(engine)` runs on the engine thread when the
    request takes a slot (tokenizing needs the model) and gives its prompt tokens and
    sampling; text goes to `on_text` on the engine thread. Ends with `result` (also when
    stopped half-way), or `error`, or neither (cancelled before it started)."""

    prepare: Prepare
    on_text: OnText
    on_start: Callable[[SlotRequest], None] | None = None
    on_done: Callable[[SlotRequest], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    result: GenerationResult | None = None
    error: BaseException | None = None
    tokens: list[int] = field(default_factory=list)  # set by prepare()
    params: SamplingParams | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def started(self) -> None:
        if self.on_start is not None:
            try:
                self.on_start(self)
            except Exception:
                log.exception("slot start listener failed")

    def finish(self, result: GenerationResult | None, error: BaseException | None) -> None:
        """Once: later calls are ignored."""
        if self._done.is_set():
            return
        self.result, self.error = result, error
        self._done.set()
        if self.on_done is not None:
            try:
                self.on_done(self)
            except Exception:
                log.exception("slot done listener failed")


class Slot:
    """A sequence of the context serving one request."""

    def __init__(
        self, seq: int, request: SlotRequest, vocab: Vocab, n_ctx: int, reserved: int, kept: int
    ) -> None:
        """`kept`: the prompt's first tokens, already in the sequence's cache."""
        assert request.params is not None
        self.seq = seq
        self.request = request
        self.params: SamplingParams = request.params
        self.kept = kept
        self.decoded = request.tokens[:kept]  # the tokens in the sequence's KV cells
        self.todo = request.tokens[kept:]  # prompt tokens not decoded yet
        self.next_token: int | None = None  # sampled, to be decoded in the next step
        self.batch_index = -1  # where this slot's logits are in the step's batch
        self.reserved = reserved  # KV cells kept for it (reservation())
        self._vocab = vocab
        self._n_ctx = n_ctx
        self._sampler = make_sampler(vocab.handle, self.params, request.tokens)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stream = StopStringFilter(self.params.stop, request.on_text)
        self.generated = 0
        self.reason = "length"  # eos, length, stop_string, stopped, context_full
        self.logprobs: list[TokenLogprob] = []
        self.t0 = time.perf_counter()
        self.t_prompt: float | None = None
        self.t_first: float | None = None

    @property
    def n_past(self) -> int:
        """Tokens of this sequence in the KV cache."""
        return len(self.decoded)

    def take(self, budget: int) -> list[int]:
        """The next chunk of the prompt, at most `budget` tokens."""
        chunk = self.todo[:budget]
        del self.todo[: len(chunk)]
        return chunk

    def sample(self, ctx: Any) -> bool:
        """Sample the next token from this slot's logits in the batch just decoded and
        stream its text; True when the reply ended (`reason` says why)."""
        if self.t_prompt is None:
            self.t_prompt = time.perf_counter()
        p, vocab = self.params, self._vocab
        if self.generated >= p.max_tokens:
            return True
        token = llama_cpp.llama_sampler_sample(self._sampler, ctx, self.batch_index)
        if vocab.is_end(token):
            self.reason = "eos"
            return True
        self.generated += 1
        if self.t_first is None:
            self.t_first = time.perf_counter()
        if p.logprobs:
            self.logprobs.append(
                token_logprob(ctx, vocab.n_tokens, token, p.logprobs, vocab.text, self.batch_index)
            )
        if self.stream.feed(self._decoder.decode(vocab.piece(token))):
            self.reason = "stop_string"
            return True
        if self.n_past + 1 >= self._n_ctx:
            self.reason = "context_full"
            return True
        if self.generated >= p.max_tokens:
            return True
        self.next_token = token
        return False

    def close(self) -> GenerationResult:
        """Free the sampler (the KV cells are the loop's); the request's result."""
        if self._sampler is not None:
            llama_cpp.llama_sampler_free(self._sampler)
            self._sampler = None
        if self.reason != "stop_string":
            self.stream.feed(self._decoder.decode(b"", final=True))
            self.stream.flush()
        elif not self.params.trim_stop:
            self.stream.emit_stop()
        t_end = time.perf_counter()
        t_prompt = self.t_prompt or t_end
        n_prompt = len(self.request.tokens)
        return GenerationResult(
            text=self.stream.text,
            prompt_tokens=n_prompt,
            prompt_tokens_processed=n_prompt - self.kept - len(self.todo),
            generated_tokens=self.generated,
            time_to_first_token_s=(self.t_first or t_end) - self.t0,
            prompt_seconds=t_prompt - self.t0,
            generation_seconds=t_end - t_prompt,
            stop_reason=self.reason,
            logprobs=tuple(self.logprobs),
        )
