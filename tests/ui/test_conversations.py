"""Saved conversations in the window: kept across a restart, replies saved with their stats,
delete with undo, search, export/import, keyboard shortcuts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from kobold_gui.core.chat_store import ChatStore
from kobold_gui.core.engine_types import SamplingParams
from kobold_gui.ui.main_window import MainWindow


def ready_window(qtbot: QtBot, model: Path) -> MainWindow:
    window = MainWindow(initial_model=model)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()  # shortcuts act in the active window
    qtbot.waitUntil(lambda: window.load_button.isEnabled(), timeout=10_000)
    with qtbot.waitSignal(window.engine.loaded, timeout=30_000):
        window.load_model()
    window.sampling = SamplingParams(max_tokens=6)
    return window


def say(qtbot: QtBot, window: MainWindow, text: str) -> None:
    with qtbot.waitSignal(window.engine.replyFinished, timeout=20_000):
        window.chat.input.setPlainText(text)
        window.chat.send()


def test_conversation_survives_a_restart_with_stats(qtbot: QtBot, tiny_model: Path) -> None:
    window = ready_window(qtbot, tiny_model)
    say(qtbot, window, "first question")
    say(qtbot, window, "second question")
    conv_id = window.conversations.conversation.id
    window.close()

    saved = ChatStore().load(conv_id)
    assert [m.role for m in saved.messages] == ["user", "assistant"] * 2
    assert all(m.complete for m in saved.messages)
    assert saved.messages[1].stats and saved.messages[1].stats["generated_tokens"] > 0
    assert saved.display_title() == "first question"

    again = MainWindow(initial_model=tiny_model)  # reopens the last conversation
    qtbot.addWidget(again)
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
    chats.search.setText("owls")
    assert chats.list.count() == 1
    chats.search.setText("")
    assert chats.list.count() == 2
    window.conversations.open(owls)
    chats.delete()
    assert chats.list.count() == 1 and chats.undo_button.isVisibleTo(chats)
    assert window.conversations.conversation.id != owls  # the open chat was the deleted one
    chats.undo()
    assert chats.list.count() == 2 and window.conversations.conversation.id == owls
    chats.rename("Owl facts")
    assert "Owl facts" in chats.list.item(0).text() + chats.list.item(1).text()
    window.close()


def test_export_then_import_round_trips(qtbot: QtBot, tiny_model: Path, tmp_path: Path) -> None:
    window = ready_window(qtbot, tiny_model)
    window.chat.system_prompt.setText("Be kind.")
    say(qtbot, window, "hello there")
    window.conversations.write_export(tmp_path / "chat.json")
    window.conversations.write_export(tmp_path / "chat.md")
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
    with qtbot.waitSignal(window.engine.text, timeout=10_000):
        window.chat.input.setPlainText("go on")
        window.chat.send()
    with qtbot.waitSignal(window.engine.replyFinished, timeout=10_000) as done:
        qtbot.keyClick(window.chat.input, Qt.Key.Key_Escape)
    assert done.args[0].stop_reason == "stopped"
    saved = ChatStore().load(window.conversations.conversation.id)
    assert saved.messages[-1].complete and saved.messages[-1].content == done.args[0].text
    window.close()


def test_sampling_settings_are_kept_per_conversation(qtbot: QtBot, tiny_model: Path) -> None:
    from kobold_gui.ui.sampling_panel import PRESETS

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
    with qtbot.waitSignal(window.engine.replyFinished, timeout=20_000):
        qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)  # Ctrl+R
    second = window.chat.history[-1].content
    msgs = window.conversations.conversation.messages
    assert [m.role for m in msgs] == ["user", "assistant"] and msgs[-1].alternatives == [first]
    assert second != first and window.chat.version_button.isVisibleTo(window.chat)
    window.conversations.next_version()
    assert window.chat.history[-1].content == first and msgs[-1].alternatives == [second]
    saved = ChatStore().load(window.conversations.conversation.id)
    assert saved.messages[-1].content == first and saved.messages[-1].alternatives == [second]

    window.conversations.edit_last()
    assert window.chat.input.toPlainText() == "name a fruit" and not window.chat.history
    assert window.conversations.conversation.messages == []
    window.chat.input.setPlainText("name a vegetable")
    with qtbot.waitSignal(window.engine.replyFinished, timeout=20_000):
        window.chat.send()
    assert window.conversations.conversation.messages[0].content == "name a vegetable"
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
    with qtbot.waitSignal(window.engine.replyFinished, timeout=20_000):
        window.chat.continue_button.click()
    longer = window.chat.history[-1].content
    assert longer.startswith(first) and len(longer) > len(first)
    saved = ChatStore().load(window.conversations.conversation.id)
    assert [m.role for m in saved.messages] == ["user", "assistant"]
    assert saved.messages[-1].content == longer and saved.messages[-1].complete
    window.close()

    again = MainWindow(initial_model=tiny_model)
    qtbot.addWidget(again)
    assert "tokens/s" in again.chat.transcript.toPlainText()  # stats restored with the chat
    again.conversations.delete_last_exchange()
    assert not again.chat.history and not again.chat.input.toPlainText()
    assert ChatStore().load(again.conversations.conversation.id).messages == []
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
    qtbot.waitUntil(lambda: window.models.info is not None, timeout=10_000)
    assert window.sampling.temperature == pytest.approx(0.3)
    assert window.sampling_panel.top_p.value() == pytest.approx(0.8)
    window.sampling_panel.temperature.setValue(1.5)
    window.sampling_panel.reset.click()  # back to the model's values, not the app's
    assert window.sampling.temperature == pytest.approx(0.3)
    window.close()
