"""Command-line interface. Headless commands run on the Qt-free core; with none of them the
window opens. The launch flags come from the option table (core/launch/options.py).

Only the parser is imported here: `--version`, `--help` and opening the window do not load
llama.cpp on this path; a headless command loads what it needs when it runs."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from kobold_gui.cli.parser import CliError, build_parser, is_headless, parse_args
from kobold_gui.core.launch.options import ConfigError, given_options

__all__ = ["CliError", "build_parser", "main_cli", "parse_args"]


def run_headless(args: argparse.Namespace) -> int:
    from kobold_gui.cli.run import run_command

    return run_command(args)


def main_cli(argv: Sequence[str]) -> int | None:
    """Run a headless command. Returns its exit code, or None when the window should open."""
    from kobold_gui.core.engine.types import EngineError
    from kobold_gui.core.models.gguf_info import ModelFileError

    if list(argv[:1]) == ["--rpc-server"]:  # llama.cpp's rpc-server, with its own flags
        from kobold_gui.cli.rpc_server import run_rpc_server

        return run_rpc_server(argv[1:])
    try:
        args = parse_args(argv)
        given_options(vars(args))  # validate even when the window opens
        if not is_headless(args):
            return None
        return run_headless(args)
    except CliError as e:
        print(f"kobold-gui: error: {e}", file=sys.stderr)
        return e.code
    except (ConfigError, ModelFileError, EngineError) as e:
        print(f"kobold-gui: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the output was piped into `head` or similar
        return 0
    except Exception as e:  # a bug: still one line for the user, the details in the log
        log_path = _log_internal_error()
        print(
            f"kobold-gui: internal error: {type(e).__name__}: {e} (details: {log_path})",
            file=sys.stderr,
        )
        return 1


def _log_internal_error() -> Path | None:
    from kobold_gui.core.paths import log_dir

    try:
        path = log_dir() / "kobold-gui.log"
        with path.open("a", encoding="utf-8") as f:
            f.write(traceback.format_exc())
        return path
    except OSError:
        return None
