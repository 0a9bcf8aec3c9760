"""The open conversation's bookkeeping: what is saved when (a message when sent, a reply
while it streams and when it ends), regenerate / continue / edit, versions, sampling per chat,
export and import. It ties the chat panel, the chats list and the sampling panel to the
ChatStore; the window only forwards the engine's signals here."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QWidget

from kobold_gui.core.chat_format import Message
from kobold_gui.core.chat_store import (
    ChatFileError,
    ChatStore,
    Conversation,
    StoredMessage,
    import_openai,
)
from kobold_gui.core.engine_types import GenerationResult, SamplingParams
from kobold_gui.core.gguf_info import GGUFInfo
from kobold_gui.ui.chat_panel import ChatPanel, stats_line
from kobold_gui.ui.conversation_list import ConversationList
from kobold_gui.ui.sampling_panel import SamplingPanel, params_from_dict

SAVE_EVERY_S = 1.0  # a streaming reply is saved at least this often


def _panel_messages(conv: Conversation) -> tuple[list[Message], dict[int, str]]:
    """The chat panel's view of a stored conversation: messages and stats lines."""
    history: list[Message] = []
    stats: dict[int, str] = {}
    for m in conv.messages:
        if m.role not in ("user", "assistant"):
            continue
        if m.stats:
            stats[len(history)] = stats_line(
                m.stats.get("generated_tokens", 0),
                m.stats.get("tokens_per_s", 0.0),
                m.stats.get("time_to_first_token_s", 0.0),
            )
        history.append(Message("user" if m.role == "user" else "assistant", m.content))
    return history, stats


class ConversationController(QObject):
    def __init__(
        self,
        chat: ChatPanel,
        chat_list: ConversationList,
        sampling_panel: SamplingPanel,
        store: ChatStore,
        say: Callable[[str], None],
        default_system_prompt: Callable[[], str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.chat, self.chat_list, self.sampling_panel = chat, chat_list, sampling_panel
        self.store = store
        self.say = say  # a status-bar message
        self.default_system_prompt = default_system_prompt
        self.conversation = Conversation()
        self.sampling = SamplingParams()
        self._last_save = 0.0
        self._continuing = False
        chat.newChatRequested.connect(self.new)
        chat.regenerateRequested.connect(self.regenerate)
        chat.editRequested.connect(self.edit_last)
        chat.versionRequested.connect(self.next_version)
        chat.continueRequested.connect(self.continue_reply)
        chat.deleteExchangeRequested.connect(self.delete_last_exchange)
        chat_list.openRequested.connect(self.open)
        chat_list.newRequested.connect(chat.new_chat)
        chat_list.deleted.connect(self._deleted)
        chat_list.exportRequested.connect(self.export_dialog)
        chat_list.importRequested.connect(self.import_dialog)
        sampling_panel.changed.connect(self.set_sampling)

    def open_last(self) -> None:
        saved = self.store.conversations()
        if saved:
            self.open(saved[0].id)
        else:
            self.chat_list.refresh()

    def open(self, conv_id: str) -> None:
        if self.chat.streaming:
            return
        try:
            conv = self.store.load(conv_id)
        except (ChatFileError, OSError) as e:
            self.say(str(e))
            self.chat_list.refresh()
            return
        self.conversation = conv
        self.sampling = params_from_dict(conv.sampling)
        self.sampling_panel.set_params(self.sampling)
        history, stats = _panel_messages(conv)
        self.chat.show_conversation(
            history, conv.system_prompt or self.default_system_prompt(), stats
        )
        self._show_versions()
        self.chat_list.mark_current(conv)

    def new(self) -> None:
        self.conversation = Conversation(sampling=asdict(self.sampling))
        self.chat_list.current_id = None
        self.chat_list.refresh()

    def _deleted(self, conv_id: str) -> None:
        if conv_id == self.conversation.id:
            self.chat.new_chat()

    def save(self) -> None:
        try:
            self.store.save(self.conversation)
        except OSError as e:
            self.say(f"Chat not saved: {e}")
        self._last_save = time.monotonic()

    # -- a turn ------------------------------------------------------------------------
    def begin_turn(self, model: str | None) -> None:
        """The chat panel asked for a reply: keep the user's message (unless this is a
        regenerate or a continue, which already made room for the reply) and save."""
        msgs = self.conversation.messages
        self.conversation.system_prompt = self.chat.system_prompt.text().strip()
        self.conversation.model = model
        self.conversation.sampling = asdict(self.sampling)
        reply_in_progress = bool(msgs) and msgs[-1].role == "assistant" and not msgs[-1].complete
        if not reply_in_progress:
            msgs.append(StoredMessage("user", self.chat.history[-1].content))
            msgs.append(StoredMessage("assistant", "", complete=False))
        self.save()
        self.chat_list.mark_current(self.conversation)

    def reply_text(self, chunk: str) -> None:
        messages = self.conversation.messages
        if messages and messages[-1].role == "assistant" and not messages[-1].complete:
            messages[-1].content += chunk
            if time.monotonic() - self._last_save >= SAVE_EVERY_S:
                self.save()

    def reply_finished(self, result: GenerationResult) -> None:
        messages = self.conversation.messages
        if not messages or messages[-1].role != "assistant":
            return
        reply = messages[-1]
        # The panel holds the whole reply (a continued one includes what came before).
        reply.content, reply.complete = self.chat.history[-1].content, True
        self._continuing = False
        reply.stats = {
            "tokens_per_s": round(result.tokens_per_s, 2),
            "time_to_first_token_s": round(result.time_to_first_token_s, 4),
            "prompt_tokens": result.prompt_tokens,
            "generated_tokens": result.generated_tokens,
            "stop_reason": result.stop_reason,
        }
        self._show_versions()
        self.save()

    def reply_failed(self) -> None:
        messages = self.conversation.messages
        if self._continuing:  # the earlier reply stays as it was
            self._continuing = False
            messages[-1].complete = True
            self.open(self.conversation.id)
        elif len(messages) >= 2 and messages[-1].role == "assistant" and not messages[-1].complete:
            del messages[-2:]  # the turn is undone; its text is back in the input box
            self.save()

    # -- changing the flow -------------------------------------------------------------------
    def regenerate(self) -> None:
        """Answer the last user message again; the earlier reply stays as a version."""
        msgs = self.conversation.messages
        if self.chat.streaming or not msgs or msgs[-1].role != "assistant":
            return
        old = msgs.pop()
        self.chat.history.pop()
        versions = [*old.alternatives, old.content]
        msgs.append(StoredMessage("assistant", "", complete=False, alternatives=versions))
        self.save()
        self.chat.request_reply()

    def continue_reply(self) -> None:
        msgs = self.conversation.messages
        if self.chat.streaming or not msgs or msgs[-1].role != "assistant":
            return
        msgs[-1].complete = False  # begin_turn sees a reply in progress and adds no turn
        self._continuing = True
        self.chat.continue_reply()

    def edit_last(self) -> None:
        """Take the last user message (and what followed) back into the input box."""
        msgs = self.conversation.messages
        if self.chat.streaming:
            return
        last_user = max((i for i, m in enumerate(msgs) if m.role == "user"), default=None)
        if last_user is None:
            return
        text = msgs[last_user].content
        del msgs[last_user:]
        self.chat.history, self.chat.stats = _panel_messages(self.conversation)
        self.chat.redraw()
        self.chat.input.setPlainText(text)
        self.chat.input.setFocus()
        self.save()

    def delete_last_exchange(self) -> None:
        self.edit_last()
        self.chat.input.clear()

    def next_version(self) -> None:
        """Show the next version of the last reply (the current one becomes a version)."""
        msgs = self.conversation.messages
        if self.chat.streaming or not msgs or not msgs[-1].alternatives:
            return
        reply = msgs[-1]
        reply.alternatives.append(reply.content)
        reply.content = reply.alternatives.pop(0)
        self.chat.history[-1] = Message("assistant", reply.content)
        self.chat.redraw()
        self.save()
        self._show_versions()

    def _show_versions(self) -> None:
        msgs = self.conversation.messages
        count = len(msgs[-1].alternatives) + 1 if msgs and msgs[-1].role == "assistant" else 1
        self.chat.version_button.setVisible(count > 1)
        self.chat.version_button.setText(f"Other version ({count})")

    # -- sampling ------------------------------------------------------------------------
    def set_sampling(self, params: SamplingParams) -> None:
        self.sampling = params
        self.conversation.sampling = asdict(params)
        if self.conversation.messages:
            self.save()

    def model_chosen(self, info: GGUFInfo) -> None:
        """Reset goes to the model's recommended sampling; a new chat starts from it."""
        defaults = params_from_dict(info.sampling_defaults)
        self.sampling_panel.set_defaults(defaults)
        if not self.conversation.messages and info.sampling_defaults:
            self.sampling_panel.set_params(defaults)
            self.set_sampling(defaults)

    # -- export and import -------------------------------------------------------------------
    def export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.chat,
            "Export chat",
            f"{self.conversation.display_title()}.md",
            "Markdown (*.md);;JSON, OpenAI messages (*.json)",
        )
        if path:
            self.write_export(Path(path))

    def write_export(self, path: Path) -> None:
        if path.suffix.lower() == ".json":
            text = json.dumps(
                {"messages": self.conversation.to_openai()}, indent=2, ensure_ascii=False
            )
        else:
            text = self.conversation.to_markdown()
        path.write_text(text, encoding="utf-8")

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.chat, "Import chat", "", "JSON (*.json)")
        if path:
            self.read_import(Path(path))

    def read_import(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            messages = data["messages"] if isinstance(data, dict) else data
            conv = import_openai(messages, title=path.stem)
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.say(f"Cannot import {path.name}: {e}")
            return
        self.store.save(conv)
        self.open(conv.id)
