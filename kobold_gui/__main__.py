"""Entry point: `kobold-gui` and `python -m kobold_gui`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from kobold_gui.cli import main_cli, parse_args

    argv = sys.argv[1:] if argv is None else argv
    code = main_cli(argv)
    if code is not None:
        return code
    from kobold_gui.ui.app import run_app  # Qt only when the window is wanted

    return run_app(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
