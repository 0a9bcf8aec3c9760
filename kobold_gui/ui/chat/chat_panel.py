"""The chat panel: transcript, input, Send / Stop / New chat, system prompt, reply stats.

A view of the conversation that ConversationController owns: it draws what the controller
gives it (a saved conversation, a reply as it streams) and turns the user's actions into
signals. It keeps no copy of the conversation; `history` reads the controller's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QPoint, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFont,
    QGuiApplication,
    QKeyEvent,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.text_batcher import RENDER_MARKDOWN_S
from kobold_gui.core.engine.types import GenerationResult
from kobold_gui.ui.chat.reply_renderer import ReplyRenderer, new_block

ROLE_STYLE = {"user": ("You", "#1a5fb4"), "assistant": ("Assistant", "#26a269")}
STOP_REASONS = {
    "eos": "",
    "length": " · stopped at max tokens",
    "stop_string": "",
    "stopped": " · stopped by you",
    "context_full": " · context full",
}
CUT_NOTE = "Reply cut off (the app ended before it finished) · Continue finishes it"
CUT_BY_ERROR = "Reply cut off: {} · Continue finishes it"


@dataclass(frozen=True)
class ShownMessage:
    """A message as the transcript draws it, with the grey line under it (stats, a note)."""

    role: str  # user, assistant
    content: str
    note: str = ""


def stats_line(tokens: int, tokens_per_s: float, ttft_s: float) -> str:
    return f"{tokens} tokens · {tokens_per_s:.1f} tokens/s · first token {ttft_s * 1000:.0f} ms"


def status_line(result: GenerationResult, n_ctx: int) -> str:
    dropped = (
        f" · {result.dropped_messages} older messages left out of the context (still saved)"
        if result.dropped_messages
        else ""
    )
    return (
        f"{result.generated_tokens} tokens · {result.tokens_per_s:.1f} tokens/s · "
        f"first token {result.time_to_first_token_s * 1000:.0f} ms · "
        f"context {result.prompt_tokens + result.generated_tokens}"
        f"{f' / {n_ctx}' if n_ctx else ''} tokens"
        f"{STOP_REASONS.get(result.stop_reason, '')}{dropped}"
    )


class ChatInput(QPlainTextEdit):
    """Enter sends, Shift+Enter adds a line, Esc stops the reply. (Esc is also the window's
    shortcut; handled here as well, it works whether or not the window has been activated.)"""

    submitted = Signal()
    escaped = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submitted.emit()
            return
        if event.key() == Qt.Key.Key_Escape:
            self.escaped.emit()
            return
        super().keyPressEvent(event)


def _lay_out(panel: ChatPanel) -> None:
    """The system prompt row, the transcript, the input, the status line, the buttons."""
    system_row = QHBoxLayout()
    system_row.addWidget(QLabel("System:"))
    system_row.addWidget(panel.system_prompt, 1)
    system_row.addWidget(panel.new_button)
    buttons = QHBoxLayout()
    buttons.addStretch(1)
    buttons.addWidget(panel.version_button)
    buttons.addWidget(panel.continue_button)
    buttons.addWidget(panel.edit_button)
    buttons.addWidget(panel.regenerate_button)
    buttons.addWidget(panel.stop_button)
    buttons.addWidget(panel.send_button)
    layout = QVBoxLayout(panel)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addLayout(system_row)
    layout.addWidget(panel.transcript, 1)
    layout.addWidget(panel.input)
    layout.addWidget(panel.status)
    layout.addLayout(buttons)


def _connect(panel: ChatPanel) -> None:
    """The input's keys, the buttons and the transcript's menu, to the panel's actions."""
    panel.input.submitted.connect(panel.send)
    panel.input.escaped.connect(panel.stop)
    panel.send_button.clicked.connect(panel.send)
    panel.stop_button.clicked.connect(panel.stop)
    panel.new_button.clicked.connect(panel.new_chat)
    panel.regenerate_button.clicked.connect(panel.regenerateRequested)
    panel.edit_button.clicked.connect(panel.editRequested)
    panel.version_button.clicked.connect(panel.versionRequested)
    panel.continue_button.clicked.connect(panel.continueRequested)
    panel.transcript.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    panel.transcript.customContextMenuRequested.connect(panel._context_menu)


class ChatPanel(QWidget):
    messageSubmitted = Signal(str)  # the user's new message (the controller makes the turn)
    stopRequested = Signal()
    newChatRequested = Signal()
    regenerateRequested = Signal()
    continueRequested = Signal()
    editRequested = Signal()
    versionRequested = Signal()
    deleteExchangeRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._history: Callable[[], list[Message]] = list
        self.streaming = False
        self.model_ready = False

        self.system_prompt = QLineEdit()
        self.system_prompt.setObjectName("systemPrompt")
        self.system_prompt.setPlaceholderText("System prompt (optional)")
        self.transcript = QTextBrowser()
        self.transcript.setObjectName("transcript")
        self.transcript.setOpenLinks(False)  # copy: links are ours, others go to the browser
        self.transcript.anchorClicked.connect(self._link_clicked)
        self.code_blocks: dict[int, str] = {}
        self._reply: ReplyRenderer | None = None  # the reply that streams
        self._render_timer = QTimer(self)
        self._render_timer.setInterval(int(RENDER_MARKDOWN_S * 1000))  # text_batcher.py
        self._render_timer.timeout.connect(self._render_pieces)
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
        self.continue_button = QPushButton("Continue")
        self.continue_button.setToolTip("Continue the last reply where it stopped")
        self.version_button = QPushButton("Other version")
        self.version_button.setToolTip("Show the other versions of the last reply")
        self.version_button.hide()
        self.status = QLabel()
        self.status.setObjectName("chatStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # A long stats line wraps in its own row: no label's text may widen the window.
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        _lay_out(self)
        _connect(self)
        self.n_ctx = 0  # of the loaded model, for the context meter

        self._text_format = QTextCharFormat()
        self._text_format.setForeground(QColor(self.palette().text().color()))
        self._update_buttons()

    # -- the conversation it shows -------------------------------------------------------
    @property
    def history(self) -> list[Message]:
        """The conversation's user and assistant messages (the controller's, read now)."""
        return self._history()

    def set_history_source(self, source: Callable[[], list[Message]]) -> None:
        self._history = source

    def conversation(self) -> list[Message]:
        system = self.system_prompt.text().strip()
        return ([Message("system", system)] if system else []) + self.history

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
        self.input.setFocus()
        self.messageSubmitted.emit(text)

    def stop(self) -> None:
        if self.streaming:
            self.stopRequested.emit()

    def new_chat(self) -> None:
        if self.streaming:
            self.stopRequested.emit()
        self.status.setText("New chat.")
        self.newChatRequested.emit()

    def set_model_ready(self, ready: bool) -> None:
        self.model_ready = ready
        self.transcript.setPlaceholderText(
            "Type a message below." if ready else "Load a model, then type a message below."
        )
        self._update_buttons()
        if ready:  # the first thing typed goes into the message, not the system prompt
            self.input.setFocus()

    def put_back(self, text: str) -> None:
        """Text the user wrote goes back into the input (an edit, a failed reply)."""
        if not self.input.toPlainText().strip():
            self.input.setPlainText(text)
        self.input.setFocus()

    def set_versions(self, count: int) -> None:
        self.version_button.setVisible(count > 1)
        self.version_button.setText(f"Other version ({count})")

    # -- drawing what the controller says ------------------------------------------------
    def show_conversation(self, messages: list[ShownMessage], system_prompt: str) -> None:
        """Draws a whole conversation (the streaming state ends)."""
        self._end_streaming()
        self.system_prompt.setText(system_prompt)
        self.transcript.clear()
        self.code_blocks.clear()
        for message in messages:
            self._append_message(message)
        self._scroll_to_end()
        self._update_buttons()

    def show_user(self, text: str) -> None:
        self._append_message(ShownMessage("user", text))
        self._scroll_to_end()

    def begin_reply(self, earlier: str = "") -> None:
        """A reply starts streaming below the last message (after `earlier`, when it is a
        reply being continued)."""
        self._append_header("assistant")
        self._reply = ReplyRenderer(self.transcript, self.code_blocks, self._text_format)
        if earlier:
            self._reply.draw(earlier)
        self.streaming = True
        self._render_timer.start()
        self.status.setText("Thinking…")
        self._update_buttons()

    def append_text(self, chunk: str) -> None:
        """Streamed text shows at once as plain text; the timer draws complete pieces as
        Markdown a few times a second."""
        if self._reply is None:
            return
        if self.status.text() == "Thinking…":
            self.status.setText("")
        bar = self.transcript.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        self._reply.add(chunk)
        if at_bottom:
            bar.setValue(bar.maximum())

    def _render_pieces(self, final: bool = False) -> None:
        if self._reply is None:
            return
        bar = self.transcript.verticalScrollBar()
        at_bottom, keep = bar.value() >= bar.maximum() - 4, bar.value()
        self._reply.render(final)
        bar.setValue(bar.maximum() if at_bottom else keep)

    def finish_reply(self, note: str, status: str) -> None:
        """The reply is whole: its last piece is drawn and the note goes under it."""
        if self._reply is None:
            return
        self._render_pieces(final=True)
        self._append_note(note)
        self._end_streaming()
        self.status.setText(status)
        self._update_buttons()

    def fail_reply(self, message: str) -> None:
        self._end_streaming()
        self.status.setText(f"Error: {message}")
        self._update_buttons()

    def _end_streaming(self) -> None:
        self._render_timer.stop()
        self._reply = None
        self.streaming = False

    def _link_clicked(self, url: QUrl) -> None:
        if url.scheme() == "copy":
            code = self.code_blocks.get(int(url.path() or -1))
            if code is not None:
                QGuiApplication.clipboard().setText(code)
                self.status.setText("Code copied.")
        else:
            QDesktopServices.openUrl(url)

    def _update_buttons(self) -> None:
        self.send_button.setEnabled(self.model_ready and not self.streaming)
        self.stop_button.setEnabled(self.streaming)
        idle = not self.streaming
        history = self.history
        last = history[-1].role if history else None
        self.regenerate_button.setEnabled(idle and self.model_ready and last == "assistant")
        self.continue_button.setEnabled(idle and self.model_ready and last == "assistant")
        self.edit_button.setEnabled(idle and any(m.role == "user" for m in history))

    def _context_menu(self, pos: QPoint) -> None:
        menu = self.transcript.createStandardContextMenu()
        last = next((m for m in reversed(self.history) if m.role == "assistant"), None)
        if last is not None:
            menu.addSeparator()
            menu.addAction(
                "Copy the last reply", lambda: QGuiApplication.clipboard().setText(last.content)
            )
        if self.history and not self.streaming:
            menu.addAction("Delete the last exchange", self.deleteExchangeRequested.emit)
        menu.exec(self.transcript.viewport().mapToGlobal(pos))

    def _append_header(self, role: str) -> None:
        name, color = ROLE_STYLE[role]
        cursor = self.transcript.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if not self.transcript.document().isEmpty():
            new_block(cursor)
            new_block(cursor)
        header = QTextCharFormat()
        header.setFontWeight(QFont.Weight.Bold)
        header.setForeground(QColor(color))
        cursor.insertText(name, header)
        new_block(cursor)
        cursor.setCharFormat(self._text_format)
        self.transcript.setTextCursor(cursor)

    def _append_message(self, message: ShownMessage) -> None:
        self._append_header(message.role)
        if message.role == "assistant":
            ReplyRenderer(self.transcript, self.code_blocks, self._text_format).draw(
                message.content
            )
        else:
            cursor = self.transcript.textCursor()
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(message.content, self._text_format)
        self._append_note(message.note)

    def _append_note(self, text: str) -> None:
        if not text:
            return
        cursor = self.transcript.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        new_block(cursor)
        small = QTextCharFormat()
        small.setForeground(QColor("#77767b"))
        small.setFontPointSize(max(7.0, self.font().pointSizeF() - 1))
        cursor.insertText(text, small)

    def _scroll_to_end(self) -> None:
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())
