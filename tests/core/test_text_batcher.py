"""The text batcher: streamed text handed on at most once per interval, all of it, in order."""

from __future__ import annotations

import threading
import time

import pytest

from kobold_gui.core.engine.text_batcher import TextBatcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def batcher(interval: float = 0.1) -> tuple[TextBatcher, list[str], Clock]:
    sent: list[str] = []
    clock = Clock()
    return TextBatcher(sent.append, interval, clock), sent, clock


def test_the_first_piece_goes_at_once_the_next_ones_wait_for_the_interval() -> None:
    b, sent, clock = batcher(0.1)
    b.add("a")
    assert sent == ["a"]
    clock.now += 0.03
    b.add("b")
    clock.now += 0.03
    b.add("c")
    assert sent == ["a"]  # gathered
    clock.now += 0.05  # 0.11 since "a" went
    b.add("d")
    assert sent == ["a", "bcd"]


def test_pieces_slower_than_the_interval_never_wait() -> None:
    b, sent, clock = batcher(0.1)
    for piece in "xyz":
        b.add(piece)
        clock.now += 0.2
    assert sent == ["x", "y", "z"]


def test_at_most_one_hand_on_per_interval() -> None:
    b, sent, clock = batcher(0.1)
    for _ in range(1000):  # 1000 pieces over one second
        b.add("t")
        clock.now += 0.001
    assert 9 <= len(sent) <= 11
    assert "".join(sent) == "t" * (1000 - len(b.discard()))


def test_flush_hands_on_the_rest_and_the_context_flushes_on_errors() -> None:
    b, sent, _clock = batcher(0.1)
    b.add("a")
    b.add("b")
    b.flush()
    assert sent == ["a", "b"]
    b.flush()  # nothing gathered: nothing sent
    assert sent == ["a", "b"]
    with pytest.raises(RuntimeError), b:
        b.add("c")
        raise RuntimeError
    assert sent == ["a", "b", "c"]


def test_due_in_and_flush_if_due_for_a_pause_in_the_stream() -> None:
    b, sent, clock = batcher(0.25)
    assert b.due_in() is None
    b.add("a")
    assert b.due_in() is None  # went at once
    clock.now += 0.1
    b.add("b")
    assert b.due_in() == pytest.approx(0.15)
    assert not b.flush_if_due() and sent == ["a"]
    clock.now += 0.15
    assert b.due_in() == 0.0
    assert b.flush_if_due() and sent == ["a", "b"]
    assert not b.flush_if_due()


def test_discard_drops_what_was_gathered() -> None:
    b, sent, _clock = batcher(0.1)
    b.add("a")
    b.add("b")
    b.add("c")
    assert b.discard() == "bc"
    b.flush()
    assert sent == ["a"]


def test_empty_pieces_are_ignored() -> None:
    b, sent, _clock = batcher(0.1)
    b.add("")
    assert sent == [] and b.due_in() is None


def test_threads_adding_and_flushing_lose_nothing_and_never_overlap() -> None:
    """Each thread's pieces arrive in its order, every piece once; send never runs twice at
    the same time (real clock, zero interval: as many hand-ons as can race)."""
    sent: list[str] = []
    inside = [0]
    overlaps = [0]

    def send(text: str) -> None:
        inside[0] += 1
        if inside[0] > 1:
            overlaps[0] += 1
        time.sleep(0.0001)  # let another thread in, were it not locked out
        sent.append(text)
        inside[0] -= 1

    b = TextBatcher(send, 0.0)
    threads = [
        threading.Thread(target=lambda n=n: [b.add(f"<{n}:{i}>") for i in range(500)])
        for n in range(4)
    ]
    flusher = threading.Thread(target=lambda: [b.flush() for _ in range(500)])
    for t in [*threads, flusher]:
        t.start()
    for t in [*threads, flusher]:
        t.join()
    b.flush()
    text = "".join(sent)
    assert overlaps[0] == 0
    for n in range(4):
        seen = [int(p.split(":")[1]) for p in text.split(">") if p.startswith(f"<{n}:")]
        assert seen == list(range(500))
