"""Plain data the engine takes and gives: sampling settings, results, the loaded model's
facts, errors. Nothing here loads llama.cpp, so panels and the CLI can use these types
without loading the native library."""

from __future__ import annotations

from dataclasses import dataclass, field


class EngineError(RuntimeError):
    """Something the user should be told about (the message is written for them)."""


class BadTokenIds(EngineError):
    """Token ids outside the model's vocabulary (a request's fault, not the engine's)."""


class EmptyPrompt(EngineError):
    """A generation asked for with no prompt tokens at all (a request's fault)."""


class LoadCancelled(EngineError):
    pass


class ModelLost(EngineError):
    """The model is gone (its engine process ended, e.g. a remote machine dropped): it
    counts as unloaded; the message says why."""


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
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit)
    ban_eos: bool = False  # never end the reply with the end-of-generation token
    # llama.cpp's other samplers; the defaults leave each one out of the chain
    repeat_penalty_slope: float = 1.0  # KoboldCPP's: the older half of the window gets less
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    typical_p: float = 1.0
    top_n_sigma: float = 0.0  # > 0: keep the tokens within n standard deviations of the top
    xtc_probability: float = 0.0
    xtc_threshold: float = 0.1
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1  # -1: the whole context
    dry_sequence_breakers: tuple[str, ...] = ("\n", ":", '"', "*")
    dynatemp_range: float = 0.0  # > 0: the temperature follows the entropy, +- this
    dynatemp_exponent: float = 1.0
    mirostat: int = 0  # 1 or 2: mirostat replaces top-k/top-p/min-p/typical/XTC
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    grammar: str = ""  # GBNF; the reply must match it
    sampler_order: tuple[str, ...] = ()  # names of SAMPLER_NAMES; () is llama.cpp's order
    banned_strings: tuple[str, ...] = ()  # the reply never contains these
    logprobs: int = 0  # > 0: the log-probability of each token and of this many top choices
    trim_stop: bool = True  # False: the reply ends with the stop string that ended it


# The samplers whose place in the chain sampler_order sets, in llama.cpp's default order.
SAMPLER_NAMES = (
    "penalties",
    "dry",
    "top_n_sigma",
    "top_k",
    "typical",
    "top_p",
    "min_p",
    "xtc",
    "temperature",
)


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, its log-probability before sampling, and the most
    likely tokens at that place with theirs (the model's distribution, as llama-server
    reports by default)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


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
    logprobs: tuple[TokenLogprob, ...] = ()  # when SamplingParams.logprobs asked for them

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.generation_seconds if self.generation_seconds else 0.0

    @property
    def prompt_tokens_per_s(self) -> float:
        n, s = self.prompt_tokens_processed, self.prompt_seconds
        return n / s if s else 0.0


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
