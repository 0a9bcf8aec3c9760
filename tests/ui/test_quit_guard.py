"""Quitting while the API server or "Share this machine" serves others asks first (Quit /
Cancel); Cancel keeps the window and what it serves, Quit closes both; with nothing served
the window closes at once."""

from __future__ import annotations

import socket
from pathlib import Path

from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from kobold_gui.server.state import ServerSettings
from kobold_gui.ui.window.main_window import MainWindow
from tests.conftest import HANG_GUARD_MS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def open_window(qtbot: QtBot, model: Path) -> MainWindow:
    window = MainWindow(initial_model=model)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(window.load_button.isEnabled, timeout=HANG_GUARD_MS)
    return window


def test_quitting_while_serving_asks_and_cancel_keeps_serving(
    qtbot: QtBot, default_model: Path
) -> None:
    window = open_window(qtbot, default_model)
    assert window.server_panel.start(ServerSettings(host="127.0.0.1", port=free_port()))
    server = window.server_panel.server
    assert server is not None

    window.close()  # the close event is refused while the question is open
    box = window.quit_guard.box
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert window.isVisible() and "the API server at http://127.0.0.1:" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    QApplication.processEvents()
    assert window.isVisible() and window.server_panel.server is server  # still serving

    window.close()
    box = window.quit_guard.box
    assert box is not None and box.isVisible()
    box.button(QMessageBox.StandardButton.Cancel).click()  # asked again, each time
    window.close()
    assert window.quit_guard.box is not None
    window.quit_guard.quit_button.click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=HANG_GUARD_MS)
    assert window.server_panel.server is None  # stopped with the window


def test_quitting_with_nothing_served_does_not_ask(qtbot: QtBot, default_model: Path) -> None:
    window = open_window(qtbot, default_model)
    window.close()
    assert not window.isVisible() and window.quit_guard.box is None
