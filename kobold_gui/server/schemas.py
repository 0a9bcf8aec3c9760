"""Request bodies of the two APIs as pydantic models: a wrong type or a bad value becomes a
clear 422/400 message naming the field. Unknown fields are ignored, as KoboldCPP and
llama.cpp's server do: front-ends send many options of other back-ends."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _no_lone_surrogates(cls, data: Any) -> Any:
        """A lone UTF-16 surrogate (a browser's string cut inside an emoji) cannot be
        UTF-8: each becomes U+FFFD, as a browser shows it, instead of failing later."""
        fixed = _replace_surrogates(data)
        if fixed is not data:
            log.warning("a request's text had lone surrogates: replaced with U+FFFD")
        return fixed


def _replace_surrogates(value: Any) -> Any:
    """`value` itself when it has none (no copy), else a copy with each replaced."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        items = {k: _replace_surrogates(v) for k, v in value.items()}
        return items if any(items[k] is not value[k] for k in value) else value
    if isinstance(value, list):
        new = [_replace_surrogates(v) for v in value]
        return new if any(a is not b for a, b in zip(new, value, strict=True)) else value
    return value


class LlamaSamplers(_Body):
    """llama.cpp's samplers that both APIs take under the same names (KoboldCPP's and
    llama-server's): DRY, XTC, dynamic temperature, mirostat, and KoboldCPP's samplers that
    llama.cpp lacks (refused unless neutral, core/engine/sampling_request.py)."""

    dry_multiplier: float = Field(0.0, ge=0)
    dry_base: float = Field(1.75, gt=0)
    dry_allowed_length: int = Field(2, ge=0)
    dry_penalty_last_n: int = Field(-1, ge=-1)
    dry_sequence_breakers: list[str] | str | None = None
    xtc_threshold: float = Field(0.1, ge=0, le=1)
    xtc_probability: float = Field(0.0, ge=0, le=1)
    dynatemp_range: float = Field(0.0, ge=0)
    dynatemp_exponent: float = Field(1.0, ge=0)
    mirostat: int = 0
    mirostat_tau: float = Field(5.0, ge=0)
    mirostat_eta: float = Field(0.1, ge=0)
    top_a: float = 0.0
    tfs: float = 1.0
    smoothing_factor: float = 0.0


# -- KoboldAI (KoboldCPP's field names and defaults) -------------------------------------
class KoboldGenerate(LlamaSamplers):
    prompt: str = ""
    memory: str = ""  # put before the prompt, kept when the prompt is cut to fit
    max_length: int = Field(180, ge=1)
    max_context_length: int | None = Field(None, ge=1)
    temperature: float = Field(0.7, ge=0)
    top_k: int = 100  # 0 or less: off
    top_p: float = Field(0.92, ge=0, le=1)
    min_p: float = Field(0.0, ge=0, le=1)
    typical: float = Field(1.0, ge=0, le=1)
    nsigma: float = Field(0.0, ge=0)
    rep_pen: float = Field(1.0, gt=0)
    rep_pen_range: int = Field(320, ge=-1)
    rep_pen_slope: float = Field(1.0, ge=0)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    sampler_order: list[int | str] | None = None
    grammar: str = ""
    json_schema: dict[str, Any] | None = None
    banned_tokens: list[str] | None = None  # KoboldCPP's banned strings
    stop_sequence: list[str] | None = None
    sampler_seed: int = -1
    genkey: str = ""
    logit_bias: dict[str, float] = {}
    ban_eos_token: bool = False
    trim_stop: bool = True
    logprobs: bool = False

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        """KoboldCPP takes the largest of rep_pen, repeat_penalty and repetition_penalty,
        and use_default_badwordsids for ban_eos_token when that is not sent."""
        if isinstance(data, dict):
            pens = [data.get(k) for k in ("rep_pen", "repeat_penalty", "repetition_penalty")]
            numbers = [p for p in pens if isinstance(p, (int, float)) and not isinstance(p, bool)]
            if numbers and len(numbers) == len([p for p in pens if p is not None]):
                data = {**data, "rep_pen": max(numbers)}
            if "ban_eos_token" not in data and "use_default_badwordsids" in data:
                data = {**data, "ban_eos_token": data["use_default_badwordsids"]}
        return data

    def sampling(self) -> dict[str, Any]:
        """The sampling fields under their neutral names (core/engine/sampling_request.py)."""
        return {
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "min_p": self.min_p,
            "typical_p": self.typical,
            "top_n_sigma": self.nsigma,
            "repeat_penalty": self.rep_pen,
            "repeat_last_n": self.rep_pen_range,
            "repeat_penalty_slope": self.rep_pen_slope,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "dry_multiplier": self.dry_multiplier,
            "dry_base": self.dry_base,
            "dry_allowed_length": self.dry_allowed_length,
            "dry_penalty_last_n": self.dry_penalty_last_n,
            "dry_sequence_breakers": self.dry_sequence_breakers,
            "xtc_threshold": self.xtc_threshold,
            "xtc_probability": self.xtc_probability,
            "dynatemp_range": self.dynatemp_range,
            "dynatemp_exponent": self.dynatemp_exponent,
            "mirostat": self.mirostat,
            "mirostat_tau": self.mirostat_tau,
            "mirostat_eta": self.mirostat_eta,
            "top_a": self.top_a,
            "tfs": self.tfs,
            "smoothing_factor": self.smoothing_factor,
            "sampler_order": self.sampler_order,
            "grammar": self.grammar,
            "json_schema": self.json_schema,
            "banned_strings": self.banned_tokens,
            "stop": self.stop_sequence,
            "seed": self.sampler_seed,
            "logit_bias": self.logit_bias,
            "ban_eos": self.ban_eos_token,
            "trim_stop": self.trim_stop,
            "logprobs": LOGPROBS_TOP if self.logprobs else 0,
        }


LOGPROBS_TOP = 5  # KoboldCPP's top choices per token


class GenKey(_Body):
    genkey: str = ""


class TokenCount(_Body):
    prompt: str = ""
    special: bool = True


class Detokenize(_Body):
    ids: list[int]


class SchemaBody(_Body):
    schema_: dict[str, Any] | None = Field(None, alias="schema")
