"""The command line's flags: the launch options from the option table (core/launch/options.py),
the headless commands and their own settings."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from kobold_gui import __version__
from kobold_gui.core.launch.batching import BLAS_STOPS
from kobold_gui.core.launch.options import OPTIONS
from kobold_gui.server.headless import add_server_args


class CliError(Exception):
    """Ends the CLI with one line on stderr and a non-zero exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        raise CliError(f"{message} (see kobold-gui --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="kobold-gui",
        description="Desktop launcher and chat for local GGUF models. "
        "Without a command, the window opens.",
    )
    _add_model_args(p)
    _add_launch_options(p)
    cmds = _add_commands(p)
    _add_sweep_args(p)
    # --self-test and --json come after the sweep's flags: that is their place in --help's usage
    _add_report_commands(cmds)
    _add_generation_args(p)
    add_server_args(p)  # the local API's flags: --port, --host, --password, --multiuser, ...
    return p


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """--version, and which model and settings file to start from."""
    p.add_argument("--version", action="version", version=f"kobold-gui {__version__}")
    p.add_argument("--model", metavar="PATH", help="the .gguf model (default: built-in model)")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="launch settings (and model) from a KoboldCPP .kcpps/.kcppt file; "
        "options given here override the file's",
    )
    p.add_argument(
        "--exportconfig",
        metavar="FILE",
        help="write the launch (with --config: that file, with what changed) as a KoboldCPP "
        ".kcpps file and exit, as KoboldCPP's own --exportconfig",
    )


def _add_launch_options(p: argparse.ArgumentParser) -> None:
    """One flag per launch option of the option table, under KoboldCPP's names."""
    launch = p.add_argument_group("launch options (KoboldCPP's names)")
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {"dest": opt.name, "default": None, "help": opt.help}
        if opt.choices:
            kwargs["metavar"] = "{" + ",".join(opt.choices) + "}"
        else:
            kwargs["metavar"] = "N"
        flags = [opt.flag]
        if opt.name == "flashattention":  # KoboldCPP's --flashattention is a bare switch
            kwargs.update(nargs="?", const="on")
        if opt.name == "blasbatchsize":  # KoboldCPP's parser allows only its stops
            kwargs.update(type=_blas_stop, metavar="{" + ",".join(map(str, BLAS_STOPS)) + "}")
        if opt.name == "tensor_split":  # KoboldCPP: --tensor_split 3 1; also 3,1
            kwargs.update(nargs="+", metavar="SHARE")
            flags.append("--tensor-split")
        if opt.name == "parallel":  # KoboldCPP 1.117's name too
            flags.append("--parallelrequests")
        launch.add_argument(*flags, **kwargs)


def _blas_stop(text: str) -> int:
    """--blasbatchsize: one of KoboldCPP's stops (a file's other size snaps to one; typed
    here, it is refused, as KoboldCPP's own --blasbatchsize refuses it)."""
    stops = ", ".join(map(str, BLAS_STOPS))
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected one of {stops}, got {text!r}") from None
    if value not in BLAS_STOPS:
        raise argparse.ArgumentTypeError(f"{value} is not one of KoboldCPP's sizes: {stops}")
    return value


def _add_commands(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The headless commands that chat, show or plan; returns their group."""
    cmds = p.add_argument_group("headless commands")
    cmds.add_argument("--prompt", metavar="TEXT", help="chat one message, stream the reply")
    cmds.add_argument(
        "--show-config",
        action="store_true",
        help="print the effective launch configuration without loading",
    )
    cmds.add_argument(
        "--list-gpus", action="store_true", help="list the GPUs (NVML) and llama.cpp's devices"
    )
    cmds.add_argument(
        "--plan",
        action="store_true",
        help="print the memory plan per device (and automatic GPU layers)",
    )
    cmds.add_argument(
        "--assume-gpus",
        metavar="SIZES",
        help="plan for these GPUs instead of the real ones, e.g. 24GiB,12GiB",
    )
    return cmds


def _add_sweep_args(p: argparse.ArgumentParser) -> None:
    """--benchmark and the batch-size sweep's settings."""
    bench = p.add_argument_group("batch-size sweep (with --benchmark)")
    bench.add_argument(
        "--benchmark",
        action="store_true",
        help="measure (n_batch, n_ubatch) pairs on this machine and pick one",
    )
    bench.add_argument(
        "--sweep",
        metavar="B,B",
        help="BLAS sizes, each with the rule's "
        "ubatch and with ubatch = batch (default: the slider's stops from 128)",
    )
    bench.add_argument("--pairs", metavar="NB:NU,...", help="(n_batch, n_ubatch) pairs as given")
    bench.add_argument(
        "--splitmodes",
        metavar="MODE,MODE",
        help="split modes to measure side by side, e.g. layer,tensor: the model is loaded "
        "once per mode and the same pairs swept on each; the window then says which was faster",
    )
    bench.add_argument(
        "--prompt-tokens",
        type=int,
        metavar="N",
        help="prompt length (default 2048, or the context minus the steps)",
    )
    bench.add_argument("--gen-tokens", type=int, default=64, metavar="N")
    bench.add_argument(
        "--share",
        type=float,
        default=90,
        metavar="PERCENT",
        help="generation speed the measured policy keeps, in %% of the best (default 90)",
    )
    bench.add_argument(
        "--repeats",
        type=int,
        default=3,
        metavar="N",
        help="runs per pair, interleaved; a pair is picked only when its lead is larger than "
        "the spread of the runs (default 3)",
    )


def _add_report_commands(cmds: argparse._ArgumentGroup) -> None:
    """--self-test and --json, in the headless commands' group."""
    cmds.add_argument(
        "--self-test",
        action="store_true",
        help="load the model, generate a few tokens, print a JSON report",
    )
    cmds.add_argument("--json", action="store_true", help="print JSON")


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    """The sampling settings of --prompt."""
    gen = p.add_argument_group("generation (with --prompt)")
    gen.add_argument("--max-tokens", type=int, default=256, metavar="N")
    gen.add_argument("--temperature", type=float, default=0.7, metavar="T")
    gen.add_argument("--seed", type=int, default=-1, metavar="N")
    gen.add_argument("--system", metavar="TEXT", default=None, help="system prompt")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def is_headless(args: argparse.Namespace) -> bool:
    return bool(
        args.prompt is not None
        or args.show_config
        or args.list_gpus
        or args.self_test
        or args.plan
        or args.benchmark
        or args.headless
        or args.exportconfig
    )
