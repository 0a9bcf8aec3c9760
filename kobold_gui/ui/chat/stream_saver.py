"""A streaming reply's text into the chat's journal, in batches: at most one write per
GUI_TO_DISK_S (core/engine/text_batcher.py has the table of every hop's interval), and a timer
writes what a pause in the stream left gathered, so nothing shown waits longer than that."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

from kobold_gui.core.engine.text_batcher import GUI_TO_DISK_S, TextBatcher


class StreamSaver(QObject):
    def __init__(self, write: Callable[[str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._batcher = TextBatcher(write, GUI_TO_DISK_S)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._due)

    def add(self, chunk: str) -> None:
        self._batcher.add(chunk)
        self._arm()

    def flush(self) -> None:
        """The reply ended (or the window closes): the rest is written now."""
        self._timer.stop()
        self._batcher.flush()

    def discard(self) -> None:
        self._timer.stop()
        self._batcher.discard()

    def _due(self) -> None:
        self._batcher.flush_if_due()
        self._arm()

    def _arm(self) -> None:
        wait = self._batcher.due_in()
        if wait is not None and not self._timer.isActive():
            self._timer.start(int(wait * 1000))
