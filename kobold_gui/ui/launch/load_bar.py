"""Load, Cancel and Unload with the load's progress and status: always in view below the
tabs, whatever tab or scroll position. Which of them are offered is the window's session
(core/session.py); whether the launch is over budget, the launch state's plan."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from kobold_gui.core.launch.state import LaunchState
from kobold_gui.core.session import Session, SessionState


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

    def follow(self, session: Session, launch: LaunchState) -> None:
        session.subscribe(self.show_session)
        launch.subscribe(self.show_plan)

    def show_session(self, state: SessionState) -> None:
        self.load_button.setEnabled(state.can_load)
        self.unload_button.setEnabled(state.can_unload)
        self.cancel_button.setVisible(state.can_cancel_load)
        self.progress.setVisible(state.can_cancel_load)

    def show_plan(self, launch: LaunchState) -> None:
        """Over budget, Load says so, and why in its tooltip."""
        plan = launch.resolved.plan if launch.resolved else None
        over = list(plan.messages) if plan is not None and not plan.fits else None
        self.load_button.setText("Load (over budget!)" if over else "Load model")
        self.load_button.setToolTip("\n".join(over or ()))

    def loading(self, name: str) -> None:
        self.progress.setValue(0)
        self.progress.setFormat(f"Loading {name}… %p%")
        self.status.setText("Loading…")

    def set_progress(self, value: float) -> None:
        self.progress.setValue(round(value * 1000))

    def done(self, text: str) -> None:
        self.status.setText(text)
