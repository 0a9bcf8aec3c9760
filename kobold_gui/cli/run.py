"""Which headless command runs (loads llama.cpp and the core)."""

from __future__ import annotations

import argparse

from kobold_gui.cli.benchmark import benchmark
from kobold_gui.cli.commands import list_gpus, run_prompt, show_config, show_plan
from kobold_gui.cli.common import export_config, model_path, resolve
from kobold_gui.cli.diagnostics import self_test
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.server.headless import run_headless_server


def run_command(args: argparse.Namespace) -> int:
    if args.exportconfig:
        return export_config(args)
    if args.headless:  # serve the API without a window
        path = model_path(args)
        info = read_gguf(path)
        return run_headless_server(args, resolve(args, path, info), info)
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
