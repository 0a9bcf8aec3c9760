"""The one owner of the open conversation. Every change to it (a message sent, streamed text,
a reply ending, failing or being continued, regenerate, edit, versions, sampling) is made
here, saved as a small journal record (ui/chat/journal.py) through the ChatWriter (off the
GUI thread), and then drawn by the chat panel (ui/chat/conversation_view.py), which keeps no
copy. The window forwards the engine's signals here. The chats list's side (listing, search,
rename, delete, export and import) is the library it holds (ui/chat/library.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from kobold_gui.core.chats.store import ChatFileError, ChatStore
from kobold_gui.core.chats.types import (
    Conversation,
    ReplyVersion,
    StoredMessage,
    op_drop,
    op_put,
    op_text,
)
from kobold_gui.core.chats.writer import ChatWriter
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.types import GenerationResult, SamplingParams
from kobold_gui.core.models.gguf_info import GGUFInfo
from kobold_gui.ui.chat.chat_files import ChatFiles
from kobold_gui.ui.chat.chat_panel import ChatPanel, stats_line, status_line
from kobold_gui.ui.chat.conversation_list import ConversationList
from kobold_gui.ui.chat.conversation_view import (
    history,
    redraw,
    redraw_without_last,
    result_stats,
    show_versions,
    shown_messages,
)
from kobold_gui.ui.chat.edit_undo import EditUndo
from kobold_gui.ui.chat.journal import ChatJournal
from kobold_gui.ui.chat.library import ChatLibrary
from kobold_gui.ui.chat.sampling_panel import SamplingPanel, params_from_dict
from kobold_gui.ui.chat.stream_saver import StreamSaver


class ConversationController(QObject):
    replyRequested = Signal(object)  # list[Message]: the conversation for the engine to answer
    _writeFailed = Signal(str)  # from the writer thread

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
        self.journal = ChatJournal(self.writer, chat_list)
        self.files = ChatFiles(chat, say)
        self.library = ChatLibrary(self, store, self.writer, self.journal, self.files, say, self)
        self.notice = self.library.notice  # the window puts it in its status bar
        self.conversation = Conversation()
        self.sampling = SamplingParams()
        self._streaming: int | None = None  # index of the reply that streams
        self._restore: StoredMessage | None = None  # the reply as it was (continue, regenerate)
        self._detached = 0  # replies left behind (new chat while streaming): their signals
        self._unsaved = StreamSaver(self._write_text, self)  # streamed text, in batches
        self._writeFailed.connect(say)
        self.edit_undo = EditUndo(self)  # the window puts its bar in the status bar
        chat.messageSubmitted.connect(lambda _text: self.edit_undo.forget())
        chat.set_history_source(lambda: history(self.conversation))
        chat.messageSubmitted.connect(self.submit)
        chat.newChatRequested.connect(self.new)
        chat.regenerateRequested.connect(self.regenerate)
        chat.editRequested.connect(self.edit_last)
        chat.versionRequested.connect(self.next_version)
        chat.continueRequested.connect(self.continue_reply)
        chat.deleteExchangeRequested.connect(self.delete_last_exchange)
        chat_list.newRequested.connect(chat.new_chat)
        sampling_panel.changed.connect(self.set_sampling)

    @property
    def streaming(self) -> bool:
        return self._streaming is not None

    # -- saving --------------------------------------------------------------------------------
    def _write_text(self, text: str) -> None:
        if self._streaming is not None:
            reply = self.conversation.messages[self._streaming]
            self.writer.append(self.conversation.id, [op_text(reply.id, text)])

    def shutdown(self) -> None:
        """The window closes: what was shown is written (a reply still streaming stays
        marked as cut), the database checkpointed, the writer ended."""
        self._unsaved.flush()
        if self.journal.saved:
            self.writer.compact(self.conversation.id)
        self.library.watcher.timer.stop()
        self.writer.close()
        self.store.close()

    # -- opening (the chats list's actions are the library's) --------------------------------
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
            self.library.report_problems()
            return
        self.show(conv, saved=True)
        if self.chat_list.summary(conv.id) is None:  # undeleted, say
            self.chat_list.upsert(conv.summary())

    def show(self, conv: Conversation, saved: bool) -> None:
        """Make `conv` the open conversation (`saved`: it is on disk) and draw it."""
        self.conversation, self.journal.saved = conv, saved
        self.sampling = params_from_dict(conv.sampling)
        self.sampling_panel.set_params(self.sampling)
        system = conv.system_prompt if saved else self.chat.system_prompt.text()
        self.chat.show_conversation(shown_messages(conv), system or self.default_system_prompt())
        show_versions(self.chat, conv)
        self.chat_list.mark_current(conv.id if saved else None)

    def new(self) -> None:
        if self._streaming is not None:  # the panel asked the engine to stop; keep what came
            self._detach_reply()
        self.show(Conversation(sampling=asdict(self.sampling)), saved=False)

    def _detach_reply(self) -> None:
        """Ends the streaming reply here; its last signals from the engine are dropped."""
        assert self._streaming is not None
        self._unsaved.flush()
        reply = self.conversation.messages[self._streaming]
        reply.complete = True
        self.journal.record(self.conversation, op_put(reply))
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
        self.journal.record(self.conversation, op_put(conv.messages[-2]), op_put(conv.messages[-1]))
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
            self.journal.record(self.conversation)

    def reply_text(self, chunk: str) -> None:
        if self._detached or self._streaming is None:
            return
        self.conversation.messages[self._streaming].content += chunk
        self._unsaved.add(chunk)
        self.chat.append_text(chunk)

    def reply_finished(self, result: GenerationResult) -> None:
        if self._detached:
            self._detached -= 1
            return
        if self._streaming is None:
            return
        self._unsaved.flush()
        index, self._streaming, self._restore = self._streaming, None, None
        reply = self.conversation.messages[index]
        reply.complete, reply.stats, reply.cut = True, result_stats(result), ""
        self.journal.record(self.conversation, op_put(reply))
        self.writer.compact(self.conversation.id)  # once a turn: the next open reads one file
        note = stats_line(
            result.generated_tokens, result.tokens_per_s, result.time_to_first_token_s
        )
        self.chat.finish_reply(note, status_line(result, self.chat.n_ctx))
        show_versions(self.chat, self.conversation)

    def reply_failed(self, message: str = "") -> None:
        """The engine failed mid-reply (a machine lost, any engine error). Text that came is
        kept, saved and marked as cut with the reason, as a reply cut by quitting is, and
        Continue finishes it; a reply that got nothing is undone as if never asked."""
        if self._detached:
            self._detached -= 1
            return
        if self._streaming is None:
            return
        self._unsaved.flush()
        index, restore = self._streaming, self._restore
        self._streaming, self._restore = None, None
        msgs = self.conversation.messages
        reply = msgs[index]
        if reply.content and (restore is None or reply.content != restore.content):
            reply.complete, reply.cut = False, message or "the engine stopped"
            self.journal.record(self.conversation, op_put(reply))
            redraw(self.chat, self.conversation)
        elif restore is not None:  # a continue or a regenerate: the reply stays as it was
            msgs[index] = restore
            self.journal.record(self.conversation, op_put(restore))
            redraw(self.chat, self.conversation)
        else:  # the turn is undone; its text goes back into the input box
            user = msgs[index - 1].content
            dropped = [m.id for m in msgs[index - 1 :]]
            del msgs[index - 1 :]
            self.journal.record(self.conversation, op_drop(dropped))
            redraw(self.chat, self.conversation)
            self.chat.put_back(user)
        self.chat.fail_reply(message)

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
        msgs[-1] = StoredMessage("assistant", "", complete=False, alternatives=versions, id=old.id)
        self.journal.record(self.conversation, op_put(msgs[-1]))
        redraw_without_last(self.chat, self.conversation)
        self._start_reply(len(msgs) - 1, old, self.chat.conversation()[:-1])

    def continue_reply(self) -> None:
        """Continue the last reply (a cut one included): new text is added to it."""
        reply = self._last_reply()
        if reply is None:
            return
        restore = copy.deepcopy(reply)
        reply.complete, reply.stats, reply.cut = False, None, ""
        index = len(self.conversation.messages) - 1
        self.journal.record(self.conversation, op_put(reply))
        redraw_without_last(self.chat, self.conversation)
        self._start_reply(index, restore, self.chat.conversation())

    def edit_last(self) -> None:
        """Take the last user message (and what followed) back into the input box; the undo
        bar can put them back."""
        self.edit_undo.edit_last()

    def delete_last_exchange(self) -> None:
        self.edit_undo.edit_last()
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
        self.journal.record(self.conversation, op_put(reply))
        redraw(self.chat, self.conversation)

    # -- sampling ------------------------------------------------------------------------
    def set_sampling(self, params: SamplingParams) -> None:
        self.sampling = params
        self.conversation.sampling = asdict(params)
        if self.journal.saved:
            self.journal.record(self.conversation)

    def model_chosen(self, info: GGUFInfo) -> None:
        """Reset goes to the model's recommended sampling; a new chat starts from it."""
        defaults = params_from_dict(info.sampling_defaults)
        self.sampling_panel.set_defaults(defaults)
        if not self.conversation.messages and info.sampling_defaults:
            self.sampling_panel.set_params(defaults)
            self.set_sampling(defaults)

    # -- export and import (the library's) ----------------------------------------------------
    def write_export(self, path: Path, name_filter: str | None = None) -> Path:
        return self.library.write_export(path, name_filter)

    def read_import(self, path: Path) -> None:
        self.library.read_import(path)
