"""The chat store, old (one JSON file and a journal per chat: bench/file_chat_store.py, the
code of main before SQLite) against new (core/chats/store.py, SQLite), on the same machine
and the same data, side by side:

1. a streamed chunk saved (one ~170-byte piece added to the last reply of a 50-message chat
   among 500; the writer thread's cost, median);
2. opening the chats list with 500 chats of 50 messages (a new store each time: the old one
   from its index, and without it as on a first start; the new one by one query);
3. opening a 50 MB chat (1,000 messages of 50 KB; the old store from its snapshot);
4. searching the 500 chats for a word of an old turn (the old store reads every chat).

    .venv/bin/python -m bench.chat_store [--chats 500] [--big-mb 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.file_chat_store import ChatStore as FileStore
from kobold_gui.core.chats.store import ChatStore as SqlStore
from kobold_gui.core.chats.types import Conversation, StoredMessage, op_text

MESSAGE = "A paragraph of an earlier message, about the sea and its lighthouses. " * 6
CHUNK = "word " * 33


def chats(count: int, messages: int) -> list[Conversation]:
    out = []
    for i in range(count):
        conv = Conversation(title=f"chat {i}", created=1e9 + i, updated=1e9 + i)
        for j in range(messages):
            role = "user" if j % 2 == 0 else "assistant"
            text = f"{j}: {MESSAGE}" + (f" albatross{i}x" if j == 1 else "")
            conv.messages.append(StoredMessage(role, text, created=1e9 + i))
        out.append(conv)
    return out


def big_chat(megabytes: int) -> Conversation:
    piece = ("The lighthouse keeper wrote another long page of the log. " * 900)[:50_000]
    conv = Conversation(title="big")
    for j in range(megabytes * 20):
        conv.messages.append(StoredMessage("user" if j % 2 == 0 else "assistant", piece))
    return conv


def median_ms(func: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        func()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def once_ms(func: Callable[[], object]) -> float:
    return median_ms(func, 1)


def measure_old(folder: Path, convs: list[Conversation], big: Conversation) -> dict[str, float]:
    store = FileStore(folder)
    for conv in convs:
        store.save(conv)
    store.save(big)
    store.scan()  # writes the index, as the app does on its first start
    newest = convs[-1]
    store.load(newest.id)
    last = len(newest.messages) - 1
    out = {
        "chunk": median_ms(lambda: store.append(newest.id, [op_old(last)]), 200),
        "list": median_ms(lambda: FileStore(folder).scan(), 3),
    }
    (folder / "index.json").unlink()
    out["list, first start"] = once_ms(lambda: FileStore(folder).scan())
    out["open 50 MB"] = median_ms(lambda: FileStore(folder).load(big.id), 3)
    listed = FileStore(folder)
    listed.scan()  # the old search went through the listed chats
    assert listed.search("albatross7x") == {convs[7].id}
    out["search"] = median_ms(lambda: listed.search("albatross7x"), 3)
    return out


def op_old(index: int) -> dict[str, object]:
    return {"op": "text", "i": index, "s": CHUNK}


def measure_new(folder: Path, convs: list[Conversation], big: Conversation) -> dict[str, float]:
    store = SqlStore(folder)
    for conv in convs:
        store.save(conv)
    store.save(big)
    newest = convs[-1]
    reply = newest.messages[-1].id
    out = {"chunk": median_ms(lambda: store.append(newest.id, [op_text(reply, CHUNK)]), 200)}

    def list_chats() -> None:
        fresh = SqlStore(folder)
        fresh.scan()
        fresh.close()

    out["list"] = median_ms(list_chats, 3)
    out["list, first start"] = out["list"]  # the same query (the import runs once, below)
    out["open 50 MB"] = median_ms(lambda: store.load(big.id), 3)
    assert store.search("albatross7x") == {convs[7].id}
    out["search"] = median_ms(lambda: store.search("albatross7x"), 3)
    store.close()
    return out


def measure_import(old_folder: Path) -> float:
    """The new store's one-time import of the old folder (500 chats and the 50 MB one)."""
    return once_ms(lambda: SqlStore(old_folder).scan())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chats", type=int, default=500)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--big-mb", type=int, default=50)
    args = parser.parse_args()
    convs = chats(args.chats, args.messages)
    big = big_chat(args.big_mb)
    with tempfile.TemporaryDirectory() as tmp:
        old = measure_old(Path(tmp) / "old", convs, big)
        new = measure_new(Path(tmp) / "new", convs, big)
        imported = measure_import(Path(tmp) / "old")
    print(f"{args.chats} chats x {args.messages} messages, a {args.big_mb} MB chat")
    print(f"{'':34}{'old (files)':>14}{'new (SQLite)':>14}")
    rows = [
        ("a streamed chunk saved", "chunk"),
        ("chats list, new store (index)", "list"),
        ("chats list, first start", "list, first start"),
        (f"opening the {args.big_mb} MB chat", "open 50 MB"),
        ("search (word of an old turn)", "search"),
    ]
    for label, key in rows:
        print(f"{label:34}{old[key]:>11.2f} ms{new[key]:>11.2f} ms")
    print(f"{'import of the old folder (once)':34}{'':>14}{imported:>11.0f} ms")


if __name__ == "__main__":
    main()
