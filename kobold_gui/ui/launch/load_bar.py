"""Load, Cancel and Unload with the load's progress and status: always in view below the
tabs, whatever tab or scroll position."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget


class LoadBar(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.load_button = QPushButton("Load model")
        self.load_button.setObjectName("loadButton")
        self.load_button.setEnabled(False)
        self.load_button.setDefault(True)
        self.unload_button = QPushButton("Unload")
        self.unload_button.setEnabled(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.progress = QProgressBar()
        self.progress.setObjectName("loadProgress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.status = QLabel("No model loaded.")
        self.status.setObjectName("loadStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.unload_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)

    def show_loadable(self, enabled: bool, over_budget: list[str] | None) -> None:
        """Load is offered (or not); over budget, it says so and why in its tooltip."""
        self.load_button.setEnabled(enabled)
        self.load_button.setText("Load (over budget!)" if over_budget else "Load model")
        self.load_button.setToolTip("\n".join(over_budget or ()))

    def loading(self, name: str) -> None:
        self.load_button.setEnabled(False)
        self.unload_button.setEnabled(False)
        self.cancel_button.show()
        self.progress.setValue(0)
        self.progress.setFormat(f"Loading {name}… %p%")
        self.progress.show()
        self.status.setText("Loading…")

    def set_progress(self, value: float) -> None:
        self.progress.setValue(round(value * 1000))

    def done(self, text: str, model_loaded: bool) -> None:
        self.cancel_button.hide()
        self.progress.hide()
        self.unload_button.setEnabled(model_loaded)
        self.status.setText(text)
