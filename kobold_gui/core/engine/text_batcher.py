"""One way to pass streamed text on in batches: gather the pieces, hand them on at most once
per interval.

A reply streams one piece per token, up to thousands a second on a fast GPU. Every hop that
moves the text somewhere costly gathers it first; the intervals live here, in one table:

    hop                          interval  used by                    why
    child process -> app         10 ms     core/engine/child_main.py  one socket message per
                                                                      token cost a fast GPU 7 %
                                                                      of its generation speed
    engine thread -> GUI thread  33 ms     ui/engine/controller.py    ~30 queued signals/s: the
                                                                      GUI never falls behind a
                                                                      burst of 1000+ tokens/s
    GUI -> chat file (writer)    250 ms    ui/chat/controller.py      a journal write per
                                                                      chunk is wasted work; a
                                                                      crash loses < 250 ms
    GUI -> Markdown rendering    400 ms    ui/chat/chat_panel.py      re-rendering a long reply
                                                                      is costly; plain text
                                                                      shows at once meanwhile

(core/chats/writer.py's SYNC_EVERY_S is not text batching: it is how often a written journal
is fsynced.)

How a TextBatcher hands text on: a piece that comes when the interval since the last
hand-on has passed goes at once, with whatever was gathered before it (so the first piece
of a reply, and every piece of a slow one, never waits). Pieces that come sooner are
gathered. Nothing is handed on by a timer of the batcher's own: a caller that must not let
gathered text wait for the next piece (a pause in the stream) asks `due_in()` and calls
`flush_if_due()` then, e.g. from a Qt timer:

    batcher = TextBatcher(write, GUI_TO_DISK_S)
    batcher.add(chunk)                      # on each streamed chunk
    if (wait := batcher.due_in()) is not None and not timer.isActive():
        timer.start(int(wait * 1000))       # timer.timeout -> batcher.flush_if_due
    ...
    batcher.flush()                         # the reply ended: the rest goes now
    batcher.discard()                       # or it failed: the rest is dropped

`with batcher:` flushes on leaving the block, also when it raises. Thread-safe: pieces may
be added and flushed from different threads; the text is handed on in order, each piece
once, and `send` is never called twice at the same time (it runs under the batcher's lock,
so it must not call back into the batcher).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

CHILD_TO_PARENT_S = 0.01
ENGINE_TO_GUI_S = 0.033
GUI_TO_DISK_S = 0.25
RENDER_MARKDOWN_S = 0.4


class TextBatcher:
    def __init__(
        self,
        send: Callable[[str], None],
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self.interval_s = interval_s
        self._clock = clock
        self._pending: list[str] = []
        self._last = float("-inf")  # when text was last handed on
        self._lock = threading.Lock()

    def add(self, text: str) -> None:
        """Gather a piece; hand on everything gathered when the interval has passed."""
        if not text:
            return
        with self._lock:
            self._pending.append(text)
            now = self._clock()
            if now - self._last >= self.interval_s:
                self._hand_on(now)

    def due_in(self) -> float | None:
        """Seconds until the gathered text may be handed on (0: now); None when none waits."""
        with self._lock:
            if not self._pending:
                return None
            return max(0.0, self._last + self.interval_s - self._clock())

    def flush_if_due(self) -> bool:
        """Hand on the gathered text if the interval has passed. True when something went."""
        with self._lock:
            now = self._clock()
            if not self._pending or now - self._last < self.interval_s:
                return False
            self._hand_on(now)
            return True

    def flush(self) -> None:
        """Hand on whatever is gathered, now (the stream ended)."""
        with self._lock:
            if self._pending:
                self._hand_on(self._clock())

    def discard(self) -> str:
        """Drop the gathered text (the stream failed) and return it."""
        with self._lock:
            text = "".join(self._pending)
            self._pending.clear()
            return text

    def _hand_on(self, now: float) -> None:
        text = "".join(self._pending)
        self._pending.clear()
        self._last = now
        self._send(text)

    def __enter__(self) -> TextBatcher:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.flush()
