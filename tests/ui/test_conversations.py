"""Saved conversations in the window: kept across a restart, replies saved with their stats,
delete with undo, search, rename, export/import, keyboard shortcuts, versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from pytestqt.qtbot import QtBot

from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.chats.types import Conversation, ReplyVersion
from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.ui.chat.chat_files import JSON_FILTER, MARKDOWN_FILTER
from kobold_gui.ui.window.main_window import MainWindow
from tests.conftest import HANG_GUARD_MS
from tests.rpc_servers import rpc_servers
from tests.ui.chat_parts import chat_parts, finished


def ready_window(qtbot: QtBot, model: Path) -> MainWindow:
    window = MainWindow(initial_model=model)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()  # shortcuts act in the active window
    qtbot.waitUntil(lambda: window.load_button.isEnabled(), timeout=HANG_GUARD_MS)
    with qtbot.waitSignal(window.engine_controller.loaded, timeout=HANG_GUARD_MS):
        window.load_model()
    window.sampling = SamplingParams(max_tokens=6)
    return window


def loaded_on_a_machine(qtbot: QtBot, model: Path, endpoint: str) -> MainWindow:
    """A window whose model (the tiny one: two layers) is loaded all on the machine at
    `endpoint`, added and checked through the Machines tab as a user does."""
    window = MainWindow(initial_model=model)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.load_button.isEnabled(), timeout=HANG_GUARD_MS)
    window.machines.address.setText(endpoint)
    qtbot.keyClick(window.machines.address, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(window.launch_state.config.rpc), timeout=HANG_GUARD_MS)
    card = window.machines.cards[endpoint]
    qtbot.waitUntil(lambda: "✓ reachable" in card.state.text(), timeout=HANG_GUARD_MS)
    window.launch.gpu_layers.setValue(2)  # both layers on the machine
    with qtbot.waitSignal(window.engine_controller.loaded, timeout=HANG_GUARD_MS):
        window.load_model()
    return window


def reopened(qtbot: QtBot, model: Path) -> MainWindow:
    """A new window; it lists the chats on a worker thread, then opens the latest."""
    window = MainWindow(initial_model=model)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: bool(window.chat.history), timeout=HANG_GUARD_MS)
    return window


def saved(window: MainWindow) -> Conversation:
    """The open conversation as it is on disk now (after the writer thread caught up)."""
    window.conversations.writer.drain()
    return ChatStore().load(window.conversations.conversation.id)


def say(qtbot: QtBot, window: MainWindow, text: str) -> None:
    with qtbot.waitSignal(window.engine_controller.replyFinished, timeout=HANG_GUARD_MS):
        window.chat.input.setPlainText(text)
        window.chat.send()


def test_conversation_survives_a_restart_with_stats(qtbot: QtBot, tiny_model: Path) -> None:
    window = ready_window(qtbot, tiny_model)
    say(qtbot, window, "first question")
    say(qtbot, window, "second question")
    conv_id = window.conversations.conversation.id
    window.close()

    on_disk = ChatStore().load(conv_id)
    assert [m.role for m in on_disk.messages] == ["user", "assistant"] * 2
    assert all(m.complete for m in on_disk.messages)
    assert on_disk.messages[1].stats and on_disk.messages[1].stats["generated_tokens"] > 0
    assert on_disk.display_title() == "first question"

    again = reopened(qtbot, tiny_model)  # reopens the last conversation
    assert again.conversations.conversation.id == conv_id
    assert again.chat.history[0].content == "first question"
    assert "second question" in again.chat.transcript.toPlainText()
    again.close()


def test_delete_undo_search_and_new_chat(qtbot: QtBot, tiny_model: Path) -> None:
    window = ready_window(qtbot, tiny_model)
    say(qtbot, window, "about owls")
    owls = window.conversations.conversation.id
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)  # Ctrl+N
    assert window.conversations.conversation.id != owls and not window.chat.history
    say(qtbot, window, "about cats")
    chats = window.chat_list
    chats.search.setText("owls")  # searched on a worker thread
    qtbot.waitUntil(lambda: chats.visible_count() == 1, timeout=HANG_GUARD_MS)
    chats.search.setText("")
    assert chats.visible_count() == 2
    window.conversations.open(owls)
    chats.delete()
    assert chats.list.count() == 1 and chats.undo_button.isVisibleTo(chats)
    assert window.conversations.conversation.id != owls  # the open chat was the deleted one
    chats.undo()
    assert chats.list.count() == 2 and window.conversations.conversation.id == owls
    chats.rename("Owl facts")
    assert "Owl facts" in chats.list.item(0).text() + chats.list.item(1).text()
    assert saved(window).title == "Owl facts"
    window.close()


def test_rename_by_button_f2_and_double_click(qtbot: QtBot, tiny_model: Path) -> None:
    window = ready_window(qtbot, tiny_model)
    say(qtbot, window, "about owls")
    owls = window.conversations.conversation.id
    window.chat.new_chat()
    say(qtbot, window, "about cats")
    cats = window.conversations.conversation.id
    chats = window.chat_list
    window.tabs.setCurrentWidget(window.chats_tab)

    def rename_with(trigger: object, title: str) -> None:
        chats.rename_dialog = None
        trigger()  # type: ignore[operator]
        qtbot.waitUntil(lambda: chats.rename_dialog is not None, timeout=HANG_GUARD_MS)
        dialog = chats.rename_dialog
        assert dialog is not None and dialog.isVisible()
        dialog.setTextValue(f"  {title} ")
        dialog.accept()

    rename_with(chats.rename_button.click, "Cat chat")  # the open chat
    assert saved(window).title == "Cat chat" and "Cat chat" in chats.list.item(0).text()
    owl_item = chats._items[owls]
    chats.list.setCurrentItem(owl_item)
    chats.list.setFocus()
    rename_with(lambda: qtbot.keyClick(chats.list, Qt.Key.Key_F2), "Owl chat")  # another chat
    qtbot.waitUntil(lambda: owl_item.text().startswith("Owl chat"), timeout=HANG_GUARD_MS)
    center = chats.list.visualItemRect(owl_item).center()

    def double_click() -> None:  # an item view wants the press before the double-click
        qtbot.mouseClick(chats.list.viewport(), Qt.MouseButton.LeftButton, pos=center)
        qtbot.mouseDClick(chats.list.viewport(), Qt.MouseButton.LeftButton, pos=center)

    rename_with(double_click, "Owls, again")
    qtbot.waitUntil(lambda: owl_item.text().startswith("Owls, again"), timeout=HANG_GUARD_MS)
    window.conversations.writer.drain()
    assert ChatStore().load(owls).title == "Owls, again"
    assert ChatStore().load(cats).title == "Cat chat"  # each chat kept its own title
    window.close()


def test_export_then_import_round_trips(qtbot: QtBot, tiny_model: Path, tmp_path: Path) -> None:
    window = ready_window(qtbot, tiny_model)
    window.chat.system_prompt.setText("Be kind.")
    say(qtbot, window, "hello there")
    window.conversations.write_export(tmp_path / "chat.json")
    window.conversations.write_export(tmp_path / "chat.md")
    written = window.conversations.write_export(tmp_path / "no-extension", JSON_FILTER)
    assert written == tmp_path / "no-extension.json"
    assert json.loads(written.read_text())["messages"][1]["content"] == "hello there"
    as_md = window.conversations.write_export(tmp_path / "notes", MARKDOWN_FILTER)
    assert as_md.name == "notes.md" and "## User" in as_md.read_text()
    data = json.loads((tmp_path / "chat.json").read_text())
    assert data["messages"][0] == {"role": "system", "content": "Be kind."}
    assert "## User" in (tmp_path / "chat.md").read_text()
    original = window.conversations.conversation.id
    window.conversations.read_import(tmp_path / "chat.json")
    assert window.conversations.conversation.id != original
    assert window.chat.history[0].content == "hello there"
    assert window.chat.system_prompt.text() == "Be kind."
    (tmp_path / "bad.json").write_text('[{"role": "wizard"}]')
    window.conversations.read_import(tmp_path / "bad.json")
    assert "Cannot import bad.json" in window.statusBar().currentMessage()
    window.close()


def test_escape_stops_a_reply(qtbot: QtBot, tiny_model: Path) -> None:
    window = ready_window(qtbot, tiny_model)
    window.sampling = SamplingParams(max_tokens=100_000)
    with qtbot.waitSignal(window.engine_controller.text, timeout=HANG_GUARD_MS):
        window.chat.input.setPlainText("go on")
        window.chat.send()
    with qtbot.waitSignal(window.engine_controller.replyFinished, timeout=HANG_GUARD_MS) as done:
        qtbot.keyClick(window.chat.input, Qt.Key.Key_Escape)
    assert done.args[0].stop_reason == "stopped"
    on_disk = saved(window)
    assert on_disk.messages[-1].complete and on_disk.messages[-1].content == done.args[0].text
    window.close()


def test_sampling_settings_are_kept_per_conversation(qtbot: QtBot, tiny_model: Path) -> None:
    from kobold_gui.ui.chat.sampling_panel import PRESETS

    window = ready_window(qtbot, tiny_model)
    panel = window.sampling_panel
    panel.preset.setCurrentIndex(panel.preset.findData("precise"))
    panel._preset_chosen(panel.preset.currentIndex())
    assert window.sampling.temperature == PRESETS["precise"].temperature
    panel.max_tokens.setValue(5)
    say(qtbot, window, "precise chat")
    precise = window.conversations.conversation.id
    assert window.chat.history[-1].role == "assistant"
    window.chat.new_chat()
    panel.temperature.setValue(1.3)
    assert panel.preset.currentData() == ""  # no preset matches: "custom"
    say(qtbot, window, "hot chat")
    window.conversations.open(precise)
    assert window.sampling.temperature == PRESETS["precise"].temperature
    assert window.sampling.max_tokens == 5 and panel.temperature.value() == 0.2
    panel.reset.click()
    assert window.sampling.temperature == 0.7 and panel.preset.currentData() == "balanced"
    window.close()


def test_regenerate_keeps_versions_and_edit_resends(qtbot: QtBot, tiny_model: Path) -> None:
    window = ready_window(qtbot, tiny_model)
    window.sampling = SamplingParams(max_tokens=6, seed=1)
    say(qtbot, window, "name a fruit")
    first = window.chat.history[-1].content
    window.sampling = SamplingParams(max_tokens=6, seed=2)
    with qtbot.waitSignal(window.engine_controller.replyFinished, timeout=HANG_GUARD_MS):
        qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)  # Ctrl+R
    second = window.chat.history[-1].content
    msgs = window.conversations.conversation.messages
    first_stats, second_stats = msgs[-1].alternatives[0].stats, msgs[-1].stats
    assert first_stats is not None and second_stats is not None and first_stats != second_stats
    assert [m.role for m in msgs] == ["user", "assistant"]
    assert [v.content for v in msgs[-1].alternatives] == [first]
    assert second != first and window.chat.version_button.isVisibleTo(window.chat)
    window.conversations.next_version()
    # Each version shows with its own stats (not version 1's text with version 2's stats).
    assert window.chat.history[-1].content == first and msgs[-1].stats == first_stats
    assert msgs[-1].alternatives == [ReplyVersion(second, second_stats)]
    on_disk = saved(window)
    assert on_disk.messages[-1].content == first and on_disk.messages[-1].stats == first_stats
    assert on_disk.messages[-1].alternatives == [ReplyVersion(second, second_stats)]

    # Edit last removes the reply and its versions: the bar offers Undo, which puts back
    # all of it (on disk too) and the input box as it was.
    before = list(window.conversations.conversation.messages)
    window.chat.input.setPlainText("half-typed")
    qtbot.mouseClick(window.chat.edit_button, Qt.MouseButton.LeftButton)
    bar = window.conversations.edit_undo
    assert window.chat.input.toPlainText() == "name a fruit" and not window.chat.history
    assert bar.isVisible() and "1 other version" in bar.label.text()
    assert saved(window).messages == []
    qtbot.mouseClick(bar.undo_button, Qt.MouseButton.LeftButton)
    assert not bar.isVisible() and window.chat.input.toPlainText() == "half-typed"
    assert window.conversations.conversation.messages == before
    assert saved(window).messages == before
    assert window.chat.history[-1].content == first  # shown again
    bar.undo()  # twice: nothing more to put back, and it says so
    assert window.conversations.conversation.messages == before

    window.conversations.edit_last()
    assert window.chat.input.toPlainText() == "name a fruit" and not window.chat.history
    assert window.conversations.conversation.messages == []
    window.chat.input.setPlainText("name a vegetable")
    with qtbot.waitSignal(window.engine_controller.replyFinished, timeout=HANG_GUARD_MS):
        window.chat.send()
    assert window.conversations.conversation.messages[0].content == "name a vegetable"
    assert not bar.isVisible() and not bar.can_undo()  # the chat moved on
    window.close()


def test_continue_stats_context_meter_and_delete(qtbot: QtBot, tiny_model: Path) -> None:
    window = ready_window(qtbot, tiny_model)
    window.sampling = SamplingParams(max_tokens=5, temperature=0)
    say(qtbot, window, "start a story")
    first = window.chat.history[-1].content
    assert "length" not in window.chat.status.text()
    assert "stopped at max tokens" in window.chat.status.text()
    assert f"/ {window.loaded.n_ctx} tokens" in window.chat.status.text()
    assert "5 tokens · " in window.chat.transcript.toPlainText()  # stats under the reply
    with qtbot.waitSignal(window.engine_controller.replyFinished, timeout=HANG_GUARD_MS):
        window.chat.continue_button.click()
    longer = window.chat.history[-1].content
    assert longer.startswith(first) and len(longer) > len(first)
    on_disk = saved(window)
    assert [m.role for m in on_disk.messages] == ["user", "assistant"]
    assert on_disk.messages[-1].content == longer and on_disk.messages[-1].complete
    window.close()

    again = reopened(qtbot, tiny_model)
    assert "tokens/s" in again.chat.transcript.toPlainText()  # stats restored with the chat
    again.conversations.delete_last_exchange()
    assert not again.chat.history and not again.chat.input.toPlainText()
    assert saved(again).messages == []
    again.close()


def test_new_chats_start_from_the_models_recommended_sampling(
    qtbot: QtBot, tmp_path: Path, default_model: Path
) -> None:
    from kobold_gui.dev.synthetic_gguf import Shape, write_model

    model = write_model(
        tmp_path / "tuned.gguf",
        Shape(),
        "Q8_0",
        default_model,
        extra_floats={"general.sampling.temp": 0.3, "general.sampling.top_p": 0.8},
    )
    window = MainWindow(initial_model=model)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.models.info is not None, timeout=HANG_GUARD_MS)
    assert window.sampling.temperature == pytest.approx(0.3)
    assert window.sampling_panel.top_p.value() == pytest.approx(0.8)
    window.sampling_panel.temperature.setValue(1.5)
    window.sampling_panel.reset.click()  # back to the model's values, not the app's
    assert window.sampling.temperature == pytest.approx(0.3)
    window.close()


def test_export_dialog_names_formats_and_remembers_the_folder(
    qtbot: QtBot, tiny_model: Path, tmp_path: Path
) -> None:
    window = ready_window(qtbot, tiny_model)
    say(qtbot, window, "Why is the sky blue? Tell me… briefly / simply")
    files = window.conversations.files
    window.chat_list.export_button.click()
    dialog = files.dialog
    assert dialog is not None and dialog.isVisible()
    name = Path(dialog.selectedFiles()[0]).name
    assert "?" not in name and "…" not in name and "/" not in name and name.startswith("Why")
    assert Path(dialog.directory().absolutePath()) != Path.cwd()  # documents or home
    target = tmp_path / "exports"
    target.mkdir()
    dialog.setDirectory(str(target))
    dialog.selectNameFilter(JSON_FILTER)
    dialog.selectFile("sky")  # no extension typed
    dialog.accept()
    written = target / "sky.json"
    assert json.loads(written.read_text())["messages"][0]["role"] in ("system", "user")
    window.chat_list.export_button.click()  # the next dialog opens where the last one wrote
    assert files.dialog is not None
    assert Path(files.dialog.directory().absolutePath()) == target
    files.dialog.reject()
    window.close()


def test_a_chat_cut_by_a_kill_continues_whole(qtbot: QtBot, tiny_model: Path) -> None:
    """What a kill mid-reply leaves (the reply saved unfinished), reopened: the cut reply is
    shown as cut, and a new message is a new turn that never overwrites it."""
    store = ChatStore()
    cut = Conversation(title="story")
    from kobold_gui.core.chats.types import StoredMessage

    cut.messages = [
        StoredMessage("user", "Tell me a story"),
        StoredMessage("assistant", "Once upon a time, in the Pacific", complete=False),
    ]
    store.save(cut)
    window = reopened(qtbot, tiny_model)
    assert window.conversations.conversation.id == cut.id
    assert "Reply cut off" in window.chat.transcript.toPlainText()
    qtbot.waitUntil(window.load_button.isEnabled, timeout=HANG_GUARD_MS)
    with qtbot.waitSignal(window.engine_controller.loaded, timeout=HANG_GUARD_MS):
        window.load_model()
    window.sampling = SamplingParams(max_tokens=6)
    say(qtbot, window, "Now a short poem about the sea, please.")
    on_disk = saved(window)
    assert [m.role for m in on_disk.messages] == ["user", "assistant"] * 2
    assert on_disk.messages[1].content == "Once upon a time, in the Pacific"
    assert not on_disk.messages[1].complete  # still marked as cut
    assert on_disk.messages[2].content == "Now a short poem about the sea, please."
    assert on_disk.messages[3].complete and on_disk.messages[3].content
    shown = window.chat.transcript.toPlainText()
    assert shown.index("Pacific") < shown.index("poem about the sea")
    with qtbot.waitSignal(
        window.engine_controller.replyFinished, timeout=HANG_GUARD_MS
    ):  # finish the cut one?
        window.conversations.continue_reply()  # continues the last reply (the poem)
    assert saved(window).messages[1].content == "Once upon a time, in the Pacific"
    window.close()


def test_text_shown_during_a_stall_is_saved(qtbot: QtBot, tmp_path: Path) -> None:
    """Streamed text is saved on a timer, not only when more text comes."""
    controller = chat_parts(qtbot, tmp_path)
    controller.chat.input.setPlainText("hello")
    controller.chat.send()
    controller.reply_text("Once upon a time")  # then the model stalls: no more text
    conv_id = controller.conversation.id

    def on_disk() -> str:
        try:
            return ChatStore(tmp_path).load(conv_id).messages[1].content
        except (OSError, ValueError, IndexError):
            return ""

    qtbot.waitUntil(lambda: on_disk() == "Once upon a time", timeout=HANG_GUARD_MS)
    assert controller.streaming  # saved while the reply still streams
    controller.reply_finished(finished("Once upon a time"))
    controller.writer.drain()
    assert ChatStore(tmp_path).load(conv_id).messages[1].complete


class UrlCatcher(QObject):
    def __init__(self, into: list[QUrl]) -> None:
        super().__init__()
        self.into = into

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.into.append(url)


def test_set_aside_files_are_reported_in_the_status_bar(qtbot: QtBot, tiny_model: Path) -> None:
    store = ChatStore()
    (store.folder / f"{'0' * 32}.json").write_text("{broken")  # old chat files, imported
    (store.folder / f"{'1' * 32}.json").write_text('{"version": 99, "messages": []}')
    window = MainWindow(initial_model=tiny_model)
    qtbot.addWidget(window)
    window.resize(1366, 768)
    window.show()
    notice = window.conversations.notice
    qtbot.waitUntil(notice.isVisible, timeout=HANG_GUARD_MS)
    assert "2 chats could not be read in full" in notice.label.text()
    assert "newer kobold-gui" in notice.toolTip() and "could not be read" in notice.toolTip()
    assert notice.open_button.isVisible()
    assert window.statusBar().isAncestorOf(notice)
    opened: list[QUrl] = []
    catcher = UrlCatcher(opened)  # Qt's own hook for "open this URL" (no file manager here)
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        notice.open_button.click()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert [u.toLocalFile() for u in opened] == [str(store.folder)]
    window.tabs.setCurrentWidget(window.chats_tab)
    problems = window.chat_list.problems
    assert problems.isVisible() and problems.wordWrap()
    assert problems.width() <= window.chat_list.width()  # wraps inside the panel
    assert problems.height() < window.chat_list.list.height()  # the list keeps its room
    assert "0" * 32 not in problems.text()  # long file names only in the tooltip
    window.close()


VERSION_1_FILE = {
    "version": 1,
    "id": "c" * 32,
    "title": "",
    "created": 1700000000.0,
    "updated": 1700000100.0,
    "model": "/models/x.gguf",
    "system_prompt": "Be brief.",
    "messages": [
        {
            "role": "user",
            "content": "Name a fruit",
            "created": 1700000000.0,
            "stats": None,
            "complete": True,
            "alternatives": [],
        },
        {
            "role": "assistant",
            "content": "Apple",
            "created": 1700000001.0,
            "stats": {"generated_tokens": 2, "tokens_per_s": 10.0, "time_to_first_token_s": 0.1},
            "complete": True,
            "alternatives": ["Pear"],
        },
    ],
    "sampling": {"temperature": 0.5},
}


def test_chats_saved_by_version_1_open_and_are_imported(qtbot: QtBot, tiny_model: Path) -> None:
    folder = ChatStore().folder
    path = folder / f"{'c' * 32}.json"
    path.write_text(json.dumps(VERSION_1_FILE))
    window = reopened(qtbot, tiny_model)
    assert window.conversations.conversation.id == "c" * 32
    assert [m.content for m in window.chat.history] == ["Name a fruit", "Apple"]
    assert window.chat.version_button.isVisibleTo(window.chat)
    assert window.sampling.temperature == 0.5
    assert not path.exists()  # imported, verified, then kept in imported/
    assert json.loads((folder / "imported" / path.name).read_text()) == VERSION_1_FILE
    imported = ChatStore().load("c" * 32)
    assert imported.messages[1].alternatives == [ReplyVersion("Pear")]
    window.close()


def test_a_reply_cut_by_a_lost_machine_is_kept_marked_and_continued(
    qtbot: QtBot, tiny_model: Path, tmp_path: Path
) -> None:
    """The model's layers are on another machine, which dies mid-reply (a real llama.cpp RPC
    server, killed): what came of the reply stays in the chat, saved and marked with the
    reason, also after reopening; Continue finishes it once a model is loaded again."""
    with rpc_servers(tmp_path, 1) as (server,):
        window = loaded_on_a_machine(qtbot, tiny_model, server.endpoint)
        assert window.loaded is not None and window.loaded.launch.rpc_servers == (server.endpoint,)
        window.sampling = SamplingParams(max_tokens=5000, temperature=1.0, seed=3, ban_eos=True)
        window.engine_controller.text.connect(lambda _t: server.kill())
        with qtbot.waitSignal(window.engine_controller.replyFailed, timeout=HANG_GUARD_MS) as lost:
            window.chat.input.setPlainText("Tell me a long story.")
            window.chat.send()
    reason = lost.args[0]
    assert server.endpoint in reason
    partial = window.chat.history[-1]
    assert partial.role == "assistant" and partial.content  # kept, not thrown away
    assert window.chat.input.toPlainText() == ""  # the question was answered, in part
    note = f"Reply cut off: {reason} · Continue finishes it"
    assert window.chat.transcript.toPlainText().endswith(note)
    on_disk = saved(window).messages
    assert [m.role for m in on_disk] == ["user", "assistant"]
    assert on_disk[-1].content == partial.content
    assert not on_disk[-1].complete and on_disk[-1].cut == reason
    window.close()

    again = reopened(qtbot, tiny_model)  # from disk
    assert again.chat.history[-1].content == partial.content
    assert again.chat.transcript.toPlainText().endswith(note)
    qtbot.waitUntil(lambda: not again.launch_state.config.rpc, timeout=HANG_GUARD_MS)  # gone
    qtbot.waitUntil(again.load_button.isEnabled, timeout=HANG_GUARD_MS)
    with qtbot.waitSignal(again.engine_controller.loaded, timeout=HANG_GUARD_MS):
        again.load_model()
    again.sampling = SamplingParams(max_tokens=6)
    with qtbot.waitSignal(again.engine_controller.replyFinished, timeout=HANG_GUARD_MS):
        again.chat.continue_button.click()
    finished_reply = saved(again).messages[-1]
    assert finished_reply.content.startswith(partial.content)
    assert len(finished_reply.content) > len(partial.content)
    assert finished_reply.complete and not finished_reply.cut
    assert "Reply cut off" not in again.chat.transcript.toPlainText()
    again.close()
