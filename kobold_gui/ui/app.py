"""Starting the window: QApplication, icon, logging, and a visible report of crashes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import cast

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from kobold_gui import __version__
from kobold_gui.core.kcpps.files import apply_config_file
from kobold_gui.core.launch.options import given_options
from kobold_gui.core.paths import log_dir
from kobold_gui.resource_files import resource_path

log = logging.getLogger("kobold_gui")


def setup_logging() -> Path:
    path = log_dir() / "kobold-gui.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path


def install_excepthook(log_path: Path) -> None:
    """An exception on the GUI thread shows a dialog with the error and the log's place,
    instead of a window that vanishes (or a traceback nobody sees)."""

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        log.error("uncaught exception", exc_info=(kind, value, tb))
        if QApplication.instance() is None:
            traceback.print_exception(kind, value, tb)
            return
        text = f"{kind.__name__}: {value}\n\nDetails are in the log:\n{log_path}"
        if QApplication.platformName() == "offscreen":  # nobody to click OK: say it on stderr
            print(f"kobold-gui: unexpected error: {text}", file=sys.stderr)
            return
        box = QMessageBox(QMessageBox.Icon.Critical, "kobold-gui: unexpected error", text)
        box.setDetailedText("".join(traceback.format_exception(kind, value, tb)))
        box.exec()

    sys.excepthook = hook


def gui_thread_gc(app: QApplication) -> None:
    """Python's garbage collector runs on whatever thread allocates when it triggers: on a
    worker thread it destroyed widgets of a closed window there, and Qt deadlocked (the
    worker held Qt's signal lock waiting for the GIL, the GUI thread held the GIL waiting
    for that lock; seen in the test suite). Collect on the GUI thread only, on a timer."""
    from pyqtgraph.util.garbage_collector import GarbageCollector

    app.gui_gc = GarbageCollector(interval=1.0)  # type: ignore[attr-defined]  # kept alive


def _no_display() -> bool:
    """Qt aborts the process when it finds no display; say so instead."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_app(args: argparse.Namespace) -> int:
    if _no_display():
        print(
            "kobold-gui: no display found (DISPLAY and WAYLAND_DISPLAY are unset). Run it "
            "from a desktop session, or use the command line: kobold-gui --help",
            file=sys.stderr,
        )
        return 1
    log_path = setup_logging()
    app = cast(QApplication, QApplication.instance() or QApplication(sys.argv[:1]))
    app.setApplicationName("kobold-gui")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("kobold-gui")
    app.setWindowIcon(QIcon(str(resource_path("kobold-gui.svg"))))
    install_excepthook(log_path)
    gui_thread_gc(app)
    try:
        return _open_window(app, args)
    except Exception:  # before the event loop runs: still a dialog, not a vanished window
        sys.excepthook(*sys.exc_info())
        return 1


def _open_window(app: QApplication, args: argparse.Namespace) -> int:
    from kobold_gui.core.hardware.simulated import inventory_for_environment
    from kobold_gui.ui.window.main_window import MainWindow

    if os.environ.get("KOBOLD_GUI_CRASH_TEST"):  # lets tests see how a crash is reported
        raise RuntimeError("crash test requested by KOBOLD_GUI_CRASH_TEST")

    given = given_options(vars(args))  # every launch option of the table
    model, config = Path(args.model) if args.model else None, None
    imported = None
    if args.config:  # a KoboldCPP settings file: its launch and model, the options on top
        imported = apply_config_file(Path(args.config), given)
        model, config = model or imported.model, imported.config
        args.kcpps_server = dict(imported.server)  # the API server's port, host, ...
    window = MainWindow(
        initial_model=model,
        initial_config=config,
        initial_options=given,
        inventory=inventory_for_environment(),
    )
    window.show()
    if (
        imported is not None
        and imported.missing_model is not None
        and not args.model
        and window.models.kcpps.follow_up
    ):
        window.models.kcpps.follow_up.handle(imported, Path(args.config))  # say which, Open…
    if window.server_panel.serve_from_args(args):  # --port, --host, ...: serve and load
        window.load_when_ready()
    _report_when_shown(app)
    return int(app.exec())


def _report_when_shown(app: QApplication) -> None:
    """For start-up benchmarks: KOBOLD_GUI_T0 (a time.time() taken before starting the
    process) makes the app print how long until its window was shown, then quit."""
    t0 = os.environ.get("KOBOLD_GUI_T0")
    if not t0:
        return

    def report() -> None:
        print(f"window shown after {time.time() - float(t0):.3f} s", flush=True)
        app.quit()

    QTimer.singleShot(0, report)
