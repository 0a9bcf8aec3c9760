"""Saving chats with 500 chats on disk, each of 50 messages: does anything grow with the
number of chats? Side by side, for the newest (1st) and the oldest (500th) chat:

1. the writer thread's cost to save a streamed chunk (one journal append), and the cost of the
   previous way (rewrite + fsync the whole chat file, and re-parse every chat for the list);
2. the chats list: reading it on start (index) vs parsing every file, and updating one row;
3. the longest GUI-thread stall (5 ms heartbeat) while a 10k-token reply streams at
   1000 tokens/s into the real chat panel and controller, with a Markdown render timer and
   saving on, for the 1st and the 500th chat (target < 20 ms).

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m bench.chat_store_scale [--chats 500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication, QWidget

from bench.chat_rendering import stream_reply
from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.chats.types import Conversation, StoredMessage, op_text
from kobold_gui.core.chats.writer import ChatWriter
from kobold_gui.core.paths import write_json_atomic

MESSAGE = "A paragraph of an earlier message, about the sea and its lighthouses. " * 6


def make_chats(folder: Path, count: int, messages: int) -> list[str]:
    """count chats of `messages` messages, the first made being the oldest."""
    store = ChatStore(folder)
    ids = []
    for i in range(count):
        conv = Conversation(title=f"chat {i}", created=1e9 + i, updated=1e9 + i)
        for j in range(messages):
            role = "user" if j % 2 == 0 else "assistant"
            conv.messages.append(StoredMessage(role, f"{j}: {MESSAGE}", created=1e9 + i))
        store.save(conv)
        ids.append(conv.id)
    ChatStore(folder).scan()  # writes the index, as the app does on its first start
    return ids


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def append_cost(store: ChatStore, conv_id: str, n: int = 200) -> float:
    store.load(conv_id)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        store.append(conv_id, [op_text(49, "word " * 33)])
        times.append(time.perf_counter() - t)
    return median_ms(times)


def old_save_cost(store: ChatStore, conv_id: str, n: int = 20) -> float:
    """The previous way: the whole chat rewritten and fsynced (once a second)."""
    conv = store.load(conv_id)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        write_json_atomic(store.path_of(conv_id).with_suffix(".old"), conv.to_json())
        times.append(time.perf_counter() - t)
    store.path_of(conv_id).with_suffix(".old").unlink()
    return median_ms(times)


def parse_all(folder: Path) -> float:
    """The previous way to refresh the list (on every sent message): parse every chat."""
    t = time.perf_counter()
    for path in folder.glob("*.json"):
        if len(path.stem) == 32:
            json.loads(path.read_text(encoding="utf-8"))
    return (time.perf_counter() - t) * 1000


def stall_while_streaming(
    app: QApplication, folder: Path, conv_id: str, tokens: int
) -> tuple[int, float]:
    """The longest gap between 5 ms heartbeats (wall clock: a busy machine adds its own
    delays), and the longest CPU time of one GUI-thread event of the chat (a streamed chunk,
    a Markdown render, the end of the reply): the app's own share."""
    from kobold_gui.ui.chat.chat_panel import ChatPanel
    from kobold_gui.ui.chat.controller import ConversationController
    from kobold_gui.ui.chat.conversation_list import ConversationList
    from kobold_gui.ui.chat.sampling_panel import SamplingPanel

    host = QWidget()
    host.resize(900, 700)
    chat = ChatPanel(host)
    chats = ConversationList(host)
    controller = ConversationController(
        chat, chats, SamplingPanel(host), ChatStore(folder), lambda _t: None, str, host
    )
    chats.set_summaries(controller.store.scan())
    host.show()
    controller.open(conv_id)
    chat.set_model_ready(True)
    busy = [0.0]

    def timed(func):  # type: ignore[no-untyped-def]
        def run(*args):  # type: ignore[no-untyped-def]
            t = time.thread_time()
            func(*args)
            busy[0] = max(busy[0], time.thread_time() - t)

        return run

    chat._render_timer.timeout.disconnect()
    chat._render_timer.timeout.connect(timed(chat._render_pieces))
    # The end of the turn (compaction included) is waited for: 300 ms.
    worst, _text = stream_reply(chat, controller, tokens, timed, settle_ms=300)
    controller.shutdown()
    host.close()
    return worst, busy[0] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=500)
    ap.add_argument("--messages", type=int, default=50)
    ap.add_argument("--tokens", type=int, default=10_000)
    args = ap.parse_args()
    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        ids = make_chats(folder, args.chats, args.messages)
        print(
            f"{args.chats} chats of {args.messages} messages written in "
            f"{time.perf_counter() - t:.1f} s "
            f"({sum(p.stat().st_size for p in folder.glob('*.json')) / 1e6:.1f} MB)"
        )
        newest, oldest = ids[-1], ids[0]
        store = ChatStore(folder)
        print("1. saving a streamed chunk (writer thread), median:")
        print(
            f"   journal append:          1st chat {append_cost(store, newest):.3f} ms, "
            f"{args.chats}th chat {append_cost(store, oldest):.3f} ms"
        )
        print(
            f"   before (rewrite+fsync):  1st chat {old_save_cost(store, newest):.3f} ms, "
            f"{args.chats}th chat {old_save_cost(store, oldest):.3f} ms"
        )
        writer = ChatWriter(store)
        times = []
        for _ in range(200):
            t = time.perf_counter()
            writer.append(newest, [op_text(49, "word " * 33)])
            times.append(time.perf_counter() - t)
        writer.close()
        print(f"   GUI thread's share (hand a chunk to the writer): {median_ms(times):.4f} ms")

        print("2. the chats list:")
        t = time.perf_counter()
        listed = ChatStore(folder).scan()
        scan_ms = (time.perf_counter() - t) * 1000
        print(
            f"   on start, from the index: {scan_ms:.1f} ms for {len(listed)} chats "
            f"(worker thread); parsing every chat instead: {parse_all(folder):.1f} ms"
        )
        from kobold_gui.ui.chat.conversation_list import ConversationList

        chats = ConversationList()
        chats.set_summaries(listed)
        for label, conv_id in (("1st", newest), (f"{args.chats}th", oldest)):
            summary = next(s for s in listed if s.id == conv_id)
            times = []
            for _ in range(50):
                t = time.perf_counter()
                chats.upsert(summary)
                times.append(time.perf_counter() - t)
            print(
                f"   a message sent in the {label} chat updates its row: {median_ms(times):.3f} ms"
            )
        print("   before: every sent message re-parsed every chat (the figure above)")

        print(
            f"3. GUI thread while a {args.tokens}-token reply streams at 1000 tokens/s "
            f"(target < 20 ms); load average now {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} CPUs:"
        )
        for label, conv_id in (("1st", newest), (f"{args.chats}th", oldest)):
            worst, busy = stall_while_streaming(app, folder, conv_id, args.tokens)  # type: ignore[arg-type]
            print(
                f"   {label} chat: longest event {busy:.1f} ms of CPU; "
                f"longest heartbeat gap {worst} ms (wall clock)"
            )


if __name__ == "__main__":
    main()
