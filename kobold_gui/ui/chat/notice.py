"""The status-bar notice about chats set aside (unreadable files or rows, a newer version)
or read in part, and about a folder where chats cannot be saved: short enough for the status
bar, the details in its tooltip, a button to open the folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget


class SetAsideNotice(QWidget):
    def __init__(self, folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("setAsideNotice")
        self.folder = folder
        self.warning = ""  # chats cannot be saved (a read-only folder): shown first, kept
        self._problems: list[str] = []
        self.label = QLabel()
        self.label.setStyleSheet("color: #b00020;")
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.label.setMinimumWidth(120)
        self.open_button = QPushButton("Open folder")
        self.open_button.setToolTip(str(folder))
        self.open_button.clicked.connect(self.open_folder)
        self.dismiss_button = QPushButton("✕")
        self.dismiss_button.setToolTip("Hide this notice (the files stay where they are)")
        self.dismiss_button.setFlat(True)
        self.dismiss_button.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.open_button)
        layout.addWidget(self.dismiss_button)
        self.hide()

    def show_problems(self, problems: list[str]) -> None:
        self._problems = list(problems)
        lines = [self.warning, *problems] if self.warning else problems
        if not lines:
            self.hide()
            return
        count = len(problems)
        text = (
            f"{count} chat{'s' if count > 1 else ''} could not be read in full "
            "(kept aside, nothing deleted)."
        )
        self.label.setText(self.warning or text)
        self.label.setToolTip("\n".join(lines))
        self.setToolTip("\n".join(lines))
        self.show()

    def show_warning(self, warning: str) -> None:
        self.warning = warning
        self.show_problems(self._problems)

    def open_folder(self) -> bool:
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.folder)))

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        hint.setWidth(min(hint.width(), 520))
        return hint
