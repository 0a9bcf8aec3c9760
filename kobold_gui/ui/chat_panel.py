"""The chat panel: transcript, input, Send / Stop / New chat, system prompt, reply stats.

It holds the conversation and asks for replies through signals; the window forwards them
to the engine thread. Nothing the user typed is lost: a failed send puts the text back."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.chat_format import Message
from kobold_gui.core.engine import GenerationResult

ROLE_STYLE = {"user": ("You", "#1a5fb4"), "assistant": ("Assistant", "#26a269")}
STOP_REASONS = {
    "eos": "",
    "length": " · stopped at max tokens",
    "stop_string": "",
    "stopped": " · stopped by you",
    "context_full": " · context full",
}


class ChatInput(QPlainTextEdit):
    """Enter sends, Shift+Enter adds a line."""

    submitted = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class ChatPanel(QWidget):
    sendRequested = Signal(object)  # list[Message], the whole conversation to answer
    stopRequested = Signal()
    newChatRequested = Signal()
    regenerateRequested = Signal()
    editRequested = Signal()
    versionRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history: list[Message] = []
        self.reply = ""
        self.streaming = False
        self.model_ready = False

        self.system_prompt = QLineEdit()
        self.system_prompt.setObjectName("systemPrompt")
        self.system_prompt.setPlaceholderText("System prompt (optional)")
        self.transcript = QTextBrowser()
        self.transcript.setObjectName("transcript")
        self.transcript.setOpenExternalLinks(True)
        self.transcript.setPlaceholderText("Load a model, then type a message below.")
        self.input = ChatInput()
        self.input.setObjectName("chatInput")
        self.input.setPlaceholderText("Message (Enter sends, Shift+Enter for a new line)")
        self.input.setMaximumHeight(100)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("sendButton")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setEnabled(False)
        self.new_button = QPushButton("New chat")
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip(
            "Answer the last message again (Ctrl+R); the earlier reply stays browsable"
        )
        self.edit_button = QPushButton("Edit last")
        self.edit_button.setToolTip("Put your last message back in the box to edit and resend")
        self.version_button = QPushButton("Other version")
        self.version_button.setToolTip("Show the other versions of the last reply")
        self.version_button.hide()
        self.status = QLabel()
        self.status.setObjectName("chatStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        system_row = QHBoxLayout()
        system_row.addWidget(QLabel("System:"))
        system_row.addWidget(self.system_prompt, 1)
        system_row.addWidget(self.new_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.version_button)
        buttons.addWidget(self.edit_button)
        buttons.addWidget(self.regenerate_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.send_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(system_row)
        layout.addWidget(self.transcript, 1)
        layout.addWidget(self.input)
        layout.addLayout(buttons)

        self.input.submitted.connect(self.send)
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(self.stop)
        self.new_button.clicked.connect(self.new_chat)
        self.regenerate_button.clicked.connect(self.regenerateRequested)
        self.edit_button.clicked.connect(self.editRequested)
        self.version_button.clicked.connect(self.versionRequested)

        self._text_format = QTextCharFormat()
        self._text_format.setForeground(QColor(self.palette().text().color()))
        self._update_buttons()

    # -- actions ------------------------------------------------------------------------
    def send(self) -> None:
        if self.streaming:
            return
        text = self.input.toPlainText().strip()
        if not text:
            self.status.setText("Type a message first.")
            return
        if not self.model_ready:
            self.status.setText("Load a model first; your message is kept.")
            return
        self.input.clear()
        self.history.append(Message("user", text))
        self._append_message("user", text)
        self._begin_reply()
        self.sendRequested.emit(self.conversation())

    def conversation(self) -> list[Message]:
        system = self.system_prompt.text().strip()
        return ([Message("system", system)] if system else []) + self.history

    def stop(self) -> None:
        if self.streaming:
            self.stopRequested.emit()

    def new_chat(self) -> None:
        if self.streaming:
            self.stopRequested.emit()
        self.history.clear()
        self.transcript.clear()
        self.status.setText("New chat.")
        self.newChatRequested.emit()

    def show_conversation(self, history: list[Message], system_prompt: str) -> None:
        """Show a saved conversation (replies still streaming when it was saved included)."""
        self.history = list(history)
        self.system_prompt.setText(system_prompt)
        self._redraw()
        self.status.setText("")

    def set_model_ready(self, ready: bool) -> None:
        self.model_ready = ready
        self._update_buttons()

    # -- replies (from the engine, through the window) ------------------------------------
    def _begin_reply(self) -> None:
        self.reply = ""
        self.streaming = True
        self._append_header("assistant")
        self.status.setText("Thinking…")
        self._update_buttons()

    def append_text(self, chunk: str) -> None:
        if not self.streaming:
            return
        self.reply += chunk
        bar = self.transcript.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        cursor = self.transcript.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(chunk, self._text_format)
        if at_bottom:
            bar.setValue(bar.maximum())

    def finish_reply(self, result: GenerationResult) -> None:
        if not self.streaming:
            return
        self.streaming = False
        self.history.append(Message("assistant", self.reply))
        dropped = (
            f" · {result.dropped_messages} older messages left out of the context (still saved)"
            if result.dropped_messages
            else ""
        )
        self.status.setText(
            f"{result.generated_tokens} tokens · {result.tokens_per_s:.1f} tokens/s · "
            f"first token {result.time_to_first_token_s * 1000:.0f} ms · "
            f"context {result.prompt_tokens + result.generated_tokens} used"
            f"{STOP_REASONS.get(result.stop_reason, '')}{dropped}"
        )
        self._update_buttons()

    def fail_reply(self, message: str) -> None:
        """The reply could not be made: undo the turn and give the text back to the input."""
        if not self.streaming:
            return
        self.streaming = False
        user = self.history.pop() if self.history and self.history[-1].role == "user" else None
        self._redraw()
        if user is not None and not self.input.toPlainText().strip():
            self.input.setPlainText(user.content)
        self.status.setText(f"Error: {message}")
        self._update_buttons()

    # -- drawing ----------------------------------------------------------------------
    def _update_buttons(self) -> None:
        self.send_button.setEnabled(self.model_ready and not self.streaming)
        self.stop_button.setEnabled(self.streaming)
        idle = not self.streaming
        last = self.history[-1].role if self.history else None
        self.regenerate_button.setEnabled(idle and self.model_ready and last == "assistant")
        self.edit_button.setEnabled(idle and any(m.role == "user" for m in self.history))

    def request_reply(self) -> None:
        """Answer the conversation as it stands (after a regenerate)."""
        if self.streaming or not self.model_ready:
            return
        self._redraw()
        self._begin_reply()
        self.sendRequested.emit(self.conversation())

    def redraw(self) -> None:
        self._redraw()
        self._update_buttons()

    def _append_header(self, role: str) -> None:
        name, color = ROLE_STYLE[role]
        cursor = self.transcript.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if not self.transcript.document().isEmpty():
            cursor.insertBlock()
            cursor.insertBlock()
        header = QTextCharFormat()
        header.setFontWeight(QFont.Weight.Bold)
        header.setForeground(QColor(color))
        cursor.insertText(name, header)
        cursor.insertBlock()
        cursor.setCharFormat(self._text_format)
        self.transcript.setTextCursor(cursor)

    def _append_message(self, role: str, text: str) -> None:
        self._append_header(role)
        cursor = self.transcript.textCursor()
        cursor.insertText(text, self._text_format)
        self.transcript.verticalScrollBar().setValue(self.transcript.verticalScrollBar().maximum())

    def _redraw(self) -> None:
        self.transcript.clear()
        for message in self.history:
            self._append_message(message.role, message.content)
