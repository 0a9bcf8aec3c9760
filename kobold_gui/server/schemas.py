"""Request bodies of the two APIs as pydantic models: a wrong type or a bad value becomes a
clear 422/400 message naming the field. Unknown fields are ignored, as KoboldCPP and
llama.cpp's server do: front-ends send many options of other back-ends."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- KoboldAI (KoboldCPP's field names and defaults) -------------------------------------
class KoboldGenerate(_Body):
    prompt: str = ""
    memory: str = ""  # put before the prompt, kept when the prompt is cut to fit
    max_length: int = Field(180, ge=1)
    max_context_length: int | None = Field(None, ge=1)
    temperature: float = Field(0.7, ge=0)
    top_k: int = Field(100, ge=0)
    top_p: float = Field(0.92, ge=0, le=1)
    min_p: float = Field(0.0, ge=0, le=1)
    rep_pen: float = Field(1.0, gt=0)
    rep_pen_range: int = Field(320, ge=0)
    stop_sequence: list[str] | None = None
    sampler_seed: int = -1
    genkey: str = ""
    logit_bias: dict[str, float] = {}
    ban_eos_token: bool = False
    trim_stop: bool = True  # the text never contains the stop sequence here

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        """KoboldCPP takes the largest of rep_pen, repeat_penalty and repetition_penalty."""
        if isinstance(data, dict):
            pens = [data.get(k) for k in ("rep_pen", "repeat_penalty", "repetition_penalty")]
            numbers = [p for p in pens if isinstance(p, (int, float)) and not isinstance(p, bool)]
            if numbers and len(numbers) == len([p for p in pens if p is not None]):
                data = {**data, "rep_pen": max(numbers)}
        return data


class GenKey(_Body):
    genkey: str = ""


class TokenCount(_Body):
    prompt: str = ""
    special: bool = True


# -- OpenAI -------------------------------------------------------------------------------
class _OpenAISampling(_Body):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, ge=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    logit_bias: dict[str, float] | None = None
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    # llama.cpp server extensions, commonly sent by front-ends
    top_k: int = Field(0, ge=0)
    min_p: float = Field(0.0, ge=0, le=1)
    repeat_penalty: float = Field(1.0, gt=0)

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

    @model_validator(mode="after")
    def _one_prompt(self) -> CompletionRequest:
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise ValueError("send one prompt per request (a list of exactly one string)")
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
