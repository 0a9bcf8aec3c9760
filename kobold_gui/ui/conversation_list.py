"""The saved conversations: a searchable list (title, date, model), with new, rename, delete
(undo), export to Markdown or JSON and import of OpenAI-style JSON."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.chat_store import ChatStore, Conversation

ID_ROLE = Qt.ItemDataRole.UserRole


class ConversationList(QWidget):
    openRequested = Signal(str)  # conversation id
    newRequested = Signal()
    deleted = Signal(str)
    exportRequested = Signal()
    importRequested = Signal()

    def __init__(self, store: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.current_id: str | None = None
        self._deleted_id: str | None = None
        self.search = QLineEdit()
        self.search.setObjectName("chatSearch")
        self.search.setPlaceholderText("Search chats (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.list = QListWidget()
        self.list.setObjectName("chatList")
        self.new_button = QPushButton("New")
        self.rename_button = QPushButton("Rename…")
        self.delete_button = QPushButton("Delete")
        self.undo_button = QPushButton("Undo delete")
        self.undo_button.hide()
        self.export_button = QPushButton("Export…")
        self.import_button = QPushButton("Import…")
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #b00020;")
        self.problems.hide()
        row1 = QHBoxLayout()
        for b in (self.new_button, self.rename_button, self.delete_button):
            row1.addWidget(b)
        row2 = QHBoxLayout()
        for b in (self.export_button, self.import_button, self.undo_button):
            row2.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addWidget(self.problems)
        self.search.textChanged.connect(lambda _t: self.refresh())
        self.list.itemClicked.connect(self._clicked)
        self.new_button.clicked.connect(self.newRequested)
        self.rename_button.clicked.connect(self.rename)
        self.delete_button.clicked.connect(self.delete)
        self.undo_button.clicked.connect(self.undo)
        self.export_button.clicked.connect(self.exportRequested)
        self.import_button.clicked.connect(self.importRequested)

    def refresh(self) -> None:
        conversations = self.store.search(self.search.text())
        self.list.clear()
        for conv in conversations:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(conv.updated))
            model = f" · {conv.model.rsplit('/', 1)[-1]}" if conv.model else ""
            item = QListWidgetItem(f"{conv.display_title()}\n{when}{model}")
            item.setData(ID_ROLE, conv.id)
            self.list.addItem(item)
            if conv.id == self.current_id:
                item.setSelected(True)
        if self.store.problems:
            self.problems.setText("\n".join(self.store.problems))
            self.problems.show()

    def _clicked(self, item: QListWidgetItem) -> None:
        self.openRequested.emit(str(item.data(ID_ROLE)))

    def selected_id(self) -> str | None:
        items = self.list.selectedItems()
        return str(items[0].data(ID_ROLE)) if items else self.current_id

    def rename(self, title: str | None = None) -> None:
        conv_id = self.selected_id()
        if conv_id is None:
            return
        conv = self.store.load(conv_id)
        if title is None:
            title, ok = QInputDialog.getText(self, "Rename chat", "Title:", text=conv.title)
            if not ok:
                return
        conv.title = title.strip()
        self.store.save(conv)
        self.refresh()

    def delete(self) -> None:
        conv_id = self.selected_id()
        if conv_id is None or not self.store.path_of(conv_id).exists():
            return
        self.store.delete(conv_id)
        self._deleted_id = conv_id
        self.undo_button.show()
        self.deleted.emit(conv_id)
        self.refresh()

    def undo(self) -> None:
        if self._deleted_id:
            self.store.undelete(self._deleted_id)
            self.openRequested.emit(self._deleted_id)
            self._deleted_id = None
        self.undo_button.hide()
        self.refresh()

    def mark_current(self, conv: Conversation) -> None:
        self.current_id = conv.id
        self.refresh()
