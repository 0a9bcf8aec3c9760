"""OpenAI request bodies (with llama-server's and KoboldCPP's sampling extensions, which
front-ends send to OpenAI-compatible servers), as pydantic models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from kobold_gui.server.schemas import LlamaSamplers, _Body


# -- OpenAI -------------------------------------------------------------------------------
class _OpenAISampling(LlamaSamplers):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0)  # OpenAI stops at 2; front-ends send up to 5
    top_p: float = Field(1.0, ge=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    logit_bias: dict[str, float] | None = None
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    # llama-server's and KoboldCPP's extensions, commonly sent by front-ends
    top_k: int = 0  # 0 or less: off
    min_p: float = Field(0.0, ge=0, le=1)
    typical_p: float = Field(1.0, ge=0, le=1)
    top_n_sigma: float = Field(0.0)
    repeat_penalty: float = Field(1.0, gt=0)
    repeat_last_n: int = Field(64, ge=-1)
    samplers: list[str | int] | None = None  # the order: llama.cpp's names or KoboldCPP's ids
    grammar: str = ""
    json_schema: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    banned_tokens: list[str] | None = None  # KoboldCPP's banned strings
    ignore_eos: bool = False

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        """Other servers' names, which SillyTavern's Text Completion sends to KoboldCPP's
        and llama-server's /v1/completions: KoboldCPP's (mirostat_mode, sampler_order,
        rep_pen, rep_pen_range, typical, nsigma, banned_strings), text-generation-webui's
        repetition_penalty, llama-server's tfs_z."""
        if isinstance(data, dict):
            for alias, name in (
                ("mirostat_mode", "mirostat"),
                ("tfs_z", "tfs"),
                ("banned_strings", "banned_tokens"),
                ("sampler_order", "samplers"),
                ("repetition_penalty", "repeat_penalty"),
                ("rep_pen", "repeat_penalty"),
                ("rep_pen_range", "repeat_last_n"),
                ("typical", "typical_p"),
                ("nsigma", "top_n_sigma"),
            ):
                if alias in data and name not in data:
                    data = {**data, name: data[alias]}
        return data

    def sampling(self, max_tokens: int) -> dict[str, Any]:
        """The sampling fields under their neutral names (core/engine/sampling_request.py)."""
        names = [
            "temperature",
            "top_p",
            "top_k",
            "min_p",
            "typical_p",
            "top_n_sigma",
            "repeat_penalty",
            "repeat_last_n",
            "presence_penalty",
            "frequency_penalty",
            "dry_multiplier",
            "dry_base",
            "dry_allowed_length",
            "dry_penalty_last_n",
            "dry_sequence_breakers",
            "xtc_threshold",
            "xtc_probability",
            "dynatemp_range",
            "dynatemp_exponent",
            "mirostat",
            "mirostat_tau",
            "mirostat_eta",
            "top_a",
            "tfs",
            "smoothing_factor",
            "grammar",
            "json_schema",
            "response_format",
            "logit_bias",
        ]
        return {name: getattr(self, name) for name in names} | {
            "max_tokens": max_tokens,
            "seed": self.seed if self.seed is not None else -1,
            "stop": list(self.stops),
            "sampler_order": self.samplers,
            "banned_strings": self.banned_tokens,
            "ban_eos": self.ignore_eos,
            "logprobs": self.top_logprobs_wanted,
        }

    @property
    def top_logprobs_wanted(self) -> int:
        """How many top choices per token the reply's logprobs list (0: no logprobs)."""
        return 0

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))

    @property
    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class CompletionRequest(_OpenAISampling):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=20)

    @property
    def top_logprobs_wanted(self) -> int:
        return 0 if self.logprobs is None else max(self.logprobs, 1)

    @model_validator(mode="after")
    def _one_prompt(self) -> CompletionRequest:
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise ValueError(
                f"prompt: a list of {len(self.prompt)} prompts; this server answers one prompt"
                " per request (send a string, or a list of exactly one string)"
            )
        return self

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class ContentPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class ChatRequest(_OpenAISampling):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool = False
    top_logprobs: int = Field(0, ge=0, le=20)

    @property
    def top_logprobs_wanted(self) -> int:
        return max(self.top_logprobs, 1) if self.logprobs else 0
