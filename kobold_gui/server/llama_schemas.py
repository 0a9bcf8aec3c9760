"""llama-server's request bodies (its names and defaults): /completion, /tokenize,
/detokenize. SillyTavern's Text Completion type "llamacpp" sends these."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from kobold_gui.server.openai_schemas import _OpenAISampling
from kobold_gui.server.schemas import _Body

# llama-server's one-letter sampler names (its `samplers` may be a string of them)
_SAMPLER_CHARS = {
    "e": "penalties",
    "d": "dry",
    "s": "top_n_sigma",
    "k": "top_k",
    "y": "typical",
    "p": "top_p",
    "m": "min_p",
    "x": "xtc",
    "t": "temperature",
}


def _logit_bias(value: Any) -> Any:
    """llama-server's forms, as {id: bias}: [[id, bias], ...] where bias false bans the
    token, or {id: bias} as OpenAI sends it."""
    if not isinstance(value, list):
        return value
    out: dict[str, Any] = {}
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2):
            return value  # left for the clear message of the type check
        token, bias = pair
        out[str(token)] = float("-inf") if bias is False else bias
    return out


class LlamaCompletion(_OpenAISampling):
    """POST /completion: a prompt (text or token ids) and llama-server's sampling names."""

    prompt: str | list[int] = ""
    n_predict: int = Field(-1, ge=-1, description="-1: until the end of the context")
    temperature: float = Field(0.8, ge=0)
    top_k: int = 40
    top_p: float = Field(0.95, ge=0, le=1)
    min_p: float = Field(0.05, ge=0, le=1)
    n_probs: int = Field(0, ge=0, le=20)
    cache_prompt: bool = True  # always: the cache is kept when the next prompt starts alike

    @model_validator(mode="before")
    @classmethod
    def _llama_forms(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "logit_bias" in data:
                data = {**data, "logit_bias": _logit_bias(data["logit_bias"])}
            samplers = data.get("samplers")
            if isinstance(samplers, str):
                data = {**data, "samplers": [_SAMPLER_CHARS.get(c, c) for c in samplers]}
        return data

    @property
    def top_logprobs_wanted(self) -> int:
        return self.n_probs


class LlamaTokenize(_Body):
    content: str
    add_special: bool = False  # llama-server's default: no BOS
    with_pieces: bool = False


class LlamaDetokenize(_Body):
    tokens: list[int]
