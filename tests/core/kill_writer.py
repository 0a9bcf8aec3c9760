"""The kill drill's driver (run as a script by tests/core/test_chat_store.py): forks one child
per byte budget N; the child writes a turn as the app does (journal records, then
compactions) and exits with os._exit the moment its writes reach N bytes. The driver reads
the chat back each time and prints, as JSON, whether it is one of the states between whole
records (and whether the child was really cut).

    python tests/core/kill_writer.py FOLDER atomic|plain

"plain" swaps the atomic snapshot write for a write in place: the drill must catch it.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kobold_gui.core.chats.store as chat_store
from kobold_gui.core.chats.store import ChatFileError, ChatStore
from kobold_gui.core.chats.types import Conversation, StoredMessage, op_put, op_text

CHAT = "a" * 32
View = list[tuple[str, str, bool]]


def plain_write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def start() -> Conversation:
    return Conversation(
        id=CHAT,
        created=1.0,
        messages=[
            StoredMessage("user", "Tell me a story", created=1.0),
            StoredMessage("assistant", "Once", created=2.0, complete=False),
        ],
    )


def view(conv: Conversation) -> View:
    return [(m.role, m.content, m.complete) for m in conv.messages]


def turn(store: ChatStore, conv: Conversation, states: list[View]) -> None:
    """What the app writes while a reply streams and ends, then a new message comes."""
    for piece in (" upon a time", ", by the sea", ", a keeper lived."):
        conv.messages[1].content += piece
        store.append(CHAT, [op_text(1, piece)])
        states.append(view(conv))
    conv.messages[1].complete = True
    store.append(CHAT, [op_put(1, conv.messages[1])])
    states.append(view(conv))
    store.save(conv)
    conv.messages.append(StoredMessage("user", "Now a poem about the sea", created=3.0))
    store.append(CHAT, [op_put(2, conv.messages[2])])
    states.append(view(conv))
    store.save(conv)


class Metered:
    """A file opened for writing that counts what is written, and with a budget set, ends
    the process (os._exit: no flush of anything else, no cleanup) when it is spent."""

    written = 0
    budget: int | None = None

    def __init__(self, f: Any) -> None:
        self.f = f

    def write(self, s: str) -> int:
        if Metered.budget is not None and Metered.written + len(s) > Metered.budget:
            self.f.write(s[: Metered.budget - Metered.written])
            self.f.flush()
            os._exit(0)
        Metered.written += len(s)
        return int(self.f.write(s))

    def __enter__(self) -> Metered:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


def metering(opener: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kw: Any) -> Any:
        f = opener(*args, **kw)
        mode = str(kw.get("mode", args[1] if len(args) > 1 else "r"))
        return Metered(f) if any(c in mode for c in "wax+") else f

    return wrapped


def meter_writes() -> None:
    """Every file opened for writing is metered (os.fdopen and Path.write_text go through
    io.open)."""
    builtins.open = io.open = metering(io.open)  # type: ignore[assignment]


def run(root: Path, budget: int, states: list[View]) -> dict[str, Any]:
    folder = root / f"n{budget}"
    store = ChatStore(folder)
    store.save(start())
    pid = os.fork()
    if pid == 0:
        conv = store.load(CHAT)
        Metered.written, Metered.budget = 0, budget
        meter_writes()
        turn(store, conv, [])
        os._exit(3)  # the budget was larger than the writes
    _, status = os.waitpid(pid, 0)
    killed = os.waitstatus_to_exitcode(status) == 0
    try:
        got = view(ChatStore(folder).load(CHAT))
    except (ChatFileError, OSError) as e:
        return {"budget": budget, "ok": False, "killed": killed, "why": str(e)[:160]}
    ok = got in states
    return {"budget": budget, "ok": ok, "killed": killed, "why": "" if ok else repr(got)[:160]}


def main() -> None:
    root, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "plain":
        chat_store.write_json_atomic = plain_write  # type: ignore[assignment]
    store = ChatStore(root / "total")  # the size of all the writes, counted once
    store.save(start())
    conv = store.load(CHAT)
    original = io.open
    states = [view(start())]
    meter_writes()
    turn(store, conv, states)
    builtins.open = io.open = original  # type: ignore[assignment]
    total = Metered.written
    step = max(1, total // 400)
    results = [run(root, n, states) for n in range(0, total + step, step)]
    print(json.dumps({"total": total, "results": results}))


if __name__ == "__main__":
    main()
