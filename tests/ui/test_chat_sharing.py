"""The chats in the window when another process writes the same chat, when the data
folder cannot be written, and when the disk is full for a moment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.paths import data_dir
from kobold_gui.ui.chat.controller import ConversationController
from kobold_gui.ui.window.main_window import MainWindow
from tests.conftest import HANG_GUARD_MS
from tests.core.disks import fill, read_only_folder, small_disk
from tests.ui.chat_parts import chat_parts, finished

OTHER_WINDOW = """
import sys
from pathlib import Path
from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.chats.types import StoredMessage, op_meta, op_put
store = ChatStore(Path(sys.argv[1]))
conv = store.load(sys.argv[2])
turn = [StoredMessage("user", "Asked in the other window"),
        StoredMessage("assistant", "Answered there")]
conv.messages += turn
store.append(conv.id, [op_put(m) for m in turn] + [op_meta(conv)])
"""


def one_turn(controller: ConversationController, question: str, answer: str) -> None:
    controller.chat.input.setPlainText(question)
    controller.chat.send()
    controller.reply_text(answer)
    controller.reply_finished(finished(answer))


def test_a_turn_from_another_process_shows_and_nothing_is_overwritten(
    qtbot: QtBot, tmp_path: Path
) -> None:
    """Another process (a second app) adds a turn to the open chat: this window shows it
    (it polls PRAGMA data_version), and its own next turn goes after it; the file store
    wrote each window's copy over the other's."""
    controller = chat_parts(qtbot, tmp_path)
    one_turn(controller, "Asked here", "Answered here")
    watcher = controller.library.watcher
    controller.library.open_last()  # lists the chats, then follows others' changes
    qtbot.waitUntil(watcher.timer.isActive, timeout=HANG_GUARD_MS)
    conv_id = controller.conversation.id
    controller.writer.drain()
    with qtbot.waitSignal(watcher.reloaded, timeout=HANG_GUARD_MS):
        subprocess.run(
            [sys.executable, "-c", OTHER_WINDOW, str(tmp_path), conv_id], check=True, timeout=120
        )
    shown = controller.chat.transcript.toPlainText()
    assert shown.index("Answered here") < shown.index("Answered there")
    one_turn(controller, "Asked here again", "Answered again")
    controller.writer.drain()
    on_disk = [m.content for m in ChatStore(tmp_path).load(conv_id).messages]
    assert on_disk == [
        "Asked here",
        "Answered here",
        "Asked in the other window",
        "Answered there",
        "Asked here again",
        "Answered again",
    ]


def test_a_read_only_data_folder_opens_the_window_and_chats_in_memory(
    qtbot: QtBot, tiny_model: Path
) -> None:
    folder = data_dir()
    before = ChatStore()
    before.save(before.load(_saved_chat(before)))
    before.close()
    with read_only_folder(folder) as how:
        if how is None:
            pytest.skip("neither a read-only bind mount nor chattr +i is allowed here")
        window = MainWindow(initial_model=tiny_model)
        qtbot.addWidget(window)
        window.show()
        notice = window.conversations.notice
        qtbot.waitUntil(notice.isVisible, timeout=HANG_GUARD_MS)
        assert notice.label.text().startswith("Chats cannot be saved")
        assert window.chat_list.list.count() == 1  # the saved chat is listed and opened
        assert window.chat.history[0].content == "kept from before"
        controller = window.conversations
        controller.chat.set_model_ready(True)
        controller.chat.new_chat()
        one_turn(controller, "Only in memory", "Yes")
        assert [m.content for m in window.chat.history] == ["Only in memory", "Yes"]
        assert window.chat_list.list.count() == 2
        window.close()


def _saved_chat(store: ChatStore) -> str:
    from kobold_gui.core.chats.types import Conversation, StoredMessage

    conv = Conversation(messages=[StoredMessage("user", "kept from before")])
    store.save(conv)
    return conv.id


def test_a_full_disk_is_said_once_and_the_reply_stays(qtbot: QtBot, tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "8m") as disk:  # room for the log and the file
        if disk is None:
            pytest.skip("no tmpfs can be mounted here (tests/core covers SQLite's own limit)")
        said: list[str] = []
        controller = chat_parts(qtbot, disk / "chats")
        controller.say = said.append
        controller._writeFailed.disconnect()
        controller._writeFailed.connect(said.append)
        one_turn(controller, "Before", "fine")
        controller.writer.drain()
        filler = fill(disk)
        controller.chat.input.setPlainText("While full")
        controller.chat.send()
        for _ in range(20):
            controller.reply_text(" and the sea" * 2000)
        qtbot.waitUntil(lambda: bool(said), timeout=HANG_GUARD_MS)
        controller.reply_finished(finished("..."))
        assert "While full" in controller.chat.transcript.toPlainText()  # stays shown
        filler.unlink()
        writer = controller.writer  # everything asked was handled, and nothing waits
        qtbot.waitUntil(lambda: writer.drain() and writer.unsaved == 0, timeout=HANG_GUARD_MS)
        reply = ChatStore(disk / "chats").load(controller.conversation.id).messages[-1]
        assert reply.content == " and the sea" * 2000 * 20 and reply.complete
        qtbot.waitUntil(lambda: len(said) == 2, timeout=HANG_GUARD_MS)  # a queued signal
        assert [s.split(":")[0] for s in said] == ["Chat not saved", "Chat saved"]
        controller.writer.close()
