"""A model's vocabulary and chat template: tokenizing, token pieces and chat prompts.

Both engines use it: the in-process engine on its loaded model, the child-process engine on
a vocab-only copy of the model kept in the app (core/engine/child.py), so that prompts are
built and fitted without asking the child."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import llama_cpp

from kobold_gui.core.engine.prompt_template import ChatFormatter, Message
from kobold_gui.core.engine.types import BadTokenIds, EngineError
from kobold_gui.core.models.gguf_info import GGUFInfo


class Vocab:
    """The vocabulary of a loaded llama.cpp model (valid while the model is)."""

    def __init__(self, model: Any, info: GGUFInfo) -> None:
        self.handle: Any = llama_cpp.llama_model_get_vocab(model)
        self._formatter = ChatFormatter(info.chat_template, info.bos_token, info.eos_token)
        self._bos_text = info.bos_token

    @property
    def n_tokens(self) -> int:
        return int(llama_cpp.llama_vocab_n_tokens(self.handle))

    def is_end(self, token: int) -> bool:
        """An end-of-generation token (EOS, EOT, ...)."""
        return bool(llama_cpp.llama_vocab_is_eog(self.handle, token))

    def tokenize(
        self, text: str, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 16
        for _attempt in range(2):  # a negative count says how much room was needed
            buf = (llama_cpp.llama_token * cap)()
            n = llama_cpp.llama_tokenize(
                self.handle, raw, len(raw), buf, cap, add_special, parse_special
            )
            if n >= 0:
                return list(buf[:n])
            cap = -n
        raise EngineError("the text could not be tokenized")

    def piece(self, token: int) -> bytes:
        """The bytes of one token (a piece of UTF-8, not always a whole character)."""
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.handle, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.handle, token, buf, -n, 0, False)
        return buf.raw[:n]

    def text(self, token: int) -> str:
        """One token's text (a piece of a character shows as U+FFFD)."""
        return self.piece(token).decode("utf-8", errors="replace")

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of token ids; ids outside the vocabulary raise BadTokenIds."""
        n_vocab = self.n_tokens
        bad = [t for t in tokens if not 0 <= t < n_vocab]
        if bad:
            raise BadTokenIds(f"token ids must be 0 to {n_vocab - 1}, got {bad[0]}")
        arr = (llama_cpp.llama_token * max(len(tokens), 1))(*tokens)
        cap = 8 * len(tokens) + 16
        for _attempt in range(2):  # a negative count says how much room was needed
            buf = ctypes.create_string_buffer(cap)
            n = llama_cpp.llama_detokenize(self.handle, arr, len(tokens), buf, cap, False, True)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", errors="replace")
            cap = -n
        raise EngineError("the tokens could not be turned into text")

    def format_chat(self, messages: Sequence[Message]) -> str:
        return self._formatter.render(messages)

    def chat_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The prompt tokens for a conversation, BOS added only when the template lacks it."""
        prompt = self.format_chat(messages)
        bos = self._bos_text
        add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.handle)) and not (
            bos and prompt.startswith(bos)
        )
        tokens = self.tokenize(prompt, add_special=False, parse_special=True)
        if add_bos:
            tokens.insert(0, llama_cpp.llama_vocab_bos(self.handle))
        return tokens


def load_vocab_only(path: Path, info: GGUFInfo) -> tuple[Any, Vocab]:
    """A vocab-only model of the file (no weights, no device) and its Vocab; the caller
    frees the model with llama_model_free."""
    mparams = llama_cpp.llama_model_default_params()
    mparams.vocab_only = True
    no_devices = (ctypes.c_void_p * 1)(None)  # no device: no GPU context for a vocab
    mparams.devices = ctypes.cast(no_devices, ctypes.c_void_p)
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
    if not model:
        raise EngineError(f"could not read the vocabulary of {path.name}")
    return model, Vocab(model, info)
