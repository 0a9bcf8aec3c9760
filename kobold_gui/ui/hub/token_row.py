"""The access token field of Find a model: paste, save (to the OS keyring, see
core/hub/token.py), forget. Keyring calls can block (an unlock prompt), so they run on the
network threads."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from kobold_gui.core.hub.search import describe_error
from kobold_gui.core.hub.token import TokenStore
from kobold_gui.ui.common.net_jobs import NetJobs

PLACEHOLDER = "hf_… (only for gated or private repositories)"


class TokenRow(QWidget):
    tokenChanged = Signal(object)  # str | None

    def __init__(self, store: TokenStore, jobs: NetJobs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store, self.jobs = store, jobs
        self.token: str | None = None
        self.edit = QLineEdit()
        self.edit.setObjectName("hubToken")
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setPlaceholderText(PLACEHOLDER)
        self.save_button = QPushButton("Save token")
        self.forget_button = QPushButton("Forget")
        self.note = QLabel()
        self.note.setStyleSheet("color: palette(mid);")
        row = QHBoxLayout()
        row.addWidget(QLabel("Access token:"))
        row.addWidget(self.edit, 1)
        row.addWidget(self.save_button)
        row.addWidget(self.forget_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.note)
        self.save_button.clicked.connect(self.save)
        self.edit.returnPressed.connect(self.save)
        self.forget_button.clicked.connect(self.forget)
        self.jobs.run(store.load, done=self._loaded, failed=lambda e: self._loaded(None))

    def _loaded(self, token: str | None) -> None:
        self.token = token
        self._show_note()
        if token:
            self.tokenChanged.emit(token)

    def _show_note(self) -> None:
        where = self.store.where()
        if self.token:
            self.edit.setPlaceholderText("a saved token is in use")
            self.note.setText(f"A saved token is in use, kept in {where}.")
        else:
            self.edit.setPlaceholderText(PLACEHOLDER)
            self.note.setText(f"A token you save is kept in {where}.")

    def save(self) -> None:
        token = self.edit.text().strip()
        if not token:
            return
        self.edit.clear()
        self.token = token
        self.edit.setPlaceholderText("a saved token is in use")
        self.tokenChanged.emit(token)
        self.jobs.run(
            self.store.save,
            token,
            done=lambda where: self.note.setText(f"Token saved in {where}."),
            failed=lambda e: self.note.setText(
                f"The token is used now but could not be saved: {describe_error(e)}"
            ),
        )

    def forget(self) -> None:
        self.token = None
        self.edit.clear()
        self.tokenChanged.emit(None)
        self.jobs.run(self.store.clear, done=lambda _: self._show_note(), failed=lambda e: None)
