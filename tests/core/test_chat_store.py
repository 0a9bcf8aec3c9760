"""Saved conversations: a snapshot and a journal per chat, versioned, readable after a kill
at any byte of any write, bad files set aside, an index instead of parsing every chat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kobold_gui.core.chats.store import (
    ChatFileError,
    ChatStore,
    Conversation,
    ReplyVersion,
    StoredMessage,
    import_openai,
)
from kobold_gui.core.chats.types import op_meta, op_put, op_text, op_trim
from kobold_gui.core.chats.writer import ChatWriter
from kobold_gui.core.engine.prompt_template import Message


def owls_and_paris() -> tuple[Conversation, Conversation]:
    a = Conversation(
        system_prompt="Be brief.",
        messages=[
            StoredMessage("user", "Tell me about owls"),
            StoredMessage("assistant", "Owls hoot."),
        ],
    )
    b = Conversation(messages=[StoredMessage("user", "Paris?")])
    return a, b


def test_save_list_search_delete_and_undo(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    a, b = owls_and_paris()
    store.save(a)
    time.sleep(0.01)
    b.updated = a.updated + 1
    store.save(b)
    assert [s.id for s in store.scan()] == [b.id, a.id]  # most recent first
    assert store.load(a.id) == a
    assert store.search("hoot") == {a.id}
    assert store.search("PARIS") == {b.id}
    assert a.display_title() == "Tell me about owls"
    store.delete(a.id)
    assert [s.id for s in ChatStore(tmp_path).scan()] == [b.id]
    store.undelete(a.id)
    assert {s.id for s in ChatStore(tmp_path).scan()} == {a.id, b.id}


def test_journal_records_replay_over_the_snapshot(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    conv, _ = owls_and_paris()
    store.save(conv)
    reply = StoredMessage("assistant", "", complete=False)
    conv.messages += [StoredMessage("user", "And bats?"), reply]
    conv.title = "Night animals"
    store.append(conv.id, [op_put(2, conv.messages[2]), op_put(3, reply)])
    store.append(conv.id, [op_text(3, "Bats "), op_text(3, "fly."), op_meta(conv)])
    reply.content = "Bats fly."
    assert ChatStore(tmp_path).load(conv.id) == conv
    assert ChatStore(tmp_path).scan()[0].title == "Night animals"
    store.append(conv.id, [op_trim(2)])
    assert [m.content for m in ChatStore(tmp_path).load(conv.id).messages] == [
        "Tell me about owls",
        "Owls hoot.",
    ]


def test_a_line_cut_by_a_kill_is_left_out(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    conv = Conversation(messages=[StoredMessage("assistant", "Once", complete=False)])
    store.save(conv)
    store.append(conv.id, [op_text(0, " upon")])
    with open(store.journal_of(conv.id, 0), "a", encoding="utf-8") as f:
        f.write('{"op": "text", "i": 0, "s": " a ti')  # the kill came here
    again = ChatStore(tmp_path)
    assert again.load(conv.id).messages[0].content == "Once upon"
    assert not again.problems  # a cut last line is normal, not a problem


def test_a_kill_between_snapshot_and_journal_removal_applies_nothing_twice(
    tmp_path: Path,
) -> None:
    store = ChatStore(tmp_path)
    conv = Conversation(messages=[StoredMessage("assistant", "a", complete=False)])
    store.save(conv)
    store.append(conv.id, [op_text(0, "b")])
    old_journal = store.journal_of(conv.id, 0).read_bytes()
    store.save(store.load(conv.id))  # compaction: generation 1, journal 0 removed
    store.journal_of(conv.id, 0).write_bytes(old_journal)  # as if the kill came before that
    assert ChatStore(tmp_path).load(conv.id).messages[0].content == "ab"


def test_the_index_lists_chats_without_reading_them(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    a, b = owls_and_paris()
    store.save(a)
    store.save(b)
    store.scan()  # writes the index
    path = store.path_of(a.id)
    stat = path.stat()
    garbage = b"x" * stat.st_size  # same size and time: only a parse would notice
    path.write_bytes(garbage)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert {s.id for s in ChatStore(tmp_path).scan()} == {a.id, b.id}
    assert path.read_bytes() == garbage  # not read, so not set aside
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # now it changed
    fresh = ChatStore(tmp_path)
    assert [s.id for s in fresh.scan()] == [b.id]
    assert fresh.problems and "could not be read" in fresh.problems[0]


@pytest.mark.parametrize(
    ("content", "tag"), [("{broken", "corrupt"), ('{"version": 99, "messages": []}', "v99")]
)
def test_bad_files_are_reported_and_kept_aside(tmp_path: Path, content: str, tag: str) -> None:
    store = ChatStore(tmp_path)
    good = Conversation(messages=[StoredMessage("user", "hi")])
    store.save(good)
    bad_id = "0" * 32
    store.path_of(bad_id).write_text(content)
    assert [s.id for s in store.scan()] == [good.id]
    kept = list(tmp_path.glob(f"{bad_id}.{tag}-*.json.aside"))
    assert len(kept) == 1 and kept[0].read_text() == content
    assert store.problems and "kept as" in store.problems[0]
    with pytest.raises(ChatFileError):
        store.path_of(bad_id).write_text(content)
        store.load(bad_id)


def test_version_1_files_are_read_and_upgraded(tmp_path: Path) -> None:
    v1 = {
        "version": 1,
        "id": "d" * 32,
        "title": "old",
        "created": 1.0,
        "updated": 2.0,
        "model": None,
        "system_prompt": "",
        "messages": [
            {
                "role": "user",
                "content": "q",
                "created": 1.0,
                "stats": None,
                "complete": True,
                "alternatives": [],
            },
            {
                "role": "assistant",
                "content": "a2",
                "created": 1.0,
                "stats": None,
                "complete": True,
                "alternatives": ["a1"],
            },
        ],
        "sampling": {},
    }
    store = ChatStore(tmp_path)
    store.path_of("d" * 32).write_text(json.dumps(v1))
    conv = store.load("d" * 32)
    assert conv.title == "old" and conv.messages[1].alternatives == [ReplyVersion("a1")]
    on_disk = json.loads(store.path_of("d" * 32).read_text())
    assert on_disk["version"] == 2 and on_disk["journal"] == 0
    assert ChatStore(tmp_path).load("d" * 32) == conv


def test_the_writer_coalesces_syncs_and_compacts(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    errors: list[str] = []
    writer = ChatWriter(store, errors.append, compact_at=2000)
    conv = Conversation(messages=[StoredMessage("assistant", "", complete=False)])
    writer.save(conv)
    for i in range(500):
        writer.append(conv.id, [op_text(0, f"w{i} ")])
    writer.close()
    expected = "".join(f"w{i} " for i in range(500))
    assert ChatStore(tmp_path).load(conv.id).messages[0].content == expected
    assert len(list(tmp_path.glob("*.jsonl"))) <= 1
    assert store.journal_of(conv.id, 0).exists() is False  # compacted at least once
    assert not errors


def test_a_write_that_fails_is_reported_not_raised(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    errors: list[str] = []
    writer = ChatWriter(store, errors.append)
    writer.append("e" * 32, [op_text(0, "x")])  # never saved: nothing to append to
    writer.drain()
    writer.close()
    assert errors and errors[0].startswith("Chat not saved")


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


# -- kills ------------------------------------------------------------------------------------
# A driver process forks one child per byte budget N; the child writes a turn (journal records,
# then compactions) and exits with os._exit the moment its writes reach N bytes. The driver
# then reads the chat back: it must be one of the states between whole records.


def kill_drill(tmp_path: Path, mode: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("kill_writer.py")), str(tmp_path), mode],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the drill forks one child per budget")
def test_a_kill_at_any_byte_of_a_write_leaves_a_whole_state(tmp_path: Path) -> None:
    drill = kill_drill(tmp_path, "atomic")
    results = drill["results"]
    assert isinstance(results, list) and len(results) > 100
    assert sum(r["killed"] for r in results) > 100  # the kills did happen mid-write
    bad = [r for r in results if not r["ok"]]
    assert not bad, bad[:5]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the drill forks one child per budget")
def test_the_kill_drill_catches_a_plain_write(tmp_path: Path) -> None:
    """The same drill with the snapshot written in place must find broken files: it is a
    test that can fail."""
    results = kill_drill(tmp_path, "plain")["results"]
    assert isinstance(results, list)
    assert sum(not r["ok"] for r in results) > 10


WRITER = """
import sys
from pathlib import Path
from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.chats.types import Conversation, StoredMessage, op_text
from kobold_gui.core.chats.writer import ChatWriter
store = ChatStore(Path(sys.argv[1]))
conv = Conversation(id="a" * 32, messages=[StoredMessage("user", "go"),
                                           StoredMessage("assistant", "", complete=False)])
writer = ChatWriter(store, compact_at=4096)
writer.save(conv)
n = 0
while True:
    n += 1
    writer.append(conv.id, [op_text(1, f"word{n} ")])
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
