"""Chat files of earlier versions (a whole-chat JSON file, version 1 or 2, and version 2's
journal) imported into the database once, nothing lost, the files kept until verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kobold_gui.core.chats.store import ChatStore, ReplyVersion
from kobold_gui.core.chats.types import StoredMessage, op_meta, op_put


def message(role: str, content: str, complete: bool = True) -> dict[str, Any]:
    return {"role": role, "content": content, "created": 1.0, "stats": None,
            "complete": complete, "alternatives": [], "cut": ""}  # fmt: skip


def snapshot(conv_id: str, messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    data = {"version": 2, "journal": 0, "id": conv_id, "title": "", "created": 1.0,
            "updated": 2.0, "model": None, "system_prompt": "", "messages": messages,
            "sampling": {}}  # fmt: skip
    return {**data, **fields}


def record(op: str, **fields: Any) -> str:
    return json.dumps({"op": op, **fields}) + "\n"


def test_a_journal_with_a_damaged_and_a_cut_line_keeps_every_later_turn(tmp_path: Path) -> None:
    """A line garbled in the middle, then a line cut by a full disk with the next record
    glued after it, then one more turn: the file store showed the chat as it was before the
    garbled line (and dropped the rest when it next compacted); every readable record is
    kept, the files move to imported/ once the database holds as many messages."""
    conv_id = "a" * 32
    (tmp_path / f"{conv_id}.json").write_text(json.dumps(snapshot(conv_id, [])))
    journal = (
        record("put", i=0, m=message("user", "Tell me a story"))
        + record("put", i=1, m=message("assistant", "", complete=False))
        + record("text", i=1, s="Once upon")
        + '{"op": "text", "i": 1, "s": " a tim\x00\x00garbage\n'  # damaged in the middle
        + record("text", i=1, s=" a time.")
        + record("put", i=2, m=message("user", "And then?"))
        + '{"op": "put", "i": 3, "m": {"role": "assist'  # cut by the full disk ...
        + record("put", i=3, m=message("assistant", "", complete=False))  # ... then glued
        + record("text", i=3, s="The end.")
        + record("put", i=4, m=message("user", "Thanks"))
        + '{"op": "put", "i": 5, "m": {"ro'  # the last line, cut by a kill
    )
    (tmp_path / f"{conv_id}.0.jsonl").write_text(journal)
    (tmp_path / "index.json").write_text("{}")
    store = ChatStore(tmp_path)
    assert [s.id for s in store.scan()] == [conv_id]
    conv = store.load(conv_id)
    assert [m.content for m in conv.messages] == [
        "Tell me a story",
        "Once upon a time.",
        "And then?",
        "The end.",
        "Thanks",
    ]
    assert len(store.problems) == 1 and "2 damaged record(s)" in store.problems[0]
    moved = sorted(p.name for p in (tmp_path / "imported").iterdir())
    assert moved == [f"{conv_id}.0.jsonl", f"{conv_id}.json", "index.json"]
    assert not list(tmp_path.glob("*.json*"))
    # One more turn, then a fresh start: nothing imported twice, nothing lost.
    turn = [StoredMessage("user", "One more"), StoredMessage("assistant", "Sure.")]
    conv.messages += turn
    store.append(conv_id, [op_put(m) for m in turn] + [op_meta(conv)])
    again = ChatStore(tmp_path)
    assert [s.id for s in again.scan()] == [conv_id] and not again.problems
    assert [m.content for m in again.load(conv_id).messages][-3:] == [
        "Thanks",
        *["One more", "Sure."],
    ]


def test_version_1_files_and_odd_values_are_imported(tmp_path: Path) -> None:
    v1 = {
        "version": 1,
        "id": "d" * 32,
        "title": "old",
        "created": 1.0,
        "updated": 2.0,
        "model": None,
        "system_prompt": "",
        "messages": [
            {"role": "user", "content": "q", "created": 1.0, "stats": None, "complete": True,
             "alternatives": []},
            {"role": "assistant", "content": "a2", "created": 1.0, "stats": None,
             "complete": True, "alternatives": ["a1"]},
        ],
    }  # fmt: skip
    (tmp_path / f"{'d' * 32}.json").write_text(json.dumps(v1))
    odd = snapshot("e" * 32, [message("user", "hi")], updated="yesterday", model=7)
    (tmp_path / f"{'e' * 32}.json").write_text(json.dumps(odd))
    (tmp_path / f"{'f' * 32}.json").write_text("{broken")
    (tmp_path / f"{'1' * 32}.json").write_text('{"version": 99, "messages": []}')
    store = ChatStore(tmp_path)
    assert {s.id for s in store.scan()} == {"d" * 32, "e" * 32}
    conv = store.load("d" * 32)
    assert conv.title == "old" and conv.messages[1].alternatives == [ReplyVersion("a1")]
    odd_chat = store.load("e" * 32)
    assert odd_chat.model is None and isinstance(odd_chat.updated, float)
    assert [m.content for m in odd_chat.messages] == ["hi"]
    problems = "\n".join(store.problems)
    assert "updated was 'yesterday'" in problems and "model was 7" in problems
    assert "could not be read" in problems and "newer kobold-gui" in problems
    assert len(list(tmp_path.glob("*.json.aside"))) == 2  # kept, renamed, as before
