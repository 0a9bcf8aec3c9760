"""Which headless command runs (loads llama.cpp and the core)."""

from __future__ import annotations

import argparse

from kobold_gui.cli.benchmark import benchmark
from kobold_gui.cli.commands import list_gpus, run_prompt, show_config, show_plan
from kobold_gui.cli.self_test import self_test


def run_command(args: argparse.Namespace) -> int:
    if args.benchmark:
        return benchmark(args)
    if args.plan:
        return show_plan(args)
    if args.self_test:
        return self_test(args)
    if args.list_gpus:
        return list_gpus(args)
    if args.show_config:
        return show_config(args)
    return run_prompt(args)
