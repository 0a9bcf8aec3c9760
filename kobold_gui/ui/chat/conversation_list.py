"""The saved conversations: a searchable list (title, date, model), with new, rename (F2,
double-click), delete (undo), export to Markdown or JSON and import of OpenAI-style JSON.

A view: it shows the summaries it is given and asks the conversation controller for every
change, so a rename or a delete never races the controller's own saving. Updating one chat
moves one row; the whole list is rebuilt only when the chats are scanned."""

from __future__ import annotations

import html
import time

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.chats.types import ChatSummary

ID_ROLE = Qt.ItemDataRole.UserRole


def _row_text(summary: ChatSummary) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(summary.updated))
    model = f" · {summary.model.replace(chr(92), '/').rsplit('/', 1)[-1]}" if summary.model else ""
    return f"{summary.title}\n{when}{model}"


class ConversationList(QWidget):
    openRequested = Signal(str)  # conversation id
    newRequested = Signal()
    renameRequested = Signal(str, str)  # id, new title
    deleteRequested = Signal(str)
    undoRequested = Signal()
    searchChanged = Signal(str)
    exportRequested = Signal()
    importRequested = Signal()
    openFolderRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.current_id: str | None = None
        self.warning = ""
        self._problem_list: list[str] = []
        self._items: dict[str, QListWidgetItem] = {}
        self._summaries: dict[str, ChatSummary] = {}
        self._shown: set[str] | None = None  # ids matching the search; None: all
        self.rename_dialog: QInputDialog | None = None
        self.search = QLineEdit()
        self.search.setObjectName("chatSearch")
        self.search.setPlaceholderText("Search chats (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.list = QListWidget()
        self.list.setObjectName("chatList")
        self.new_button = QPushButton("New")
        self.rename_button = QPushButton("Rename…")
        self.rename_button.setToolTip("Rename the selected chat (F2 or double-click)")
        self.delete_button = QPushButton("Delete")
        self.undo_button = QPushButton("Undo delete")
        self.undo_button.hide()
        self.export_button = QPushButton("Export…")
        self.import_button = QPushButton("Import…")
        # A short notice that wraps: file names go in its tooltip, never widen the panel.
        self.problems = QLabel()
        self.problems.setObjectName("chatProblems")
        self.problems.setWordWrap(True)
        self.problems.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.problems.setStyleSheet("color: #b00020;")
        self.problems.setTextFormat(Qt.TextFormat.RichText)
        self.problems.linkActivated.connect(lambda _link: self.openFolderRequested.emit())
        self.problems.hide()
        row1 = QHBoxLayout()
        for b in (self.new_button, self.rename_button, self.delete_button):
            row1.addWidget(b)
        row2 = QHBoxLayout()
        for b in (self.export_button, self.import_button, self.undo_button):
            row2.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.problems)
        layout.addWidget(self.list, 1)
        layout.addLayout(row1)
        layout.addLayout(row2)
        self.search.textChanged.connect(self.searchChanged)
        self.list.itemClicked.connect(self._clicked)
        self.list.itemDoubleClicked.connect(lambda _item: self.rename())
        self.list.installEventFilter(self)  # F2 renames
        self.new_button.clicked.connect(self.newRequested)
        self.rename_button.clicked.connect(lambda _checked=False: self.rename())
        self.delete_button.clicked.connect(lambda _checked=False: self.delete())
        self.undo_button.clicked.connect(self.undo)
        self.export_button.clicked.connect(self.exportRequested)
        self.import_button.clicked.connect(self.importRequested)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.list
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_F2
        ):
            self.rename()
            return True
        return super().eventFilter(watched, event)

    # -- what it shows ---------------------------------------------------------------------
    def set_summaries(self, summaries: list[ChatSummary]) -> None:
        """All chats, most recent first (after a scan)."""
        self.list.clear()
        self._items.clear()
        self._summaries = {s.id: s for s in summaries}
        for summary in summaries:
            item = QListWidgetItem(_row_text(summary))
            item.setData(ID_ROLE, summary.id)
            self._items[summary.id] = item
            self.list.addItem(item)
        self._apply_filter()
        self._select_current()

    def upsert(self, summary: ChatSummary) -> None:
        """One chat changed: its row is updated and moved to the top."""
        self._summaries[summary.id] = summary
        item = self._items.get(summary.id)
        if item is None:
            item = QListWidgetItem()
            item.setData(ID_ROLE, summary.id)
            self._items[summary.id] = item
        else:
            self.list.takeItem(self.list.row(item))
        item.setText(_row_text(summary))
        self.list.insertItem(0, item)
        item.setHidden(self._shown is not None and summary.id not in self._shown)
        self._select_current()

    def remove(self, conv_id: str) -> None:
        self._summaries.pop(conv_id, None)
        item = self._items.pop(conv_id, None)
        if item is not None:
            self.list.takeItem(self.list.row(item))

    def summary(self, conv_id: str) -> ChatSummary | None:
        return self._summaries.get(conv_id)

    def set_search_result(self, ids: set[str] | None) -> None:
        self._shown = ids
        self._apply_filter()

    def _apply_filter(self) -> None:
        for conv_id, item in self._items.items():
            item.setHidden(self._shown is not None and conv_id not in self._shown)

    def visible_count(self) -> int:
        return sum(not self.list.item(i).isHidden() for i in range(self.list.count()))

    def mark_current(self, conv_id: str | None) -> None:
        self.current_id = conv_id
        self._select_current()

    def _select_current(self) -> None:
        item = self._items.get(self.current_id or "")
        self.list.setCurrentItem(item) if item is not None else self.list.clearSelection()

    def show_problems(self, problems: list[str]) -> None:
        if not problems and not self.warning:
            self.problems.hide()
            return
        count = len(problems)
        chats = "chat was" if count == 1 else "chats were"
        text = f"{count} {chats} set aside or read in part (unreadable, or from a newer "
        text += "kobold-gui; nothing deleted). " if problems else ""
        self.problems.setText(
            html.escape(self.warning + " ") + text + '<a href="folder">Open the chats folder</a>'
        )
        self.problems.setToolTip("\n".join([self.warning, *problems]).strip())
        self._problem_list = list(problems)
        self.problems.show()

    def show_warning(self, warning: str) -> None:
        """Chats cannot be saved (a read-only folder): said above the list until closed."""
        self.warning = warning
        self.show_problems(self._problem_list)

    # -- what the user asks --------------------------------------------------------------
    def _clicked(self, item: QListWidgetItem) -> None:
        self.openRequested.emit(str(item.data(ID_ROLE)))

    def selected_id(self) -> str | None:
        items = self.list.selectedItems()
        return str(items[0].data(ID_ROLE)) if items else self.current_id

    def rename(self, title: str | None = None) -> None:
        """Renames the selected chat: to `title`, or to what the user types in a dialog."""
        conv_id = self.selected_id()
        if conv_id is None:
            return
        if title is not None:
            self.renameRequested.emit(conv_id, title.strip())
            return
        summary = self._summaries.get(conv_id)
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Rename chat")
        dialog.setLabelText("Title:")
        dialog.setTextValue(summary.title if summary else "")
        dialog.textValueSelected.connect(
            lambda text: self.renameRequested.emit(conv_id, str(text).strip())
        )
        dialog.finished.connect(dialog.deleteLater)
        self.rename_dialog = dialog
        dialog.open()

    def delete(self) -> None:
        conv_id = self.selected_id()
        if conv_id is not None:
            self.deleteRequested.emit(conv_id)

    def deleted(self) -> None:
        """The controller deleted a chat: undo becomes possible."""
        self.undo_button.show()

    def undo(self) -> None:
        self.undo_button.hide()
        self.undoRequested.emit()
