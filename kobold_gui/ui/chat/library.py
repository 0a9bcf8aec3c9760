"""The chats list's side of the conversation controller: listing the chats on start (from
the index, on a worker thread), search, rename, delete and undo. A mixin of
ConversationController, kept apart to keep each file short; every change still goes through
the controller's writer, so it never races the open conversation's saving."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from PySide6.QtCore import SignalInstance

from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.chats.types import ChatSummary, Conversation, Op, op_meta
from kobold_gui.core.chats.writer import ChatWriter
from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.ui.chat.conversation_list import ConversationList
from kobold_gui.ui.common.background import LatestJob


class ChatLibrary:
    # Provided by ConversationController:
    conversation: Conversation
    sampling: SamplingParams
    store: ChatStore
    writer: ChatWriter
    chat_list: ConversationList
    say: Callable[[str], None]
    problemsChanged: SignalInstance
    _renamed: SignalInstance
    _saved: bool
    _scan: LatestJob
    _search: LatestJob
    _deleted_id: str | None

    @property
    def streaming(self) -> bool:
        raise NotImplementedError

    def open(self, conv_id: str) -> None:
        raise NotImplementedError

    def _show(self, conv: Conversation, saved: bool) -> None:
        raise NotImplementedError

    def _record(self, *ops: Op) -> None:
        raise NotImplementedError

    def open_last(self) -> None:
        """Lists the chats (from the index, on a worker thread), then opens the latest."""
        self._scan.run(
            self.store.scan,
            done=self._scanned,
            failed=lambda e: self.say(f"Chats could not be listed: {e}"),
        )

    def _scanned(self, summaries: list[ChatSummary]) -> None:
        self.chat_list.set_summaries(summaries)
        if self._saved:
            self.chat_list.upsert(self.conversation.summary())
        self.problemsChanged.emit(list(self.store.problems))
        if summaries and not self._saved and not self.conversation.messages:
            self.open(summaries[0].id)

    def rename(self, conv_id: str, title: str) -> None:
        if conv_id == self.conversation.id:
            self.conversation.title = title
            if self._saved:
                self._record()
            return
        self.writer.call(lambda: self._renamed.emit(self._rename_saved(conv_id, title)))

    def _rename_saved(self, conv_id: str, title: str) -> ChatSummary:  # on the writer thread
        conv = self.store.load(conv_id)
        conv.title = title
        self.store.append(conv_id, [op_meta(conv)])
        return conv.summary()

    def delete(self, conv_id: str) -> None:
        if conv_id == self.conversation.id:
            if self.streaming:
                self.say("Stop the reply first, then delete the chat.")
                return
            self._show(Conversation(sampling=asdict(self.sampling)), saved=False)
        self.writer.call(lambda: self.store.delete(conv_id))
        self._deleted_id = conv_id
        self.chat_list.remove(conv_id)
        self.chat_list.deleted()

    def undelete(self) -> None:
        if self._deleted_id is None or self.streaming:
            return
        conv_id, self._deleted_id = self._deleted_id, None
        self.writer.call(lambda: self.store.undelete(conv_id))
        self.open(conv_id)

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
