"""Another window's (or another process's) changes to the chats, shown here within a second.

SQLite does not notify, so a QTimer polls every POLL_MS: `PRAGMA data_version` (a number
kept in shared memory, no read of the file) moves when another connection committed; only
then does it ask the store which chats changed since the last revision seen, leaving out
this window's own writes (the store's token). A changed chat's row is updated in the list
(or removed, when deleted); the open chat is read again and redrawn, once its reply (if one
streams here) has ended, so this window's streaming is never cut. Everything here is a few
small queries on the GUI thread (the open chat's reload as when it is opened)."""

from __future__ import annotations

import sqlite3
from typing import Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from kobold_gui.core.chats.store import ChatFileError, ChatStore
from kobold_gui.core.chats.types import ChatSummary, Conversation
from kobold_gui.ui.chat.conversation_list import ConversationList


class OpenChat(Protocol):
    """What the watcher needs of the open conversation's controller."""

    conversation: Conversation

    @property
    def streaming(self) -> bool: ...

    def show(self, conv: Conversation, saved: bool) -> None: ...


POLL_MS = 500


class ChatWatcher(QObject):
    reloaded = Signal(str)  # the open chat was read again after another window changed it

    def __init__(
        self,
        store: ChatStore,
        chat: OpenChat,
        chat_list: ConversationList,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store, self.chat, self.chat_list = store, chat, chat_list
        self._version = -1
        self._rev = 0
        self._open_changed = False  # the open chat changed while its reply streamed here
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)

    def start(self) -> None:
        """From now on (the chats were just listed): later changes are followed."""
        try:
            self._version, self._rev = self.store.data_version(), self.store.revision()
        except sqlite3.Error:
            return
        self.timer.start()

    def poll(self) -> None:
        try:
            version = self.store.data_version()
            if version != self._version:
                self._version = version
                self._rev, changed = self.store.changes_since(self._rev)
                self._show(changed)
        except sqlite3.Error:
            return  # busy or gone for a moment: the next tick asks again
        if self._open_changed and not self.chat.streaming:
            self._open_changed = False
            self._reload_open()

    def _show(self, changed: list[tuple[str, ChatSummary | None]]) -> None:
        open_id = self.chat.conversation.id
        for conv_id, summary in changed:
            if summary is None:
                self.chat_list.remove(conv_id)
            else:
                self.chat_list.upsert(summary)
            if conv_id == open_id and summary is not None:
                self._open_changed = True
        self.chat_list.mark_current(self.chat_list.current_id)

    def _reload_open(self) -> None:
        conv_id = self.chat.conversation.id
        try:
            conv = self.store.load(conv_id)
        except (ChatFileError, sqlite3.Error):
            return
        self.chat.show(conv, saved=True)
        self.reloaded.emit(conv_id)
