"""Entry point: `kobold-gui` and `python -m kobold_gui`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from kobold_gui.cli import main_cli, parse_args

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--engine-child"]:  # the engine of a load over other machines
        from kobold_gui.core.engine.child_main import main as engine_child

        return engine_child(int(argv[1]))
    if getattr(sys, "frozen", False) and not _cpu_is_supported(argv):
        return 1
    code = main_cli(argv)
    if code is not None:
        return code
    from kobold_gui.ui.app import run_app  # Qt only when the window is wanted

    return run_app(parse_args(argv))


def _cpu_is_supported(argv: list[str]) -> bool:
    """The bundled llama.cpp is built for AVX2/FMA/F16C: say so instead of crashing."""
    from kobold_gui.core.hardware.cpu import missing_cpu_features

    missing = missing_cpu_features()
    if not missing or "--self-test" in argv:  # the self-test reports it in its JSON
        return True
    message = (
        "This computer's processor lacks instructions that this build of kobold-gui needs "
        f"({', '.join(m.upper() for m in missing)}). Install kobold-gui from source instead "
        "(see README: tools/dev.sh builds llama.cpp for this CPU)."
    )
    print(f"kobold-gui: {message}", file=sys.stderr)
    if not argv:
        try:
            from PySide6.QtWidgets import QApplication, QMessageBox

            _app = QApplication([])
            QMessageBox.critical(None, "kobold-gui cannot run here", message)
        except Exception:
            pass
    return False


if __name__ == "__main__":
    sys.exit(main())
