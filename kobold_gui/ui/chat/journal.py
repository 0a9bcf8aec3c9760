"""The open conversation on disk: its first change saves it whole, later ones are small
operations naming the messages they change (core/chats/types.py), each batch one SQLite
transaction, all through the one ChatWriter (off the GUI thread), so the controller's
changes and the chats list's (a rename) never race. The chats list shows each change at
once."""

from __future__ import annotations

import time

from kobold_gui.core.chats.types import Conversation, Op, op_meta
from kobold_gui.core.chats.writer import ChatWriter
from kobold_gui.ui.chat.conversation_list import ConversationList


class ChatJournal:
    def __init__(self, writer: ChatWriter, chat_list: ConversationList) -> None:
        self.writer, self.chat_list = writer, chat_list
        self.saved = False  # the open conversation has a snapshot on disk

    def record(self, conv: Conversation, *ops: Op) -> None:
        """Hands changes to the writer (the first one saves the whole new conversation)."""
        conv.updated = time.time()
        if not self.saved:
            self.saved = True
            self.writer.save(conv)
        else:
            self.writer.append(conv.id, [*ops, op_meta(conv)])
        self.chat_list.upsert(conv.summary())
        self.chat_list.mark_current(conv.id)
