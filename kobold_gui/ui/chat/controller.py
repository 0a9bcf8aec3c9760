"""The one owner of the open conversation. Every change to it (a message sent, streamed text,
a reply ending, failing or being continued, regenerate, edit, versions, sampling, a rename) is
made here, saved as a small journal record through the ChatWriter (off the GUI thread), and
then drawn by the chat panel, which keeps no copy. The window forwards the engine's signals
here; the chats list asks for opens, renames and deletes here."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QWidget

from kobold_gui.core.chats.store import ChatFileError, ChatStore
from kobold_gui.core.chats.types import (
    Conversation,
    Op,
    ReplyVersion,
    StoredMessage,
    op_meta,
    op_put,
    op_text,
    op_trim,
)
from kobold_gui.core.chats.writer import ChatWriter
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.types import GenerationResult, SamplingParams
from kobold_gui.core.models.gguf_info import GGUFInfo
from kobold_gui.ui.chat.chat_files import ChatFiles
from kobold_gui.ui.chat.chat_panel import ChatPanel, stats_line, status_line
from kobold_gui.ui.chat.conversation_list import ConversationList
from kobold_gui.ui.chat.conversation_view import result_stats, shown_messages
from kobold_gui.ui.chat.library import ChatLibrary
from kobold_gui.ui.chat.notice import SetAsideNotice
from kobold_gui.ui.chat.sampling_panel import SamplingPanel, params_from_dict
from kobold_gui.ui.common.background import LatestJob

SAVE_TEXT_AFTER_MS = 250  # streamed text reaches the writer at most this long after it shows


class ConversationController(ChatLibrary, QObject):
    replyRequested = Signal(object)  # list[Message]: the conversation for the engine to answer
    problemsChanged = Signal(list)  # messages about chat files set aside
    _writeFailed = Signal(str)  # from the writer thread
    _renamed = Signal(object)  # ChatSummary, from the writer thread

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
        self.writer = ChatWriter(store, on_error=self._writeFailed.emit)
        self.notice = SetAsideNotice(store.folder)  # the window puts it in its status bar
        self.files = ChatFiles(chat, say)
        self.conversation = Conversation()
        self.sampling = SamplingParams()
        self._saved = False  # the conversation has a snapshot on disk
        self._streaming: int | None = None  # index of the reply that streams
        self._restore: StoredMessage | None = None  # the reply as it was (continue, regenerate)
        self._detached = 0  # replies left behind (new chat while streaming): their signals
        self._unsaved = ""  # streamed text not yet handed to the writer
        self._deleted_id: str | None = None
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_TEXT_AFTER_MS)
        self._save_timer.timeout.connect(self._save_text)
        self._scan = LatestJob(self)
        self._search = LatestJob(self)
        self._writeFailed.connect(say)
        self._renamed.connect(chat_list.upsert)
        chat.set_history_source(self.history)
        chat.messageSubmitted.connect(self.submit)
        chat.newChatRequested.connect(self.new)
        chat.regenerateRequested.connect(self.regenerate)
        chat.editRequested.connect(self.edit_last)
        chat.versionRequested.connect(self.next_version)
        chat.continueRequested.connect(self.continue_reply)
        chat.deleteExchangeRequested.connect(self.delete_last_exchange)
        chat_list.openRequested.connect(self.open)
        chat_list.newRequested.connect(chat.new_chat)
        chat_list.renameRequested.connect(self.rename)
        chat_list.deleteRequested.connect(self.delete)
        chat_list.undoRequested.connect(self.undelete)
        chat_list.searchChanged.connect(self.search)
        chat_list.exportRequested.connect(self.export_dialog)
        chat_list.importRequested.connect(self.import_dialog)
        chat_list.openFolderRequested.connect(self.notice.open_folder)
        self.problemsChanged.connect(self.notice.show_problems)
        self.problemsChanged.connect(chat_list.show_problems)
        sampling_panel.changed.connect(self.set_sampling)

    # -- what the panel reads ----------------------------------------------------------------
    def history(self) -> list[Message]:
        return [
            Message("user" if m.role == "user" else "assistant", m.content)
            for m in self.conversation.messages
            if m.role in ("user", "assistant")
        ]

    @property
    def streaming(self) -> bool:
        return self._streaming is not None

    # -- saving --------------------------------------------------------------------------------
    def _record(self, *ops: Op) -> None:
        """Hands changes to the writer (the first one saves the whole new conversation)."""
        self.conversation.updated = time.time()
        if not self._saved:
            self._saved = True
            self.writer.save(self.conversation)
        else:
            self.writer.append(self.conversation.id, [*ops, op_meta(self.conversation)])
        self.chat_list.upsert(self.conversation.summary())
        self.chat_list.mark_current(self.conversation.id)

    def _save_text(self) -> None:
        if self._unsaved and self._streaming is not None:
            self.writer.append(self.conversation.id, [op_text(self._streaming, self._unsaved)])
        self._unsaved = ""

    def shutdown(self) -> None:
        """The window closes: what was shown is written (a reply still streaming stays
        marked as cut), the journal folded, the index written, the writer ended."""
        self._save_timer.stop()
        self._save_text()
        if self._saved:
            self.writer.compact(self.conversation.id)
        self.writer.call(self.store.write_index)
        self.writer.close()

    # -- opening (the chats list's actions are in ChatLibrary) -------------------------------
    def open(self, conv_id: str) -> None:
        if self.streaming:
            self.say("Stop the reply first, then open another chat.")
            return
        self.writer.drain()  # what was asked to be written is read back
        try:
            conv = self.store.load(conv_id)
        except (ChatFileError, OSError) as e:
            self.say(str(e))
            self.chat_list.remove(conv_id)
            self.problemsChanged.emit(list(self.store.problems))
            return
        self._show(conv, saved=True)
        if self.chat_list.summary(conv.id) is None:  # undeleted, say
            self.chat_list.upsert(conv.summary())

    def _show(self, conv: Conversation, saved: bool) -> None:
        self.conversation, self._saved = conv, saved
        self.sampling = params_from_dict(conv.sampling)
        self.sampling_panel.set_params(self.sampling)
        system = conv.system_prompt if saved else self.chat.system_prompt.text()
        self.chat.show_conversation(shown_messages(conv), system or self.default_system_prompt())
        self._show_versions()
        self.chat_list.mark_current(conv.id if saved else None)

    def new(self) -> None:
        if self._streaming is not None:  # the panel asked the engine to stop; keep what came
            self._detach_reply()
        self._show(Conversation(sampling=asdict(self.sampling)), saved=False)

    def _detach_reply(self) -> None:
        """Ends the streaming reply here; its last signals from the engine are dropped."""
        assert self._streaming is not None
        self._save_timer.stop()
        self._save_text()
        reply = self.conversation.messages[self._streaming]
        reply.complete = True
        self._record(op_put(self._streaming, reply))
        self._streaming, self._restore = None, None
        self._detached += 1

    # -- a turn ------------------------------------------------------------------------
    def submit(self, text: str) -> None:
        """The user sent a message: it and an empty reply are saved, the engine is asked."""
        if self.streaming:
            return
        conv = self.conversation
        conv.system_prompt = self.chat.system_prompt.text().strip()
        conv.sampling = asdict(self.sampling)
        conv.messages.append(StoredMessage("user", text))
        request = self.chat.conversation()
        conv.messages.append(StoredMessage("assistant", "", complete=False))
        n = len(conv.messages)
        self._record(op_put(n - 2, conv.messages[-2]), op_put(n - 1, conv.messages[-1]))
        self.chat.show_user(text)
        self._start_reply(n - 1, None, request)

    def _start_reply(
        self, index: int, restore: StoredMessage | None, request: list[Message]
    ) -> None:
        self._streaming, self._restore = index, restore
        self.chat.begin_reply(self.conversation.messages[index].content)
        self.replyRequested.emit(request)

    def begin_turn(self, model: str | None) -> None:
        """The window sends the request to the engine with this model."""
        if model != self.conversation.model:
            self.conversation.model = model
            self._record()

    def reply_text(self, chunk: str) -> None:
        if self._detached or self._streaming is None:
            return
        self.conversation.messages[self._streaming].content += chunk
        self._unsaved += chunk
        if not self._save_timer.isActive():
            self._save_timer.start()
        self.chat.append_text(chunk)

    def reply_finished(self, result: GenerationResult) -> None:
        if self._detached:
            self._detached -= 1
            return
        if self._streaming is None:
            return
        self._save_timer.stop()
        self._save_text()
        index, self._streaming, self._restore = self._streaming, None, None
        reply = self.conversation.messages[index]
        reply.complete, reply.stats = True, result_stats(result)
        self._record(op_put(index, reply))
        self.writer.compact(self.conversation.id)  # once a turn: the next open reads one file
        note = stats_line(
            result.generated_tokens, result.tokens_per_s, result.time_to_first_token_s
        )
        self.chat.finish_reply(note, status_line(result, self.chat.n_ctx))
        self._show_versions()

    def reply_failed(self, message: str = "") -> None:
        if self._detached:
            self._detached -= 1
            return
        if self._streaming is None:
            return
        self._save_timer.stop()
        self._unsaved = ""
        index, restore = self._streaming, self._restore
        self._streaming, self._restore = None, None
        msgs = self.conversation.messages
        if restore is not None:  # a continue or a regenerate: the reply stays as it was
            msgs[index] = restore
            self._record(op_put(index, restore))
            self._redraw()
        else:  # the turn is undone; its text goes back into the input box
            user = msgs[index - 1].content
            del msgs[index - 1 :]
            self._record(op_trim(index - 1))
            self._redraw()
            self.chat.put_back(user)
        self.chat.fail_reply(message)

    def _redraw(self) -> None:
        self.chat.show_conversation(
            shown_messages(self.conversation), self.chat.system_prompt.text()
        )
        self._show_versions()

    # -- changing the flow -------------------------------------------------------------------
    def _last_reply(self) -> StoredMessage | None:
        msgs = self.conversation.messages
        if self.streaming or not self.chat.model_ready or not msgs:
            return None
        return msgs[-1] if msgs[-1].role == "assistant" else None

    def regenerate(self) -> None:
        """Answer the last user message again; the earlier reply stays as a version."""
        old = self._last_reply()
        if old is None:
            return
        msgs = self.conversation.messages
        versions = [*old.alternatives, ReplyVersion(old.content, old.stats)]
        msgs[-1] = StoredMessage("assistant", "", complete=False, alternatives=versions)
        self._record(op_put(len(msgs) - 1, msgs[-1]))
        self._redraw_without_last()
        self._start_reply(len(msgs) - 1, old, self.chat.conversation()[:-1])

    def continue_reply(self) -> None:
        """Continue the last reply (a cut one included): new text is added to it."""
        reply = self._last_reply()
        if reply is None:
            return
        restore = copy.deepcopy(reply)
        reply.complete, reply.stats = False, None
        index = len(self.conversation.messages) - 1
        self._record(op_put(index, reply))
        self._redraw_without_last()
        self._start_reply(index, restore, self.chat.conversation())

    def _redraw_without_last(self) -> None:
        shown = shown_messages(self.conversation, streaming=len(self.conversation.messages) - 1)
        self.chat.show_conversation(shown, self.chat.system_prompt.text())
        self.chat.set_versions(1)

    def edit_last(self) -> None:
        """Take the last user message (and what followed) back into the input box."""
        msgs = self.conversation.messages
        if self.streaming:
            return
        last_user = max((i for i, m in enumerate(msgs) if m.role == "user"), default=None)
        if last_user is None:
            return
        text = msgs[last_user].content
        del msgs[last_user:]
        self._record(op_trim(last_user))
        self._redraw()
        self.chat.input.setPlainText(text)
        self.chat.input.setFocus()

    def delete_last_exchange(self) -> None:
        self.edit_last()
        self.chat.input.clear()

    def next_version(self) -> None:
        """Show the next version of the last reply (the current one becomes a version)."""
        msgs = self.conversation.messages
        if self.streaming or not msgs or not msgs[-1].alternatives:
            return
        reply = msgs[-1]
        reply.alternatives.append(ReplyVersion(reply.content, reply.stats))
        shown = reply.alternatives.pop(0)
        reply.content, reply.stats = shown.content, shown.stats
        self._record(op_put(len(msgs) - 1, reply))
        self._redraw()

    def _show_versions(self) -> None:
        msgs = self.conversation.messages
        count = len(msgs[-1].alternatives) + 1 if msgs and msgs[-1].role == "assistant" else 1
        self.chat.set_versions(count)

    # -- sampling ------------------------------------------------------------------------
    def set_sampling(self, params: SamplingParams) -> None:
        self.sampling = params
        self.conversation.sampling = asdict(params)
        if self._saved:
            self._record()

    def model_chosen(self, info: GGUFInfo) -> None:
        """Reset goes to the model's recommended sampling; a new chat starts from it."""
        defaults = params_from_dict(info.sampling_defaults)
        self.sampling_panel.set_defaults(defaults)
        if not self.conversation.messages and info.sampling_defaults:
            self.sampling_panel.set_params(defaults)
            self.set_sampling(defaults)

    # -- export and import -------------------------------------------------------------------
    def export_dialog(self) -> None:
        self.files.export_dialog(self.conversation)

    def import_dialog(self) -> None:
        self.files.import_dialog(self._imported)

    def write_export(self, path: Path, name_filter: str | None = None) -> Path:
        return self.files.write(self.conversation, path, name_filter)

    def read_import(self, path: Path) -> None:
        conv = self.files.read(path)
        if conv is not None:
            self._imported(conv)

    def _imported(self, conv: Conversation) -> None:
        if self.streaming:
            self.say("Stop the reply first, then import.")
            return
        self.writer.save(conv)
        self._show(conv, saved=True)
        self.chat_list.upsert(conv.summary())
        self.chat_list.mark_current(conv.id)
