"""Timing one (n_batch, n_ubatch) pair on a fresh context of a loaded model, in this process
(LocalEngine.measure_batch; the benchmark sweep calls it for every pair). Every clock reading
follows llama_synchronize: llama_decode returns before the GPU has finished."""

from __future__ import annotations

import time
from typing import Any

import llama_cpp

from kobold_gui.core.engine.llama_params import context_params, decode_on
from kobold_gui.core.engine.protocol import GpuUsed
from kobold_gui.core.engine.types import BatchMeasurement, EngineError
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.llama.log import first_error_since, llama_log_count, llama_log_since


def time_batches(
    model: Any,
    n_vocab: int,
    launch: ResolvedLaunch,
    n_batch: int,
    n_ubatch: int,
    prompt_tokens: int,
    gen_tokens: int,
    abort_cb: Any,
    gpu_used: GpuUsed | None = None,
) -> BatchMeasurement:
    """A prompt of `prompt_tokens`, then `gen_tokens` single-token steps, on a context made
    for this pair (and freed after). Raises Stopped through `abort_cb`, EngineError when
    there is no such context."""
    mark = llama_log_count()
    cparams = context_params(launch, n_batch, n_ubatch, abort_cb)
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    if not ctx:
        raise EngineError(
            f"no context for n_batch {n_batch}, n_ubatch {n_ubatch}: "
            f"{first_error_since(mark) or 'out of memory?'}"
        )
    log = llama_log_since(mark)
    try:
        # Token ids spread over the vocabulary: speed does not depend on the text.
        tokens = [(i * 7919 + 13) % (n_vocab - 1) + 1 for i in range(prompt_tokens)]
        t0, t_prompt, t_first, t_gen, t_end = _timed_run(ctx, tokens, n_batch, gen_tokens)
        used = tuple(gpu_used()) if gpu_used else ()
    finally:
        llama_cpp.llama_free(ctx)
    return BatchMeasurement(
        n_batch=n_batch,
        n_ubatch=n_ubatch,
        prompt_tokens_per_s=prompt_tokens / (t_prompt - t0),
        gen_tokens_per_s=gen_tokens / (t_end - t_gen) if gen_tokens else 0.0,
        time_to_first_token_s=t_first - t0,
        log=tuple(log),
        gpu_used_peak=used,
    )


def _timed_run(
    ctx: Any, tokens: list[int], n_batch: int, gen_tokens: int
) -> tuple[float, float, float, float, float]:
    """The clock at: start, prompt done, first token ready, generation start, end."""
    t0 = time.perf_counter()
    pos = 0
    while pos < len(tokens):
        chunk = tokens[pos : pos + n_batch]
        decode_on(ctx, chunk)
        pos += len(chunk)
    llama_cpp.llama_synchronize(ctx)
    t_prompt = time.perf_counter()
    llama_cpp.llama_get_logits_ith(ctx, -1)  # the first token could be sampled now
    t_first = time.perf_counter()
    for i in range(min(2, gen_tokens)):  # untimed: CUDA graphs are captured here
        decode_on(ctx, [tokens[i]])
        llama_cpp.llama_synchronize(ctx)
    t_gen = time.perf_counter()
    for i in range(gen_tokens):
        decode_on(ctx, [tokens[i % len(tokens)]])
        llama_cpp.llama_synchronize(ctx)
    t_end = time.perf_counter()
    return t0, t_prompt, t_first, t_gen, t_end
