"""Batch policies: how the BLAS batch size B becomes llama.cpp's n_batch and n_ubatch.

n_batch is the logical batch (how many prompt tokens one llama_decode call takes), n_ubatch
the physical one (how many tokens one compute graph runs; the compute buffer grows with it).
The seed rule is KoboldCPP's; other policies (tied, measured) sit beside it, never replace it.
llama.cpp then clamps what it is given (llama_context's constructor, llama-context.cpp):
n_batch <= n_ctx (causal models) and n_ubatch <= n_batch. `effective_batch` applies the policy
and those clamps, and says why each value is what it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# The one table of batch stops: the slider's positions, and KoboldCPP's --batchsize choices
# (other than -1, "don't batch"), which a .kcpps it loads in its launcher must hold.
BLAS_STOPS: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
DEFAULT_BLAS = 512
KOBOLD_UBATCH_CAP = 1024


class BatchPolicy(Protocol):
    """Maps a BLAS batch size to the (n_batch, n_ubatch) pair asked of llama.cpp."""

    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    def pair(self, blas: int) -> tuple[int, int]: ...

    def why(self, blas: int) -> str | None:
        """A short reason when the policy itself changed a value, else None."""
        ...


@dataclass(frozen=True)
class KoboldRule:
    """KoboldCPP's rule: n_batch = B; n_ubatch = B below 1024, else 1024."""

    name: str = "koboldcpp"
    title: str = "KoboldCPP rule (ubatch capped at 1024)"
    cap: int = KOBOLD_UBATCH_CAP

    def pair(self, blas: int) -> tuple[int, int]:
        return blas, blas if blas < self.cap else self.cap

    def why(self, blas: int) -> str | None:
        return f"capped at {self.cap}" if blas > self.cap else None


@dataclass(frozen=True)
class TiedPolicy:
    """n_ubatch = n_batch = B (what later KoboldCPP versions do)."""

    name: str = "tied"
    title: str = "Tied (ubatch = batch)"

    def pair(self, blas: int) -> tuple[int, int]:
        return blas, blas

    def why(self, blas: int) -> str | None:
        return None


@dataclass(frozen=True)
class CustomPolicy:
    """Both set by hand, as llama.cpp allows: n_batch = B, n_ubatch as given."""

    ubatch: int = 512
    name: str = "custom"
    title: str = "Custom (ubatch set by hand)"

    def pair(self, blas: int) -> tuple[int, int]:
        return blas, self.ubatch

    def why(self, blas: int) -> str | None:
        return f"ubatch set by hand to {self.ubatch}"


@dataclass(frozen=True)
class MeasuredPolicy:
    """The pair a sweep on this machine picked (core/benchmark/results.py: measured_choice);
    B is ignored."""

    n_batch: int = 512
    n_ubatch: int = 512
    name: str = "measured"
    title: str = "Measured (from the benchmark)"

    def pair(self, blas: int) -> tuple[int, int]:
        return self.n_batch, self.n_ubatch

    def why(self, blas: int) -> str | None:
        return "measured on this machine"


_ALL: tuple[BatchPolicy, ...] = (KoboldRule(), TiedPolicy(), CustomPolicy(), MeasuredPolicy())
POLICIES: dict[str, BatchPolicy] = {p.name: p for p in _ALL}
DEFAULT_POLICY = "koboldcpp"


def get_policy(name: str) -> BatchPolicy:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(
            f"unknown batch policy {name!r}; choose one of: {', '.join(POLICIES)}"
        ) from None


@dataclass(frozen=True)
class BatchPlan:
    """What a BLAS size really gives once the policy and llama.cpp's clamps are applied."""

    blas: int
    n_batch: int
    n_ubatch: int
    policy: str
    reasons: tuple[str, ...]

    def label(self) -> str:
        text = f"BLAS {self.blas} → n_batch {self.n_batch}, n_ubatch {self.n_ubatch}"
        return f"{text} ({'; '.join(self.reasons)})" if self.reasons else text


def stop_at_or_below(blas: int) -> int:
    """The stop for a value between stops: the largest stop at or below it (the smallest
    stop for a smaller value). Where the slider sits, and what a .kcpps saves.

    Only where a stop must be chosen is a value rounded: the launch itself keeps the value
    as given, as KoboldCPP does (a .kcpps it runs passes --batchsize to llama.cpp unchanged;
    only its argparse choices and its launcher's slider know the stops). Down, never up:
    the compute buffer grows with the batch, so the stop below never asks more memory than
    the value did, and a launch that fitted still fits."""
    return max((s for s in BLAS_STOPS if s <= blas), default=BLAS_STOPS[0])


def effective_batch(blas: int, n_ctx: int, policy: str | BatchPolicy = DEFAULT_POLICY) -> BatchPlan:
    """Apply the policy, then llama.cpp's clamps (n_batch <= n_ctx, n_ubatch <= n_batch)."""
    if blas < 1:
        raise ValueError(f"BLAS batch size must be at least 1, not {blas}")
    if n_ctx < 1:
        raise ValueError(f"context size must be at least 1, not {n_ctx}")
    pol = get_policy(policy) if isinstance(policy, str) else policy
    n_batch, n_ubatch = pol.pair(blas)
    reasons: list[str] = []
    why = pol.why(blas)
    if why:
        reasons.append(why)
    if n_batch > n_ctx:
        n_batch = n_ctx
        reasons.append(f"n_batch limited to the context size {n_ctx}")
    if n_ubatch > n_batch:
        n_ubatch = n_batch
        reasons.append("n_ubatch limited to n_batch")
    return BatchPlan(blas, n_batch, n_ubatch, pol.name, tuple(reasons))


@dataclass(frozen=True)
class MeasuredChoice:
    """What a sweep says for the measured policy: the pairs to use, the pick first and then
    the others from the fastest prompt down (where a launch steps down to when the pick
    does not fit), or no pairs when the sweep could not tell the pairs apart."""

    pairs: tuple[tuple[int, int], ...]
    why: str

    @property
    def pick(self) -> tuple[int, int] | None:
        return self.pairs[0] if self.pairs else None


@dataclass(frozen=True)
class SeedFallback:
    """The measured policy when there is nothing measured to use: the seed rule, saying why."""

    reason: str = "no benchmark of this model with these settings yet"
    name: str = "measured"
    title: str = "Measured (from the benchmark)"

    def pair(self, blas: int) -> tuple[int, int]:
        return KoboldRule().pair(blas)

    def why(self, blas: int) -> str | None:
        cap = KoboldRule().why(blas)
        return f"{self.reason}: KoboldCPP's rule" + (f", {cap}" if cap else "")
