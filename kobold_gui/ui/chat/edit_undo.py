"""Edit last takes the last user message back into the input box and removes it and what
followed (the reply with all its versions). A bar says so, without asking first, and Undo
puts everything back as it was (the input box too) while nothing else changed the chat."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from kobold_gui.core.chats.types import Conversation, StoredMessage, op_drop, op_put
from kobold_gui.ui.chat.chat_panel import ChatPanel
from kobold_gui.ui.chat.conversation_view import redraw
from kobold_gui.ui.chat.journal import ChatJournal


class _Owner(Protocol):
    """What Edit last needs of the conversation controller (ui/chat/controller.py)."""

    conversation: Conversation
    chat: ChatPanel
    journal: ChatJournal
    say: Callable[[str], None]

    @property
    def streaming(self) -> bool: ...


SHOWN_MS = 60_000  # the bar goes after a minute; Undo stays possible until the chat changes


class EditUndo(QWidget):
    """The "Reply removed — Undo" bar, and what Undo needs to put back."""

    def __init__(self, owner: _Owner) -> None:
        super().__init__()
        self.setObjectName("editUndoBar")
        self.owner = owner
        self._removed: list[StoredMessage] = []
        self._conv_id = ""
        self._at = 0  # how many messages Edit last kept
        self._input = ""  # what the input box held before Edit last
        self.label = QLabel()
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Put the removed messages back (and the input box as it was)")
        self.undo_button.clicked.connect(self.undo)
        close = QPushButton("✕")
        close.setFlat(True)
        close.setToolTip("Hide (the messages stay removed)")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.undo_button)
        layout.addWidget(close)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SHOWN_MS)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def edit_last(self) -> None:
        owner = self.owner
        msgs = owner.conversation.messages
        if owner.streaming:
            return
        last_user = max((i for i, m in enumerate(msgs) if m.role == "user"), default=None)
        if last_user is None:
            return
        self._removed = copy.deepcopy(msgs[last_user:])
        self._conv_id, self._input = owner.conversation.id, owner.chat.input.toPlainText()
        self._at = last_user
        text = msgs[last_user].content
        dropped = [m.id for m in msgs[last_user:]]
        del msgs[last_user:]
        owner.journal.record(owner.conversation, op_drop(dropped))
        redraw(owner.chat, owner.conversation)
        owner.chat.input.setPlainText(text)
        owner.chat.input.setFocus()
        versions = sum(len(m.alternatives) for m in self._removed)
        more = f" and {versions} other version{'s' if versions > 1 else ''}" if versions else ""
        self.label.setText(f"Removed your last message, its reply{more}.")
        self.show()
        self._timer.start()

    def can_undo(self) -> bool:
        """The same chat, as Edit last left it (nothing added or removed since)."""
        conv = self.owner.conversation
        return (
            bool(self._removed)
            and not self.owner.streaming
            and conv.id == self._conv_id
            and len(conv.messages) == self._at
        )

    def undo(self) -> None:
        self.hide()
        owner = self.owner
        if not self.can_undo():
            owner.say("Nothing to undo: the chat changed since Edit last.")
            return
        owner.conversation.messages.extend(self._removed)
        ops = [op_put(m) for m in self._removed]  # added after the last one, in order
        owner.journal.record(owner.conversation, *ops)
        self._removed = []
        redraw(owner.chat, owner.conversation)
        owner.chat.input.setPlainText(self._input)

    def forget(self) -> None:
        """The chat moved on (a message sent, another chat opened): nothing to undo."""
        self._removed = []
        self.hide()
