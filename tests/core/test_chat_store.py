"""Saved conversations: atomic, versioned, readable after a kill, bad files set aside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kobold_gui.core.chat_format import Message
from kobold_gui.core.chat_store import (
    ChatFileError,
    ChatStore,
    Conversation,
    StoredMessage,
    import_openai,
)


def test_save_list_search_delete_and_undo(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    a = Conversation(
        system_prompt="Be brief.",
        messages=[
            StoredMessage("user", "Tell me about owls"),
            StoredMessage("assistant", "Owls hoot."),
        ],
    )
    b = Conversation(messages=[StoredMessage("user", "Paris?")])
    store.save(a)
    time.sleep(0.01)
    store.save(b)
    assert [c.id for c in store.conversations()] == [b.id, a.id]  # most recent first
    assert store.load(a.id) == a
    assert [c.id for c in store.search("hoot")] == [a.id]
    assert a.display_title() == "Tell me about owls"
    store.delete(a.id)
    assert [c.id for c in store.conversations()] == [b.id]
    store.undelete(a.id)
    assert {c.id for c in store.conversations()} == {a.id, b.id}


@pytest.mark.parametrize(
    ("content", "tag"), [("{broken", "corrupt"), ('{"version": 99, "messages": []}', "v99")]
)
def test_bad_files_are_reported_and_kept_aside(tmp_path: Path, content: str, tag: str) -> None:
    store = ChatStore(tmp_path)
    good = Conversation(messages=[StoredMessage("user", "hi")])
    store.save(good)
    bad_id = "0" * 32
    store.path_of(bad_id).write_text(content)
    assert [c.id for c in store.conversations()] == [good.id]
    kept = list(tmp_path.glob(f"{bad_id}.{tag}-*.json.aside"))
    assert len(kept) == 1 and kept[0].read_text() == content
    assert store.problems and "kept as" in store.problems[0]
    with pytest.raises(ChatFileError):
        store.path_of(bad_id).write_text(content)
        store.load(bad_id)


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
import sys, time
from pathlib import Path
from kobold_gui.core.chat_store import ChatStore, Conversation, StoredMessage
store = ChatStore(Path(sys.argv[1]))
conv = Conversation(id="a" * 32, messages=[StoredMessage("user", "go"),
                                           StoredMessage("assistant", "", complete=False)])
n = 0
while True:
    n += 1
    conv.messages[1].content += f"word{n} "
    store.save(conv)
    print(n, flush=True)
"""


def test_a_kill_mid_stream_leaves_a_readable_file(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    last = 0
    while last < 200:
        last = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    conv = ChatStore(tmp_path).load("a" * 32)
    words = conv.messages[1].content.split()
    assert len(words) >= 200 and words == [f"word{i}" for i in range(1, len(words) + 1)]


def test_overlong_conversation_drops_the_oldest_turns(tiny_model: Path) -> None:
    from kobold_gui.core.engine import Engine
    from kobold_gui.core.engine_types import SamplingParams
    from kobold_gui.core.launch import resolve_launch
    from kobold_gui.core.options import LaunchConfig

    engine = Engine()
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
