"""How long a sweep takes, said before it starts, and a default sweep that fits the machine.

On a CPU the default sweep (the stops from 128 to 4096, both ubatch rules, 2048-token
prompts, 3 rounds) took about 16.5 minutes on 2 cores: there, sizes above 1024 change
nothing llama.cpp does on the CPU worth the wait, and a 1024-token prompt fills the largest
batch once. The estimate comes from a quick measured first pair (the sweep's warm-up)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kobold_gui.core.benchmark.results import DEFAULT_PROMPT_TOKENS, Candidate

CPU_SIZES = (128, 256, 512, 1024)
CPU_PROMPT_TOKENS = 1024


@dataclass(frozen=True)
class SweepSize:
    blas_sizes: tuple[int, ...]  # () = candidates_from's default (the stops from 128)
    prompt_tokens: int
    why: str


def default_sweep(on_cpu: bool) -> SweepSize:
    """The sweep run without sizes given: smaller on a CPU-only launch."""
    if on_cpu:
        sizes = ", ".join(map(str, CPU_SIZES))
        why = f"CPU only: BLAS {sizes} with {CPU_PROMPT_TOKENS}-token prompts"
        return SweepSize(CPU_SIZES, CPU_PROMPT_TOKENS, why)
    return SweepSize((), DEFAULT_PROMPT_TOKENS, "")


def sweep_seconds(
    candidates: Sequence[Candidate],
    repeats: int,
    prompt_tokens: int,
    gen_tokens: int,
    prompt_tps: float,
    gen_tps: float,
) -> float:
    """The sweep's time at these speeds (one pair's, measured): every run processes the
    prompt and generates; a context is made for each (a little extra per run)."""
    if prompt_tps <= 0 or gen_tps <= 0:
        return 0.0
    per_run = prompt_tokens / prompt_tps + gen_tokens / gen_tps + 0.1
    return per_run * len(candidates) * max(1, repeats)


def duration_text(seconds: float) -> str:
    """'about 40 s', 'about 3 min', 'about 1 h 10 min'."""
    if seconds < 60:
        return f"about {max(1, round(seconds / 5) * 5)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60} min"
