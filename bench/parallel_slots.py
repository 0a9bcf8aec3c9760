"""Would parallel slots beat a queue? llama.cpp can decode one token for each of k sequences
in one batch. This times generation steps of k = 1, 2, 4, 8 sequences on one context
(n_seq_max = 8) of the loaded model: the aggregate tokens/s of k slots vs one sequence at
a time (what the API's FIFO queue does), and how long each client waits per token.

    .venv/bin/python -m bench.parallel_slots [--steps 32] [--model PATH] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import llama_cpp

from kobold_gui.core.llama.library import init_backend
from kobold_gui.core.models.files import default_model_path


def _batch_step(ctx: object, batch: object, tokens: list[int], pos: int) -> None:
    b = batch  # llama_batch with room for 8 tokens
    for i, tok in enumerate(tokens):
        b.token[i] = tok  # type: ignore[attr-defined]
        b.pos[i] = pos  # type: ignore[attr-defined]
        b.n_seq_id[i] = 1  # type: ignore[attr-defined]
        b.seq_id[i][0] = i  # type: ignore[attr-defined]
        b.logits[i] = 1  # type: ignore[attr-defined]
    b.n_tokens = len(tokens)  # type: ignore[attr-defined]
    if llama_cpp.llama_decode(ctx, b) != 0:
        raise SystemExit("llama_decode failed")


def measure(model_path: Path, steps: int, threads: int, runs: int) -> None:
    init_backend()
    mparams = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), mparams)
    vocab = llama_cpp.llama_model_get_vocab(model)
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = 4096
    cparams.n_batch = cparams.n_ubatch = 512
    cparams.n_seq_max = 8
    cparams.n_threads = cparams.n_threads_batch = threads
    cparams.no_perf = True
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    mem = llama_cpp.llama_get_memory(ctx)
    batch = llama_cpp.llama_batch_init(512, 0, 8)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    prompt = [(i * 7919 + 13) % (n_vocab - 1) + 1 for i in range(64)]
    print(f"{model_path.name}, {threads} threads, {steps} steps, median of {runs}")
    print(f"{'slots':>6} {'aggregate tok/s':>16} {'per client tok/s':>17} {'vs queue':>9}")
    base = 0.0
    for k in (1, 2, 4, 8):
        rates = []
        for _ in range(runs):
            llama_cpp.llama_memory_clear(mem, True)
            for s in range(k):  # each sequence gets the prompt (one decode per sequence)
                arr = (llama_cpp.llama_token * len(prompt))(*prompt)
                one = llama_cpp.llama_batch_get_one(arr, len(prompt))
                if s == 0:
                    llama_cpp.llama_decode(ctx, one)
                else:
                    llama_cpp.llama_memory_seq_cp(mem, 0, s, -1, -1)
            llama_cpp.llama_synchronize(ctx)
            t0 = time.perf_counter()
            for step in range(steps):
                toks = [prompt[(step + s) % len(prompt)] for s in range(k)]
                _batch_step(ctx, batch, toks, len(prompt) + step)
            llama_cpp.llama_synchronize(ctx)
            rates.append(k * steps / (time.perf_counter() - t0))
        agg = statistics.median(rates)
        base = base or agg
        print(f"{k:>6} {agg:>16.1f} {agg / k:>17.1f} {agg / base:>8.2f}x")
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model")
    args = p.parse_args()
    path = Path(args.model) if args.model else default_model_path()
    assert path is not None
    measure(path, args.steps, args.threads, args.runs)


if __name__ == "__main__":
    main()
