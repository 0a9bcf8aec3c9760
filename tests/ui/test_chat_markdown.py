"""Replies render as Markdown while they stream, and what the transcript shows is what is
saved: the same text drawn while it streams and drawn again from the file after reopening,
for any text a model can write. Code blocks get a copy link."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from kobold_gui.core.chats.store import ChatStore
from kobold_gui.ui.chat.controller import ConversationController
from kobold_gui.ui.chat.reply_renderer import PIECE_AT_LINE_AFTER, next_piece_end
from tests.ui.chat_parts import chat_parts, finished

REPLY = (
    "# Title\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('hi')\n```\n"
)

# Text a model can write, with the characters that must be on screen as written.
TRICKY = {
    "angle brackets": (
        "<<A Lighthouse of Hope>>\n\nThe keeper said <hello> & left.",
        ["<<A Lighthouse of Hope>>", "<hello> & left"],
    ),
    "html": (
        '<b>bold?</b> <div class="x">block</div>\n\n<script>alert(1)</script>\n<!-- c -->',
        ["<b>bold?</b>", '<div class="x">', "<script>alert(1)</script>"],
    ),
    "unclosed fence": (
        "Here:\n\n```python\ndef f():\n    return '<x>'\n\nprint(f())\n",
        ["def f():", "return '<x>'", "print(f())"],
    ),
    "right to left": (
        "مرحبا بالعالم\n\nשלום עולם, *hello* עולם\n\n- بند أول\n- בנד שני",
        ["مرحبا بالعالم", "שלום עולם", "בנד שני"],
    ),
    "emoji": (
        "🌊 The sea 🐚\n\n1. 👩‍👩‍👧 family\n2. 🏳️‍🌈 flag\n\n**bold 🎉**",
        ["🌊 The sea 🐚", "👩‍👩‍👧 family", "bold 🎉"],
    ),
    "long list": ("- item with <tag>\n" * 700, ["item with <tag>"]),
}


def stream(
    qtbot: QtBot, controller: ConversationController, text: str, seed: int, renders: bool = True
) -> None:
    """Sends a message and streams text in random chunks, with Markdown renders between."""
    rng = random.Random(seed)
    controller.chat.input.setPlainText("go")
    controller.chat.send()
    pos = 0
    while pos < len(text):
        step = rng.randint(1, 40)
        controller.reply_text(text[pos : pos + step])
        pos += step
        if renders and rng.random() < 0.3:
            controller.chat._render_pieces()  # what the render timer does
    controller.reply_finished(finished(text))


@pytest.mark.parametrize("name", list(TRICKY))
def test_shown_text_is_the_saved_text_while_streaming_and_after_reopening(
    qtbot: QtBot, tmp_path: Path, name: str
) -> None:
    text, visible = TRICKY[name]
    first = chat_parts(qtbot, tmp_path)
    stream(qtbot, first, text, seed=len(name))
    streamed = first.chat.transcript.toPlainText()
    first.writer.close()
    conv_id = first.conversation.id
    assert ChatStore(tmp_path).load(conv_id).messages[-1].content == text

    again = chat_parts(qtbot, tmp_path)
    again.open(conv_id)
    reopened = again.chat.transcript.toPlainText()
    assert streamed == reopened
    for words in visible:
        assert words in reopened, f"{words!r} not shown"

    other_chunks = chat_parts(qtbot, tmp_path / "b")  # another cut of the same text
    stream(qtbot, other_chunks, text, seed=99, renders=False)
    assert other_chunks.chat.transcript.toPlainText() == reopened


def test_streamed_text_shows_at_once_until_it_is_rendered(qtbot: QtBot, tmp_path: Path) -> None:
    controller = chat_parts(qtbot, tmp_path)
    controller.chat.input.setPlainText("story")
    controller.chat.send()
    controller.reply_text("Once upon a time, in the Pacific Ocean.\n\n")
    controller.chat._render_pieces()
    controller.reply_text(" Mr. Edward Blackett")  # arrives after a render
    controller.chat._render_pieces()  # nothing complete to render: the text stays shown
    shown = controller.chat.transcript.toPlainText()
    assert "Once upon a time, in the Pacific Ocean." in shown
    assert shown.endswith(" Mr. Edward Blackett")
    assert controller.chat.status.text() != "Thinking…"  # tokens are streaming


def test_markdown_reply_with_a_code_copy_link(qtbot: QtBot, tmp_path: Path) -> None:
    controller = chat_parts(qtbot, tmp_path)
    stream(qtbot, controller, REPLY, seed=1)
    panel = controller.chat
    html = panel.transcript.toHtml()
    shown = panel.transcript.toPlainText()
    assert "# Title" not in shown and "Title" in shown  # a heading, not the raw syntax
    assert "<table" in html and "print('hi')" in shown
    assert "copy code" in shown and panel.code_blocks == {0: "print('hi')\n"}
    panel._link_clicked(QUrl("copy:0"))
    assert QGuiApplication.clipboard().text() == "print('hi')\n"


def test_long_reply_streams_without_long_stalls(qtbot: QtBot, tmp_path: Path) -> None:
    """10k tokens (about 40 000 characters) of Markdown, in 30-ms-sized chunks: the worst
    single update must stay short (the stall target itself is measured in a benchmark)."""
    controller = chat_parts(qtbot, tmp_path)
    controller.chat.input.setPlainText("long")
    controller.chat.send()
    chunk = "Some *markdown* text with `code` and a [link](https://example.org).\n" * 4
    worst = 0.0
    for i in range(150):
        t = time.perf_counter()
        controller.reply_text(chunk)
        if i % 10 == 0:
            controller.chat._render_pieces()
        worst = max(worst, time.perf_counter() - t)
    controller.reply_finished(finished(chunk * 150))
    assert len(controller.conversation.messages[-1].content) > 40_000
    assert worst < 1.0  # a sanity bound: rendering must not grow without limit


def test_pieces_never_cut_a_code_block_and_do_not_depend_on_arrival() -> None:
    text = "para one\n\n```\ncode\n\nmore code\n"  # the fence is still open
    assert next_piece_end(text, 0) == len("para one\n\n")
    assert next_piece_end(text, len("para one\n\n")) == 0
    closed = text + "```\n\nafter"
    end = next_piece_end(closed, len("para one\n\n"))
    assert closed[:end].endswith("```\n\n")
    long_list = "- item\n" * 1000  # no blank line: cut at a line end once long
    assert 0 < next_piece_end(long_list, 0) <= PIECE_AT_LINE_AFTER + 7
    assert next_piece_end("- item\n" * 10, 0) == 0
    # a line end followed by another is a blank line, not a long-piece cut
    assert next_piece_end("x" * PIECE_AT_LINE_AFTER + "\n", 0) == 0


def _list_blocks(controller: ConversationController) -> list[str]:
    """The transcript's blocks that are items of a list, by their text."""
    doc = controller.chat.transcript.document()
    block, items = doc.begin(), []
    while block.isValid():
        if block.textList() is not None:
            items.append(block.text())
        block = block.next()
    return items


@pytest.mark.parametrize("reopen", [False, True])
def test_a_reply_ending_in_a_list_does_not_swallow_later_turns(
    qtbot: QtBot, tmp_path: Path, reopen: bool
) -> None:
    """The stats line and every later turn stay outside the list a reply ended with."""
    controller = chat_parts(qtbot, tmp_path)
    replies = ["Steps:\n\n1. one\n2. two\n3. three", "- a\n- b", "Plain last words."]
    for seed, text in enumerate(replies):
        stream(qtbot, controller, text, seed=seed)
    if reopen:
        conv_id = controller.conversation.id
        controller.writer.close()
        controller = chat_parts(qtbot, tmp_path)
        controller.open(conv_id)
    assert _list_blocks(controller) == ["one", "two", "three", "a", "b"]
    shown = controller.chat.transcript.toPlainText()
    assert "Plain last words." in shown and shown.count("You") == 3
