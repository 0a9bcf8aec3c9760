"""--benchmark --splitmodes layer,tensor: the sweep once per split mode (the model loaded
again for each, as the split mode is the model's), then the modes side by side and kept
(core/benchmark/split_modes.py), where the window reads which one this machine measured
faster. A mode the launch refuses (tensor split on one GPU, ...) is said and skipped."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Callable

from kobold_gui.cli.parser import CliError
from kobold_gui.core.benchmark.split_modes import (
    SplitComparison,
    SplitResult,
    best_result,
    save_comparison,
)
from kobold_gui.core.launch.options import OPTIONS_BY_NAME, ConfigError


def split_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    choices = OPTIONS_BY_NAME["splitmode"].choices or ()
    bad = [m for m in modes if m not in choices]
    if bad or not modes:
        raise CliError(f"--splitmodes: expected modes of {', '.join(choices)}, got {text!r}")
    if len(set(modes)) != len(modes):
        raise CliError(f"--splitmodes: a mode is named twice in {text!r}")
    return modes


def benchmark_split_modes(
    args: argparse.Namespace, benchmark: Callable[[argparse.Namespace], int]
) -> int:
    modes = split_modes(args.splitmodes)
    results: list[SplitResult] = []
    refused: dict[str, str] = {}
    identity = None
    per_mode: dict[str, object] = {}
    for mode in modes:
        mode_args = argparse.Namespace(**{**vars(args), "splitmode": mode, "splitmodes": None})
        if not args.json:
            print(f"== split mode {mode}")
        try:
            out = io.StringIO()
            with contextlib.redirect_stdout(out) if args.json else contextlib.nullcontext():
                benchmark(mode_args)
        except ConfigError as e:
            refused[mode] = str(e)
            if not args.json:
                print(f"  not measured: {e}")
            continue
        if args.json:
            per_mode[mode] = json.loads(out.getvalue())
        identity, rows = mode_args.sweep_result
        best = best_result(mode, rows)
        if best is not None:
            results.append(best)
    if identity is None:
        raise CliError("no split mode could be measured: " + "; ".join(refused.values()))
    saved = save_comparison(identity, results)
    comparison = SplitComparison(tuple(results))
    verdict = _verdict(comparison)
    if args.json:
        data = {"modes": per_mode, "refused": refused, "best": [vars(r) for r in results]}
        print(json.dumps({**data, "verdict": verdict, "saved": str(saved)}, indent=2))
        return 0
    print("split modes side by side (each mode's best pair by generation speed):")
    for r in results:
        print(
            f"  {r.mode:7s} gen {r.gen_tps:8.1f} t/s  prompt {r.prompt_tps:9.1f} t/s  "
            f"TTFT {r.ttft_s * 1000:7.1f} ms  pair {r.n_batch}:{r.n_ubatch}"
        )
    print(verdict)
    print(f"saved: {saved}", file=sys.stderr)
    return 0


def _verdict(comparison: SplitComparison) -> str:
    faster = comparison.faster()
    if faster is not None:
        return f"tensor split measured faster here: {comparison.text()}"
    if comparison.result("tensor") and comparison.result("layer"):
        return f"no measurable gain from tensor split (layer stays): {comparison.text()}"
    return f"measured: {comparison.text()}"
