"""--benchmark: the batch-size sweep on this machine, and the measured policy's choice from
it (the same function the window uses: core/benchmark/results.py's measured_choice)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from kobold_gui.cli.common import launch_config, model_path, open_inventory, resolve
from kobold_gui.cli.parser import CliError
from kobold_gui.core.benchmark.estimate import SweepSize, default_sweep, duration_text
from kobold_gui.core.benchmark.results import (
    Candidate,
    SweepError,
    SweepRow,
    candidates_from,
    measured_choice,
    save_sweep,
    sweep_identity,
)
from kobold_gui.core.benchmark.sweep import run_sweep
from kobold_gui.core.engine.choice import engine_for
from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.hardware.nvml import GpuInventory
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.llama.library import backend_info
from kobold_gui.core.models.gguf_info import read_gguf


def _int_list(text: str | None, flag: str) -> list[int]:
    if not text:
        return []
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"{flag}: expected numbers like 512,2048, got {text!r}") from None


def _pairs(text: str | None) -> list[tuple[int, int]]:
    if not text:
        return []
    out = []
    for item in text.split(","):
        try:
            n_batch, n_ubatch = (int(x) for x in item.split(":"))
        except ValueError:
            raise CliError(f"--pairs: expected NB:NU pairs like 2048:512, got {item!r}") from None
        out.append((n_batch, n_ubatch))
    return out


def _check_flags(args: argparse.Namespace) -> None:
    """What the flags alone say, before the model is read or its warnings printed."""
    if args.gen_tokens < 1:
        raise CliError("--gen-tokens must be at least 1 (generation speed is measured)")
    if not 0 < args.share <= 100:
        raise CliError("--share is a percentage of the best generation speed: 1 to 100")
    if args.repeats < 1:
        raise CliError("--repeats must be at least 1")


def _check(args: argparse.Namespace, context: int, default_prompt: int) -> tuple[int, int]:
    gen = args.gen_tokens
    prompt = args.prompt_tokens or min(default_prompt, context - gen - 2)
    if prompt < 1:
        raise CliError("--prompt-tokens must be at least 1")
    if prompt + gen + 2 > context:
        raise CliError(
            f"--prompt-tokens {prompt} + --gen-tokens {gen} (+ 2 warm-up steps) exceed the "
            f"context size {context}"
        )
    return prompt, gen


def _candidates(
    args: argparse.Namespace, n_gpus: int, context: int, size: SweepSize
) -> list[Candidate]:
    sizes, pairs = _int_list(args.sweep, "--sweep"), _pairs(args.pairs)
    try:
        candidates = candidates_from(
            sizes or ([] if pairs else list(size.blas_sizes)), pairs, n_gpus=n_gpus
        )
    except SweepError as e:
        raise CliError(str(e)) from None
    too_big = [c for c in candidates if c.n_batch > context]
    if too_big:
        raise CliError(f"n_batch {too_big[0].n_batch} is above the context size {context}")
    return candidates


def benchmark(args: argparse.Namespace) -> int:
    if getattr(args, "splitmodes", None):
        from kobold_gui.cli.split_benchmark import benchmark_split_modes

        return benchmark_split_modes(args, benchmark)
    _check_flags(args)
    config = launch_config(args)
    inventory = open_inventory()
    gpus_now = inventory.snapshot()
    path = model_path(args)
    info = read_gguf(path)
    resolved = resolve(args, path, info)
    size = default_sweep(on_cpu=resolved.n_gpu_layers == 0 and not resolved.rpc_servers)
    prompt, gen = _check(args, config.contextsize, size.prompt_tokens)
    candidates = _candidates(args, len(gpus_now.gpus), config.contextsize, size)
    if size.why and not (args.sweep or args.pairs or args.prompt_tokens):
        print(f"sweep: {size.why} (--sweep and --prompt-tokens change it)", file=sys.stderr)
    engine = engine_for(resolved)
    engine.load(resolved, info=info)
    try:
        rows = _sweep(engine, candidates, prompt, gen, args.repeats, inventory)
    finally:
        engine.close()
    choice = measured_choice(rows, args.share / 100)
    backend = backend_info()
    identity = sweep_identity(gpus_now, backend, resolved)
    saved = save_sweep(identity, rows)
    args.sweep_result = (identity, rows)  # for the split modes' comparison (split_benchmark)
    measured_launch = _measured_launch(args, resolved) if choice.pick else None
    if args.json:
        data = {
            "identity": identity,
            "rows": [asdict(r) for r in rows],
            "measured_policy": list(choice.pick) if choice.pick else None,
            "why": choice.why,
            "measured_launch_batch": measured_launch.batch.label() if measured_launch else None,
            "saved": str(saved),
        }
        print(json.dumps(data, indent=2))
        return 0
    print(
        f"prompt {prompt} tokens, {gen} generation steps, {args.repeats} runs per pair, "
        f"context {resolved.n_ctx_effective}, backend {backend.name}"
    )
    for r in rows:
        print(_row_text(r))
    print(f"measured policy: {choice.why}")
    if measured_launch is not None:
        print(f"with --batch-policy measured: {measured_launch.batch.label()}")
    print(f"saved: {saved}")
    return 0


def _sweep(
    engine: Engine,
    candidates: list[Candidate],
    prompt: int,
    gen: int,
    repeats: int,
    inventory: GpuInventory,
) -> list[SweepRow]:
    """The sweep, its estimate (after the warm-up) and each run's progress on stderr."""
    total = len(candidates) * repeats

    def estimate(seconds: float) -> None:
        print(
            f"estimate: {duration_text(seconds)} for {total} runs "
            f"({len(candidates)} pairs x {repeats}); the model is busy until then",
            file=sys.stderr,
        )

    def gpu_used() -> list[int]:
        return [g.memory_used for g in inventory.snapshot().gpus]

    def progress(i: int, run: SweepRow) -> None:
        print(f"  [{i + 1}/{total}] {run.n_batch}:{run.n_ubatch} measured", file=sys.stderr)

    return run_sweep(
        engine,
        candidates,
        prompt,
        gen,
        progress,
        gpu_used=gpu_used,
        repeats=repeats,
        on_estimate=estimate,
    )


def _measured_launch(args: argparse.Namespace, resolved: ResolvedLaunch) -> ResolvedLaunch:
    """What a load with the measured policy would use now (a pick that does not fit the
    GPUs steps down): resolved as a later launch would resolve it, from the kept sweep."""
    measured_args = argparse.Namespace(**{**vars(args), "batchpolicy": "measured"})
    assert resolved.model_path is not None
    info = read_gguf(resolved.model_path)
    return resolve(measured_args, resolved.model_path, info)


def _row_text(r: SweepRow) -> str:
    if r.error:
        return f"  n_batch {r.n_batch:5d}  n_ubatch {r.n_ubatch:5d}  {r.kind:9s}  FAILED: {r.error}"
    return (
        f"  n_batch {r.n_batch:5d}  n_ubatch {r.n_ubatch:5d}  {r.kind:9s}  "
        f"prompt {r.prompt_tps:9.1f} t/s (±{r.spread * 50:4.1f} %)  gen {r.gen_tps:7.1f} t/s  "
        f"TTFT {r.ttft_s * 1000:7.1f} ms  compute {r.compute_bytes / 2**20:7.1f} MiB"
    )
