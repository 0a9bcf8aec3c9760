"""The chat store on a disk that fills up for a moment, and in a folder that cannot be
written: real file systems (tests/core/disks.py), no mock of the disk."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kobold_gui.core.chats.store import DB_NAME, ChatStore
from kobold_gui.core.chats.types import Conversation, StoredMessage, op_meta, op_put, op_text
from kobold_gui.core.chats.writer import ChatWriter
from tests.core.disks import fill, read_only_folder, small_disk


def wait_for(condition: Callable[[], bool], limit_s: float = 60.0) -> None:
    """Polls until the condition holds; the limit only stops a hang."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def content(folder: Path, conv_id: str) -> list[str]:
    reader = ChatStore(folder)
    try:
        return [m.content for m in reader.load(conv_id).messages]
    finally:
        reader.close()


def test_a_disk_full_for_a_moment_loses_nothing(tmp_path: Path) -> None:
    """The disk fills while a reply streams and a turn is sent: each failed write leaves the
    database as it was, the user is told once, and everything is written when room comes
    back (the file store left a journal with a cut line, and after a restart only the first
    turn). A tmpfs of 2 MiB filled to the last byte where mounting is allowed, else SQLite's
    own page limit (SQLITE_FULL, raised by SQLite itself)."""
    with small_disk(tmp_path / "disk") as disk:
        folder = (disk or tmp_path) / "chats"
        store = ChatStore(folder)
        said: list[str] = []
        writer = ChatWriter(store, said.append)
        reply = StoredMessage("assistant", "", complete=False)
        conv = Conversation(messages=[StoredMessage("user", "Tell me a story"), reply])
        writer.save(conv)
        writer.append(conv.id, [op_text(reply.id, "Once upon a time")])
        assert writer.drain()
        filler: Path | None = None
        if disk is not None:
            filler = fill(disk)
        else:
            pages = store._db.get().execute("PRAGMA page_count").fetchone()[0]
            writer.call(lambda: store._db.get().execute(f"PRAGMA max_page_count={pages}"))
        long_text = " and the sea" * 20_000  # more than the write-ahead log has room for
        writer.append(conv.id, [op_text(reply.id, long_text)])
        turn = [StoredMessage("user", "And then?"), StoredMessage("assistant", "The end.")]
        conv.messages += turn
        writer.append(conv.id, [op_put(m) for m in turn] + [op_meta(conv)])
        writer.append(conv.id, [op_text(reply.id, " The end")])
        assert writer.drain()
        wait_for(lambda: bool(said))
        assert said[0].startswith("Chat not saved: disk full")
        assert writer.unsaved > 0
        assert content(folder, conv.id) == ["Tell me a story", "Once upon a time"]  # as before
        if filler is not None:
            filler.unlink()
        else:
            writer.call(lambda: store._db.get().execute("PRAGMA max_page_count=1073741823"))
        wait_for(lambda: writer.unsaved == 0)  # retried on a timer: no new write needed
        writer.close()
        assert content(folder, conv.id) == [
            "Tell me a story",
            "Once upon a time" + long_text + " The end",
            "And then?",
            "The end.",
        ]
        assert len(said) == 2 and said[1].startswith("Chat saved")  # told once, then again
        store.close()


def test_a_read_only_folder_opens_the_chats_and_keeps_new_ones_in_memory(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "chats"
    saved = Conversation(title="kept", messages=[StoredMessage("user", "from before")])
    before = ChatStore(folder)
    before.save(saved)
    before.close()
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    with read_only_folder(folder) as how:
        if how is None:
            pytest.skip("neither a read-only bind mount nor chattr +i is allowed here")
        with pytest.raises(OSError):
            (folder / "probe").write_text("x")  # really read-only, root included
        store = ChatStore(folder)
        assert store.read_only and "Chats cannot be saved" in store.warning
        assert [s.title for s in store.scan()] == ["kept"]
        new = Conversation(messages=[StoredMessage("user", "in memory")])
        store.save(new)
        assert [m.content for m in store.load(new.id).messages] == ["in memory"]
        assert store.search("memory") == {new.id}
        store.close()
        if how == "bind":
            assert {p.name: p.read_bytes() for p in folder.iterdir()} == files
    assert sorted(os.listdir(folder)) == sorted(files)
    assert len(ChatStore(folder).scan()) == 1  # nothing written there


def test_a_database_from_a_newer_version_is_not_touched(tmp_path: Path) -> None:
    folder = tmp_path / "chats"
    ChatStore(folder).close()
    db = sqlite3.connect(folder / DB_NAME)
    db.execute("PRAGMA user_version=99")
    db.close()
    store = ChatStore(folder)
    assert store.read_only and "newer kobold-gui" in store.warning
    store.save(Conversation(messages=[StoredMessage("user", "hi")]))  # works, in a copy
    db = sqlite3.connect(folder / DB_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 99
    assert db.execute("SELECT count(*) FROM chats").fetchone()[0] == 0
