"""What every engine does, whichever process runs the model.

Two implementations: LocalEngine (core/engine/local.py) runs llama.cpp in this process;
ChildEngine (core/engine/child.py) runs a LocalEngine in a child process and keeps only the
model's vocabulary here. core/engine/choice.py picks one per launch (the worker does, for the
window and the API). They share this class's side of the work: tokenizing, chat prompts and
fitting a conversation into the context, all on the vocabulary (core/engine/vocab.py).

One Engine is used from one thread at a time; the `cancel` event a call is given may be set
from any thread, and ends the work within one graph node (llama.cpp's abort callback).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.types import (
    BatchMeasurement,
    EmptyPrompt,
    EngineError,
    GenerationResult,
    SamplingParams,
)
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.models.gguf_info import GGUFInfo

if TYPE_CHECKING:
    from kobold_gui.core.engine.vocab import Vocab

OnText = Callable[[str], None]
OnProgress = Callable[[float], None]
GpuUsed = Callable[[], Sequence[int]]


class Engine(ABC):
    loaded: LoadedModel | None
    _vocab: Vocab | None

    @abstractmethod
    def load(
        self,
        launch: ResolvedLaunch,
        on_progress: OnProgress | None = None,
        cancel: threading.Event | None = None,
        info: GGUFInfo | None = None,
    ) -> LoadedModel:
        """Load a model, freeing the one loaded before. `on_progress` gets 0..1; `cancel`
        ends the load with LoadCancelled. Raises ModelFileError (a bad file, before
        llama.cpp sees it), EngineError, ModelLost (the child process ended)."""

    @abstractmethod
    def generate(
        self,
        prompt_tokens: list[int],
        params: SamplingParams,
        on_text: OnText,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Process the prompt (only what follows the prefix already in the KV cache), then
        sample and stream text: `on_text` gets each new piece (complete UTF-8, stop strings
        held back). `cancel` stops at once, also in the middle of the prompt."""

    @abstractmethod
    def measure_batch(
        self,
        n_batch: int,
        n_ubatch: int,
        prompt_tokens: int,
        gen_tokens: int,
        cancel: threading.Event | None = None,
        gpu_used: GpuUsed | None = None,
    ) -> BatchMeasurement:
        """Time one (n_batch, n_ubatch) pair on a fresh context of the loaded model (the
        weights are not reloaded). Raises Stopped when cancelled, EngineError when the
        context fails."""

    @abstractmethod
    def close(self) -> None:
        """Free the model (and its process); `loaded` becomes None."""

    # -- the vocabulary's side, the same for both ------------------------------------------
    def _require(self) -> LoadedModel:
        if self.loaded is None:
            raise EngineError("no model is loaded")
        return self.loaded

    def _vocabulary(self) -> Vocab:
        self._require()
        assert self._vocab is not None
        return self._vocab

    def tokenize(
        self, text: str, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        return self._vocabulary().tokenize(text, add_special, parse_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._vocabulary().detokenize(tokens)

    def check_grammar(self, grammar: str) -> None:
        """SamplerError when a GBNF grammar does not parse (before the reply is queued)."""
        from kobold_gui.core.engine.sampler import check_grammar

        check_grammar(self._vocabulary().handle, grammar)

    def format_chat(self, messages: Sequence[Message]) -> str:
        return self._vocabulary().format_chat(messages)

    def chat_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The prompt tokens for a conversation, BOS added only when the template lacks it."""
        return self._vocabulary().chat_tokens(messages)

    def fit_conversation(
        self, messages: Sequence[Message], reply_tokens: int
    ) -> tuple[list[int], int]:
        """The prompt tokens of the conversation and how many messages were left out: when
        it outgrows the context, the oldest turns after the system prompt (room is kept for
        the reply)."""
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

    def chat_prompt(self, messages: Sequence[Message], reply_tokens: int) -> tuple[list[int], int]:
        """A conversation's prompt tokens, fitted into the context (fit_conversation), and
        how many messages were left out. A conversation that ends with an assistant message
        is continued: that message is put after the generation prompt as the start of the
        reply (a prefill)."""
        prefill = ""
        if messages and messages[-1].role == "assistant":
            prefill = messages[-1].content
            messages = messages[:-1]
        tokens, dropped = self.fit_conversation(messages, reply_tokens)
        if prefill:
            tokens += self.tokenize(prefill, add_special=False, parse_special=False)
        return tokens, dropped

    def chat(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        on_text: OnText,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Answer a conversation (chat_prompt's tokens)."""
        tokens, dropped = self.chat_prompt(messages, params.max_tokens)
        result = self.generate(tokens, params, on_text, cancel)
        return replace(result, dropped_messages=dropped) if dropped else result


def model_info(launch: ResolvedLaunch, info: GGUFInfo | None = None) -> GGUFInfo:
    """What a load reads before it frees anything: a launch without a model or a bad file
    fails here (EngineError, ModelFileError) and the model in use stays loaded."""
    from kobold_gui.core.models.gguf_info import read_gguf

    if launch.model_path is None:
        raise EngineError("no model selected")
    return info or read_gguf(launch.model_path)


def check_prompt(prompt_tokens: Sequence[int], n_ctx: int) -> None:
    """Refuse an empty prompt, and one that leaves no room in the context."""
    if not prompt_tokens:
        raise EmptyPrompt("the prompt is empty")
    if len(prompt_tokens) >= n_ctx:
        raise EngineError(
            f"the prompt has {len(prompt_tokens)} tokens, more than the context of {n_ctx}: "
            "start a new chat or load the model with a larger context size"
        )
