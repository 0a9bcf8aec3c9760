"""Plain data the engine takes and gives: sampling settings, results, the loaded model's
facts, errors. Nothing here loads llama.cpp, so panels and the CLI can use these types
without loading the native library."""

from __future__ import annotations

from dataclasses import dataclass, field


class EngineError(RuntimeError):
    """Something the user should be told about (the message is written for them)."""


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
