"""The chat panel: transcript, input, Send / Stop / New chat, system prompt, reply stats.

It holds the conversation and asks for replies through signals; the window forwards them
to the engine thread. Nothing the user typed is lost: a failed send puts the text back."""

from __future__ import annotations

import re
import time

from PySide6.QtCore import QPoint, Qt, QUrl, Signal
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
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.chat_format import Message
from kobold_gui.core.engine_types import GenerationResult

MARKDOWN_EVERY_S = 0.4
CODE_BLOCK = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
ROLE_STYLE = {"user": ("You", "#1a5fb4"), "assistant": ("Assistant", "#26a269")}
STOP_REASONS = {
    "eos": "",
    "length": " · stopped at max tokens",
    "stop_string": "",
    "stopped": " · stopped by you",
    "context_full": " · context full",
}


SETTLE_AT_LINE_AFTER = 4000  # characters: then a line end will do (a long list, say)


def _settled_length(text: str, start: int) -> int:
    """How much of text[start:] ends with a blank line outside a fenced code block; when
    the unrendered part grows long without one, the last line end outside a block."""
    for sep in ("\n\n", "\n"):
        if sep == "\n" and len(text) - start < SETTLE_AT_LINE_AFTER:
            break
        cut = text.rfind(sep, start)
        while cut >= start:
            if text.count("```", 0, cut) % 2 == 0:
                return cut + len(sep) - start
            cut = text.rfind(sep, start, cut)
    return 0


def stats_line(tokens: int, tokens_per_s: float, ttft_s: float) -> str:
    return f"{tokens} tokens · {tokens_per_s:.1f} tokens/s · first token {ttft_s * 1000:.0f} ms"


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
    continueRequested = Signal()
    editRequested = Signal()
    versionRequested = Signal()
    deleteExchangeRequested = Signal()

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
        self.transcript.setOpenLinks(False)  # copy: links are ours, others go to the browser
        self.transcript.anchorClicked.connect(self._link_clicked)
        self.code_blocks: dict[int, str] = {}
        self.stats: dict[int, str] = {}  # history index -> the reply's stats line
        self._reply_start = 0
        self._rendered_upto = 0
        self._last_render = 0.0
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

        system_row = QHBoxLayout()
        system_row.addWidget(QLabel("System:"))
        system_row.addWidget(self.system_prompt, 1)
        system_row.addWidget(self.new_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.version_button)
        buttons.addWidget(self.continue_button)
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
        self.continue_button.clicked.connect(self.continueRequested)
        self.transcript.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.transcript.customContextMenuRequested.connect(self._context_menu)
        self.n_ctx = 0  # of the loaded model, for the context meter

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
        self.input.setFocus()
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
        self.stats.clear()
        self.transcript.clear()
        self.status.setText("New chat.")
        self.newChatRequested.emit()

    def show_conversation(
        self, history: list[Message], system_prompt: str, stats: dict[int, str] | None = None
    ) -> None:
        """Show a saved conversation (replies still streaming when it was saved included)."""
        self.history = list(history)
        self.stats = dict(stats or {})
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
        self._reply_start = self.transcript.textCursor().position()
        self._rendered_upto = 0  # characters of self.reply already rendered as Markdown
        self._last_render = time.monotonic()
        self.status.setText("Thinking…")
        self._update_buttons()

    def append_text(self, chunk: str) -> None:
        """Plain text goes in at once; a few times a second the paragraphs that are complete
        (up to the last blank line outside a code block) are rendered as Markdown, once each.
        The work per update stays small however long the reply grows."""
        if not self.streaming:
            return
        self.reply += chunk
        bar = self.transcript.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        if time.monotonic() - self._last_render >= MARKDOWN_EVERY_S:
            self._render_reply()
        else:
            cursor = self.transcript.textCursor()
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(chunk, self._text_format)
        if at_bottom:
            bar.setValue(bar.maximum())

    def _render_reply(self, final: bool = False) -> None:
        """Render the settled part of the reply as Markdown (the rest stays plain text until
        it settles), keeping the reader's place when they scrolled up."""
        pending = self.reply[self._rendered_upto :]
        cut = len(pending) if final else _settled_length(self.reply, self._rendered_upto)
        self._last_render = time.monotonic()
        if cut <= 0:
            return
        bar = self.transcript.verticalScrollBar()
        keep = bar.value()
        cursor = self.transcript.textCursor()
        cursor.setPosition(self._reply_start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        if self._rendered_upto:
            cursor.insertBlock()
        cursor.insertMarkdown(self._with_copy_links(pending[:cut]))
        self._reply_start = cursor.position()
        self._rendered_upto += cut
        if pending[cut:]:
            cursor.insertText(pending[cut:], self._text_format)
        bar.setValue(keep)

    def _with_copy_links(self, text: str) -> str:
        """A 'copy' link after each fenced code block (the transcript cannot hold buttons)."""

        def add_link(match: re.Match[str]) -> str:
            index = len(self.code_blocks)
            self.code_blocks[index] = match.group(1)
            return f"{match.group(0)}\n\n[copy code](copy:{index})\n"

        return CODE_BLOCK.sub(add_link, text)

    def _link_clicked(self, url: QUrl) -> None:
        if url.scheme() == "copy":
            code = self.code_blocks.get(int(url.path() or -1))
            if code is not None:
                QGuiApplication.clipboard().setText(code)
                self.status.setText("Code copied.")
        else:
            QDesktopServices.openUrl(url)

    def finish_reply(self, result: GenerationResult) -> None:
        if not self.streaming:
            return
        self._render_reply(final=True)
        self.streaming = False
        self.history.append(Message("assistant", self.reply))
        self.stats[len(self.history) - 1] = stats_line(
            result.generated_tokens, result.tokens_per_s, result.time_to_first_token_s
        )
        self._append_stats(self.stats[len(self.history) - 1])
        dropped = (
            f" · {result.dropped_messages} older messages left out of the context (still saved)"
            if result.dropped_messages
            else ""
        )
        self.status.setText(
            f"{result.generated_tokens} tokens · {result.tokens_per_s:.1f} tokens/s · "
            f"first token {result.time_to_first_token_s * 1000:.0f} ms · "
            f"context {result.prompt_tokens + result.generated_tokens}"
            f"{f' / {self.n_ctx}' if self.n_ctx else ''} tokens"
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
        self.continue_button.setEnabled(idle and self.model_ready and last == "assistant")
        self.edit_button.setEnabled(idle and any(m.role == "user" for m in self.history))

    def request_reply(self) -> None:
        """Answer the conversation as it stands (after a regenerate)."""
        if self.streaming or not self.model_ready:
            return
        self._redraw()
        self._begin_reply()
        self.sendRequested.emit(self.conversation())

    def continue_reply(self) -> None:
        """Continue the last reply: new text is added to it."""
        if self.streaming or not self.model_ready or not self.history:
            return
        if self.history[-1].role != "assistant":
            return
        previous = self.history.pop()
        self.stats.pop(len(self.history), None)
        self._redraw()
        self._begin_reply()
        self.reply = previous.content
        self._render_reply(final=True)
        self.streaming = True
        self.sendRequested.emit([*self.conversation(), previous])

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
        if role == "assistant":
            cursor.insertMarkdown(self._with_copy_links(text))
        else:
            cursor.insertText(text, self._text_format)
        self.transcript.verticalScrollBar().setValue(self.transcript.verticalScrollBar().maximum())

    def _redraw(self) -> None:
        self.transcript.clear()
        self.code_blocks.clear()
        for i, message in enumerate(self.history):
            self._append_message(message.role, message.content)
            if i in self.stats:
                self._append_stats(self.stats[i])

    def _append_stats(self, text: str) -> None:
        cursor = self.transcript.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertBlock()
        small = QTextCharFormat()
        small.setForeground(QColor("#77767b"))
        small.setFontPointSize(max(7.0, self.font().pointSizeF() - 1))
        cursor.insertText(text, small)
