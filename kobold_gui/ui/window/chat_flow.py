"""The chat's replies, wired: the conversation asks for a reply, the engine streams it back
to the conversation, and the session knows that one runs (core/session.py: Load, Unload and
the benchmark wait for it; the chat panel offers Send while the model can answer). And the
window's keyboard shortcuts for the chat."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QWidget

from kobold_gui.core.engine.types import GenerationResult
from kobold_gui.core.session import SessionState
from kobold_gui.ui.window.parts import WindowParts


class ChatFlow:
    def __init__(self, window: WindowParts) -> None:
        self.window = window
        conversations, engine = window.conversations, window.engine_controller
        engine.text.connect(conversations.reply_text)
        conversations.replyRequested.connect(self.send)
        engine.replyFinished.connect(self._finished)
        engine.replyFailed.connect(self._failed)
        window.chat.stopRequested.connect(engine.stop)
        window.session.subscribe(self._show_session)

    def send(self, messages: list[object]) -> None:
        w = self.window
        w.conversations.begin_turn(str(w.loaded.info.path) if w.loaded else None)
        w.session.reply_started()
        w.engine_controller.send(messages, w.conversations.sampling)  # type: ignore[arg-type]

    def _finished(self, result: GenerationResult) -> None:
        self.window.conversations.reply_finished(result)
        self.window.session.reply_ended()

    def _failed(self, message: str) -> None:  # a reply's, or a sweep's (the session knows)
        self.window.conversations.reply_failed(message)
        self.window.session.reply_ended()

    def _show_session(self, state: SessionState) -> None:
        """Send, Regenerate and Continue while the model can answer (the panel knows when
        its own reply streams); only a change is passed on: being ready moves the focus."""
        chat = self.window.chat
        if chat.model_ready != state.chat_ready:
            chat.set_model_ready(state.chat_ready)


def add_shortcuts(window: WindowParts, host: QWidget) -> None:
    def focus_search() -> None:
        window.tabs.setCurrentWidget(window.chats_tab)
        window.chat_list.search.setFocus()

    for keys, action in (
        ("Ctrl+R", window.conversations.regenerate),
        ("Esc", window.chat.stop),
        ("Ctrl+N", window.chat.new_chat),
        ("Ctrl+F", focus_search),
    ):
        shortcut = QShortcut(QKeySequence(keys), host)
        shortcut.activated.connect(action)
