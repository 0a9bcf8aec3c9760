"""The chats list's side of the chats: listing them on start (on a worker thread, old chat
files imported first), search (the store's full-text index, on a worker thread), rename,
delete and undo, export and import, the rows and files set aside, a folder where chats
cannot be saved, and other windows' changes (ui/chat/watcher.py). Held by the conversation
controller; every change goes through the same writer as the open conversation's saving, so
it never races it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, Signal

from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.chats.types import ChatSummary, Conversation, op_meta
from kobold_gui.core.chats.writer import ChatWriter
from kobold_gui.ui.chat.chat_files import ChatFiles
from kobold_gui.ui.chat.conversation_list import ConversationList
from kobold_gui.ui.chat.journal import ChatJournal
from kobold_gui.ui.chat.notice import SetAsideNotice
from kobold_gui.ui.chat.watcher import ChatWatcher
from kobold_gui.ui.common.background import LatestJob


class OpenChat(Protocol):
    """What the library needs of the open conversation's controller."""

    conversation: Conversation

    @property
    def streaming(self) -> bool: ...

    def open(self, conv_id: str) -> None: ...

    def new(self) -> None: ...

    def show(self, conv: Conversation, saved: bool) -> None: ...


class ChatLibrary(QObject):
    problemsChanged = Signal(list)  # messages about chat files set aside
    _renamed = Signal(object)  # ChatSummary, from the writer thread

    def __init__(
        self,
        chat: OpenChat,
        store: ChatStore,
        writer: ChatWriter,
        journal: ChatJournal,
        files: ChatFiles,
        say: Callable[[str], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.chat, self.store, self.writer, self.journal = chat, store, writer, journal
        self.chat_list: ConversationList = journal.chat_list
        self.files, self.say = files, say
        self.notice = SetAsideNotice(store.folder)  # the window puts it in its status bar
        self._deleted_id: str | None = None
        self._scan = LatestJob(self)
        self._search = LatestJob(self)
        self.watcher = ChatWatcher(store, chat, self.chat_list, self)
        self._connect(self.chat_list)

    def _connect(self, chat_list: ConversationList) -> None:
        self._renamed.connect(chat_list.upsert)
        chat_list.openRequested.connect(self.chat.open)
        chat_list.renameRequested.connect(self.rename)
        chat_list.deleteRequested.connect(self.delete)
        chat_list.undoRequested.connect(self.undelete)
        chat_list.searchChanged.connect(self.search)
        chat_list.exportRequested.connect(lambda: self.files.export_dialog(self.chat.conversation))
        chat_list.importRequested.connect(lambda: self.files.import_dialog(self.imported))
        chat_list.openFolderRequested.connect(self.notice.open_folder)
        self.problemsChanged.connect(self.notice.show_problems)
        self.problemsChanged.connect(chat_list.show_problems)

    def report_problems(self) -> None:
        self.problemsChanged.emit(list(self.store.problems))
        if self.store.warning:  # a folder where chats cannot be saved
            self.notice.show_warning(self.store.warning)
            self.chat_list.show_warning(self.store.warning)

    # -- listing ----------------------------------------------------------------------------
    def open_last(self) -> None:
        """Lists the chats (from the index, on a worker thread), then opens the latest."""
        self._scan.run(
            self.store.scan,
            done=self._scanned,
            failed=lambda e: self.say(f"Chats could not be listed: {e}"),
        )

    def _scanned(self, summaries: list[ChatSummary]) -> None:
        self.chat_list.set_summaries(summaries)
        self.watcher.start()
        conversation = self.chat.conversation
        if self.journal.saved:
            self.chat_list.upsert(conversation.summary())
        self.report_problems()
        if summaries and not self.journal.saved and not conversation.messages:
            self.chat.open(summaries[0].id)

    def search(self, text: str) -> None:
        if not text.strip():
            self.chat_list.set_search_result(None)
            return
        self._search.run(
            self.store.search,
            text,
            done=self.chat_list.set_search_result,
            failed=lambda e: self.say(f"Search failed: {e}"),
        )

    # -- changing the list ----------------------------------------------------------------------
    def rename(self, conv_id: str, title: str) -> None:
        conversation = self.chat.conversation
        if conv_id == conversation.id:
            conversation.title = title
            if self.journal.saved:
                self.journal.record(conversation)
            return
        self.writer.call(lambda: self._renamed.emit(self._rename_saved(conv_id, title)))

    def _rename_saved(self, conv_id: str, title: str) -> ChatSummary:  # on the writer thread
        conv = self.store.load(conv_id)
        conv.title = title
        self.store.append(conv_id, [op_meta(conv)])
        return conv.summary()

    def delete(self, conv_id: str) -> None:
        if conv_id == self.chat.conversation.id:
            if self.chat.streaming:
                self.say("Stop the reply first, then delete the chat.")
                return
            self.chat.new()
        self.writer.call(lambda: self.store.delete(conv_id))
        self._deleted_id = conv_id
        self.chat_list.remove(conv_id)
        self.chat_list.deleted()

    def undelete(self) -> None:
        if self._deleted_id is None or self.chat.streaming:
            return
        conv_id, self._deleted_id = self._deleted_id, None
        self.writer.call(lambda: self.store.undelete(conv_id))
        self.chat.open(conv_id)

    # -- export and import ----------------------------------------------------------------------
    def write_export(self, path: Path, name_filter: str | None = None) -> Path:
        return self.files.write(self.chat.conversation, path, name_filter)

    def read_import(self, path: Path) -> None:
        conv = self.files.read(path)
        if conv is not None:
            self.imported(conv)

    def imported(self, conv: Conversation) -> None:
        """An imported chat is saved and opened."""
        if self.chat.streaming:
            self.say("Stop the reply first, then import.")
            return
        self.writer.save(conv)
        self.chat.show(conv, saved=True)
        self.chat_list.upsert(conv.summary())
        self.chat_list.mark_current(conv.id)
