"""Measure, don't guess: a sweep of (n_batch, n_ubatch) pairs on the loaded model.

Each candidate runs on a fresh context of the already loaded model (weights are not
reloaded): P prompt tokens, then G single-token steps, timed after llama_synchronize. Every
pair is measured `repeats` times, the rounds interleaved (all pairs once, then all again), so
that a burst of load elsewhere hits every pair alike. The memory of each pair is llama.cpp's
own: its compute and KV buffer sizes at context creation, and the NVML used-memory rise per
GPU while the context exists (where there are GPUs). The results and the measured policy's
choice are in core/benchmark/results.py."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence

from kobold_gui.core.benchmark.estimate import sweep_seconds
from kobold_gui.core.benchmark.results import (
    DEFAULT_GEN_TOKENS,
    DEFAULT_PROMPT_TOKENS,
    DEFAULT_REPEATS,
    Candidate,
    SweepRow,
    merge_runs,
)
from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.engine.types import EngineError, Stopped
from kobold_gui.core.llama.buffers import parse_buffer_sizes


def run_sweep(
    engine: Engine,
    candidates: Sequence[Candidate],
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    gen_tokens: int = DEFAULT_GEN_TOKENS,
    on_run: Callable[[int, SweepRow], None] | None = None,
    cancel: threading.Event | None = None,
    gpu_used: Callable[[], Sequence[int]] | None = None,
    repeats: int = DEFAULT_REPEATS,
    on_estimate: Callable[[float], None] | None = None,
) -> list[SweepRow]:
    """Measure every candidate `repeats` times, interleaved; one row per candidate (the
    merged runs, in candidate order). A pair that fails (out of memory) is recorded with its
    error and not run again. `on_run(i, run)` follows each single run (i counts runs). Cancel
    ends it between or inside runs: the rows then hold the runs finished so far, and the
    loaded model stays usable. `on_estimate(seconds)` follows the warm-up: the whole
    sweep's time at the warm-up's speeds (core/benchmark/estimate.py)."""
    cancel = cancel or threading.Event()
    if candidates:
        speeds = _warm_up(engine, candidates[0], prompt_tokens, gen_tokens, cancel)
        if on_estimate and speeds:
            on_estimate(sweep_seconds(candidates, repeats, prompt_tokens, gen_tokens, *speeds))
    runs: dict[Candidate, list[SweepRow]] = {c: [] for c in candidates}
    count = 0
    for _round in range(max(1, repeats)):
        for c in candidates:
            if cancel.is_set():
                break
            if runs[c] and runs[c][-1].error:
                continue
            try:
                run = _measure(engine, c, prompt_tokens, gen_tokens, cancel, gpu_used)
            except Stopped:
                cancel.set()
                break
            runs[c].append(run)
            if on_run:
                on_run(count, run)
            count += 1
    return [merge_runs(r) for r in runs.values() if r]


def _warm_up(
    engine: Engine, first: Candidate, prompt_tokens: int, gen_tokens: int, cancel: threading.Event
) -> tuple[float, float] | None:
    """Not recorded: the first context of a process pays for loading kernels and allocating
    pools, which no candidate should carry. Its speeds (prompt, generation) give the
    estimate (a little slow, so the estimate errs long)."""
    with contextlib.suppress(EngineError, Stopped):
        m = engine.measure_batch(
            first.n_batch,
            first.n_ubatch,
            min(prompt_tokens, first.n_batch),
            min(gen_tokens, 4),
            cancel,
        )
        return m.prompt_tokens_per_s, m.gen_tokens_per_s
    return None


def _measure(
    engine: Engine,
    c: Candidate,
    prompt_tokens: int,
    gen_tokens: int,
    cancel: threading.Event,
    gpu_used: Callable[[], Sequence[int]] | None,
) -> SweepRow:
    before = tuple(gpu_used()) if gpu_used else ()
    try:
        m = engine.measure_batch(c.n_batch, c.n_ubatch, prompt_tokens, gen_tokens, cancel, gpu_used)
    except EngineError as e:
        return SweepRow(c.n_batch, c.n_ubatch, c.kind, 0.0, 0.0, 0.0, 0, 0, (), str(e))
    sizes = parse_buffer_sizes(m.log)
    rise = tuple(max(0, a - b) for a, b in zip(m.gpu_used_peak or before, before, strict=False))
    return SweepRow(
        c.n_batch,
        c.n_ubatch,
        c.kind,
        m.prompt_tokens_per_s,
        m.gen_tokens_per_s,
        m.time_to_first_token_s,
        sum(k.get("compute", 0) for k in sizes.values()),
        sum(k.get("KV", 0) for k in sizes.values()),
        rise,
        None,
        (m.prompt_tokens_per_s,),
        (m.gen_tokens_per_s,),
    )
