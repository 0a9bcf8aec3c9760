"""Saved conversations in SQLite: saved, listed, searched (FTS5), deleted and undone; changes
as small transactions naming their messages, so two stores (two windows, two processes) on
one chat never overwrite each other; odd rows set aside alone; a kill mid-stream."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kobold_gui.core.chats.db import has_fts5
from kobold_gui.core.chats.store import (
    DB_NAME,
    ChatStore,
    Conversation,
    ReplyVersion,
    StoredMessage,
    import_openai,
)
from kobold_gui.core.chats.types import op_drop, op_meta, op_put, op_text
from kobold_gui.core.chats.writer import ChatWriter
from kobold_gui.core.engine.prompt_template import Message


def owls_and_paris() -> tuple[Conversation, Conversation]:
    a = Conversation(
        system_prompt="Be brief.",
        messages=[
            StoredMessage("user", "Tell me about owls"),
            StoredMessage("assistant", "Owls hoot.", stats={"generated_tokens": 3}),
        ],
    )
    b = Conversation(messages=[StoredMessage("user", "Paris?")], updated=a.updated + 1)
    return a, b


def test_save_list_search_delete_and_undo(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    a, b = owls_and_paris()
    a.messages[1].alternatives = [ReplyVersion("Owls sleep.", {"generated_tokens": 2})]
    store.save(a)
    store.save(b)
    assert [s.id for s in store.scan()] == [b.id, a.id]  # most recent first
    assert store.load(a.id) == a
    assert store.search("hoot") == {a.id}
    assert store.search("PARIS") == {b.id}
    assert store.search("about owl") == {a.id}  # every word, as a word's start
    assert a.display_title() == "Tell me about owls"
    store.delete(a.id)
    assert [s.id for s in ChatStore(tmp_path).scan()] == [b.id]
    assert store.search("hoot") == set()
    store.undelete(a.id)
    assert {s.id for s in ChatStore(tmp_path).scan()} == {a.id, b.id}


def test_operations_change_only_the_messages_they_name(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    conv, _ = owls_and_paris()
    store.save(conv)
    reply = StoredMessage("assistant", "", complete=False)
    conv.messages += [StoredMessage("user", "And bats?"), reply]
    conv.title = "Night animals"
    store.append(conv.id, [op_put(conv.messages[2]), op_put(reply)])
    store.append(conv.id, [op_text(reply.id, "Bats "), op_text(reply.id, "fly."), op_meta(conv)])
    reply.content = "Bats fly."
    assert ChatStore(tmp_path).load(conv.id) == conv
    assert ChatStore(tmp_path).scan()[0].title == "Night animals"
    store.append(conv.id, [op_drop([m.id for m in conv.messages[2:]])])
    assert [m.content for m in ChatStore(tmp_path).load(conv.id).messages] == [
        "Tell me about owls",
        "Owls hoot.",
    ]


def test_two_stores_on_one_chat_keep_both_turns(tmp_path: Path) -> None:
    """Two windows with the same chat open, each sending a turn: both turns stay (the file
    store wrote each window's whole copy over the other's)."""
    first = ChatStore(tmp_path)
    conv, _ = owls_and_paris()
    first.save(conv)
    second = ChatStore(tmp_path)
    mine, theirs = first.load(conv.id), second.load(conv.id)
    rev, _ = first.changes_since(0)
    for store, copy, text in ((first, mine, "From one"), (second, theirs, "From two")):
        turn = [StoredMessage("user", text), StoredMessage("assistant", f"{text}: ok")]
        copy.messages += turn
        store.append(copy.id, [op_put(m) for m in turn] + [op_meta(copy)])
    shown = [m.content for m in ChatStore(tmp_path).load(conv.id).messages]
    assert shown[2:] == ["From one", "From one: ok", "From two", "From two: ok"]
    _, changed = first.changes_since(rev)  # what the first window learns: the other's turn
    assert [conv_id for conv_id, _summary in changed] == [conv.id]
    assert second.changes_since(rev)[1] == []  # ... not its own


def test_data_version_moves_on_another_connections_commit(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    before = store.data_version()
    store.save(owls_and_paris()[0])
    assert store.data_version() == before  # its own write (same thread's connection)
    ChatStore(tmp_path).save(owls_and_paris()[1])
    assert store.data_version() != before


def test_search_finds_a_word_of_an_old_turn_through_the_index(tmp_path: Path) -> None:
    """A word of the first turn of a long chat, and two words far apart in one message, are
    found; the search reads the FTS5 index, not the chats (the file store matched the typed
    text as one piece, so "owls nest" found nothing)."""
    store = ChatStore(tmp_path)
    assert has_fts5(sqlite3.connect(":memory:")) and store.fts
    target = Conversation(messages=[StoredMessage("user", "Where do owls build a nest?")])
    target.messages += [StoredMessage("assistant", f"turn {i} about the sea") for i in range(60)]
    store.save(target)
    for i in range(30):
        store.save(Conversation(messages=[StoredMessage("user", f"chat {i} about owls")]))
    assert store.search("owls nest") == {target.id}
    assert store.search("NEST") == {target.id}
    assert len(store.search("owls")) == 31
    plan = store._db.get().execute(
        "EXPLAIN QUERY PLAN SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'nest'"
    )
    assert any("VIRTUAL TABLE" in str(row) for row in plan)


def test_an_odd_value_among_fifty_chats_is_set_aside_alone(tmp_path: Path) -> None:
    """A date that is not a number, a model that is not text, broken JSON in a message:
    each one row is set aside (chats_aside) or left out with a note; the list keeps the
    others (the file store listed nothing: "'<' not supported between 'str' and 'float'")."""
    store = ChatStore(tmp_path)
    chats = [
        Conversation(title=f"chat {i}", updated=1e9 + i, messages=[StoredMessage("user", "q")])
        for i in range(50)
    ]
    for conv in chats:
        conv.messages.append(StoredMessage("assistant", f"a{conv.title}"))
        store.save(conv)
    db = sqlite3.connect(tmp_path / DB_NAME)
    with db:
        db.execute("UPDATE chats SET updated = 'yesterday' WHERE id = ?", (chats[10].id,))
        # A TEXT column turns 7 into '7': a blob is what stays odd there.
        db.execute("UPDATE chats SET model = x'07' WHERE id = ?", (chats[20].id,))
        sql = "UPDATE messages SET stats = '{broken' WHERE id = ?"
        db.execute(sql, (chats[30].messages[1].id,))
    fresh = ChatStore(tmp_path)
    listed = fresh.scan()
    assert len(listed) == 48 and listed[0].id == chats[49].id
    assert {chats[10].id, chats[20].id}.isdisjoint(s.id for s in listed)
    aside = dict(db.execute("SELECT id, reason FROM chats_aside").fetchall())
    assert (
        "updated is 'yesterday'" in aside[chats[10].id]
        and "model is b'\\x07'" in aside[chats[20].id]
    )
    assert len(fresh.problems) == 2 and all("set aside" in p for p in fresh.problems)
    assert [m.content for m in fresh.load(chats[30].id).messages] == ["q"]  # the rest shows
    assert "stats is not JSON" in fresh.problems[-1]
    assert len(ChatStore(tmp_path).scan()) == 48  # set aside once, not on every start


def test_the_writer_coalesces_and_reports_a_bug_without_dying(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    errors: list[str] = []
    writer = ChatWriter(store, errors.append)
    reply = StoredMessage("assistant", "", complete=False)
    conv = Conversation(messages=[reply])
    writer.save(conv)
    for i in range(500):
        writer.append(conv.id, [op_text(reply.id, f"w{i} ")])
    writer.append(conv.id, [{"op": "wizard"}])  # a bug: said, the thread goes on
    writer.append(conv.id, [op_text(reply.id, "end")])
    writer.close()
    expected = "".join(f"w{i} " for i in range(500)) + "end"
    assert ChatStore(tmp_path).load(conv.id).messages[0].content == expected
    assert len(errors) == 1 and errors[0].startswith("Chat not saved: unexpected")


def test_export_and_import_round_trip() -> None:
    conv = Conversation(
        system_prompt="sys", messages=[StoredMessage("user", "q"), StoredMessage("assistant", "a")]
    )
    again = import_openai(json.loads(json.dumps(conv.to_openai())))
    assert again.system_prompt == "sys"
    assert [(m.role, m.content) for m in again.messages] == [("user", "q"), ("assistant", "a")]
    md = conv.to_markdown()
    assert "## User" in md and "## Assistant" in md and "**System:** sys" in md
    with pytest.raises(ValueError):
        import_openai([{"role": "wizard", "content": "x"}])


WRITER = """
import sys
from pathlib import Path
from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.chats.types import Conversation, StoredMessage, op_text
from kobold_gui.core.chats.writer import ChatWriter
store = ChatStore(Path(sys.argv[1]))
reply = StoredMessage("assistant", "", complete=False)
conv = Conversation(id="a" * 32, messages=[StoredMessage("user", "go"), reply])
writer = ChatWriter(store)
writer.save(conv)
n = 0
while True:
    n += 1
    writer.append(conv.id, [op_text(reply.id, f"word{n} ")])
    if n % 50 == 0:
        writer.drain()
        print(n, flush=True)
"""


def test_a_kill_mid_stream_leaves_a_readable_chat(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    last = 0
    while last < 2000:
        last = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    conv = ChatStore(tmp_path).load("a" * 32)
    words = conv.messages[1].content.split()
    assert len(words) >= 2000 and words == [f"word{i}" for i in range(1, len(words) + 1)]


def test_overlong_conversation_drops_the_oldest_turns(tiny_model: Path) -> None:
    from kobold_gui.core.engine.local import LocalEngine
    from kobold_gui.core.engine.types import SamplingParams
    from kobold_gui.core.launch.options import LaunchConfig
    from kobold_gui.core.launch.resolve import resolve_launch

    engine = LocalEngine()
    engine.load(resolve_launch(LaunchConfig(contextsize=512), tiny_model, None, False))
    turns = [Message("system", "You are terse.")]
    for i in range(12):
        turns += [
            Message("user", f"question {i} " + "word " * 30),
            Message("assistant", f"answer {i} " + "word " * 30),
        ]
    turns.append(Message("user", "last question"))
    result = engine.chat(turns, SamplingParams(max_tokens=8), lambda _t: None)
    assert result.dropped_messages >= 2 and result.generated_tokens > 0
    assert result.prompt_tokens <= 512
    engine.close()
