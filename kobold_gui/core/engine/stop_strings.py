"""Stop strings: text streams on, except a tail that could still become a stop string."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class StopStringFilter:
    """Passes text on, holding back any tail that could begin a stop string."""

    def __init__(self, stops: Sequence[str], sink: Callable[[str], None]) -> None:
        self.stops = [s for s in stops if s]
        self.sink = sink
        self.pending = ""
        self.text = ""
        self.matched = ""  # the stop string that ended the text

    def _emit(self, piece: str) -> None:
        if piece:
            self.text += piece
            self.sink(piece)

    def feed(self, piece: str) -> bool:
        """Returns True when a stop string was reached (the text before it is emitted)."""
        if not self.stops:
            self._emit(piece)
            return False
        self.pending += piece
        for stop in self.stops:
            at = self.pending.find(stop)
            if at >= 0:
                self._emit(self.pending[:at])
                self.pending = ""
                self.matched = stop
                return True
        hold = max(
            (k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])),
            default=0,
        )
        self._emit(self.pending[: len(self.pending) - hold])
        self.pending = self.pending[len(self.pending) - hold :]
        return False

    def emit_stop(self) -> None:
        """Put the stop string that ended the text at its end (KoboldCPP's trim_stop off)."""
        self._emit(self.matched)

    def flush(self) -> None:
        self._emit(self.pending)
        self.pending = ""
