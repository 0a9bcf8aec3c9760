"""Quitting while the window serves others asks first: the API server and "Share this
machine" run for other programs and computers, which lose them when the window closes.

The question is a window-modal box opened without a nested event loop: closeEvent is refused
while it is open, and "Quit" closes the window again, this time for good."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QWidget


def quit_question(serving: list[str]) -> str:
    """What stops on quitting, for the box's text."""
    lines = "\n".join(f"• {s}" for s in serving)
    return f"Quitting stops:\n{lines}\n\nQuit anyway?"


class QuitGuard:
    def __init__(self, window: QWidget, serving: Callable[[], list[str]]) -> None:
        self.window, self.serving = window, serving
        self.confirmed = False
        self.box: QMessageBox | None = None

    def allows_close(self) -> bool:
        """True when nothing serves others (or the user said Quit); else ask and refuse."""
        if self.confirmed:
            return True
        serving = self.serving()
        if not serving:
            return True
        if self.box is None:
            self._ask(serving)
        return False

    def _ask(self, serving: list[str]) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Warning, "Quit kobold-gui?", quit_question(serving), parent=self.window
        )
        self.quit_button = box.addButton("Quit", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)  # Enter does not quit
        box.finished.connect(lambda _result: self._answered(box))
        self.box = box
        box.open()

    def _answered(self, box: QMessageBox) -> None:
        self.box = None
        box.deleteLater()
        if box.clickedButton() is self.quit_button:
            self.confirmed = True
            self.window.close()
