"""What a download is and how it is watched: the file to fetch (FileSpec, as written to its
.part.json), its progress, the pause and cancel it checks, and the errors it ends with.
The transfer itself is core/hub/download.py."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROGRESS_EVERY_S = 0.1


class DownloadError(Exception):
    """The download cannot go on; the message says why and what to do."""


class DownloadStopped(Exception):
    """Paused (the part is kept) or cancelled (the part is deleted) by the user."""

    def __init__(self, cancelled: bool) -> None:
        super().__init__("cancelled" if cancelled else "paused")
        self.cancelled = cancelled


@dataclass(frozen=True)
class FileSpec:
    """One file to fetch, as written to its .part.json."""

    url: str
    dest: str
    size: int
    sha256: str | None
    repo_id: str = ""
    filename: str = ""
    # Anything the app wants back after a restart (the launch settings the plan suggested).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.dest)

    @property
    def part(self) -> Path:
        return self.path.with_name(self.path.name + ".part")

    @property
    def meta(self) -> Path:
        return self.path.with_name(self.path.name + ".part.json")


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    speed: float  # bytes per second, over the last few seconds
    eta_s: float | None
    phase: str  # "checking" (hashing a resumed part), "downloading", "verifying"
    file_index: int = 0
    file_count: int = 1


class Control:
    """Pause and cancel, from any thread; the download checks between chunks."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.cancelled = False

    def pause(self) -> None:
        self._stop.set()

    def cancel(self) -> None:
        self.cancelled = True
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def check(self) -> None:
        if self._stop.is_set():
            raise DownloadStopped(self.cancelled)

    def wait(self, seconds: float) -> None:
        self._stop.wait(seconds)
        self.check()


class Meter:
    """Speed over a sliding window, and progress reports at most every 0.1 s."""

    def __init__(self, report: Callable[[Progress], None], total: int, base: int = 0) -> None:
        self.report, self.total, self.base = report, total, base
        self.samples: deque[tuple[float, int]] = deque()
        self.last = 0.0

    def update(self, done: int, phase: str, index: int, count: int, force: bool = False) -> None:
        now = time.monotonic()
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > 3.0:
            self.samples.popleft()
        if not force and now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        t0, d0 = self.samples[0]
        speed = (done - d0) / (now - t0) if now > t0 and phase == "downloading" else 0.0
        left = self.total - (self.base + done)
        eta = left / speed if speed > 0 else None
        self.report(Progress(self.base + done, self.total, speed, eta, phase, index, count))
