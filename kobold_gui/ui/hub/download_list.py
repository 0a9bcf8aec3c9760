"""The downloads of the Find a model window: one row per model (all parts of a split one),
with a progress bar, speed, time left, Pause/Resume and Cancel. Rows for unfinished
downloads found on disk (after a restart) start paused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.hub.download import (
    Control,
    DownloadError,
    DownloadStopped,
    FileSpec,
    Progress,
    discard,
    download_files,
)
from kobold_gui.core.hub.search import describe_error
from kobold_gui.core.units import human_bytes
from kobold_gui.ui.common.net_jobs import NetJobs


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def describe_progress(p: Progress) -> str:
    part = f" (part {p.file_index + 1} of {p.file_count})" if p.file_count > 1 else ""
    amount = f"{human_bytes(p.done)} of {human_bytes(p.total)}"
    if p.phase == "checking":
        return f"Checking what was already downloaded… {amount}{part}"
    if p.phase == "verifying":
        return f"Checking the SHA-256 against the hub…{part}"
    if p.phase == "done":
        return f"{amount}{part}"
    speed = f"{human_bytes(p.speed)}/s" if p.speed else "starting…"
    left = f", {_duration(p.eta_s)} left" if p.eta_s is not None else ""
    return f"{amount} · {speed}{left}{part}"


class DownloadRow(QWidget):
    finished = Signal(object, object)  # first file's Path, the spec's extra dict
    removed = Signal(object)  # self

    def __init__(
        self,
        title: str,
        specs: list[FileSpec],
        jobs: NetJobs,
        session: Callable[[], tuple[Any, dict[str, str]]],
        done_bytes: int = 0,
    ) -> None:
        super().__init__()
        self.setObjectName("downloadRow")
        self.specs, self.jobs, self.session = specs, jobs, session
        self.control: Control | None = None
        self.title = QLabel(title)
        self.title.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        total = sum(s.size for s in specs)
        self.bar.setValue(round(1000 * done_bytes / total) if total else 0)
        self.stats = QLabel(f"Paused: {human_bytes(done_bytes)} of {human_bytes(total)}")
        self.stats.setObjectName("downloadStats")
        self.stats.setWordWrap(True)
        self.pause_button = QPushButton("Resume")
        self.cancel_button = QPushButton("Cancel")
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 2, 0, 2)
        grid.addWidget(self.title, 0, 0, 1, 3)
        grid.addWidget(self.bar, 1, 0)
        grid.addWidget(self.pause_button, 1, 1)
        grid.addWidget(self.cancel_button, 1, 2)
        grid.addWidget(self.stats, 2, 0, 1, 3)
        grid.setColumnStretch(0, 1)
        self.pause_button.clicked.connect(self._pause_or_resume)
        self.cancel_button.clicked.connect(self._cancel)

    @property
    def running(self) -> bool:
        return self.control is not None

    def start(self) -> None:
        if self.control is not None:
            return
        control = self.control = Control()
        client, headers = self.session()
        self.pause_button.setText("Pause")
        self.pause_button.setEnabled(True)
        self.stats.setText("Starting…")
        self.jobs.run(
            download_files,
            self.specs,
            client,
            headers,
            control,
            done=self._done,
            failed=self._failed,
            progress=self._progress,
            await_on_quit=True,  # it stops at its next chunk once paused
        )

    def pause(self) -> None:
        if self.control is not None:
            self.control.pause()
            self.pause_button.setEnabled(False)
            self.stats.setText("Pausing…")

    def _pause_or_resume(self) -> None:
        if self.control is None:
            self.start()
        else:
            self.pause()

    def _cancel(self) -> None:
        if self.control is not None:
            self.control.cancel()
            self.stats.setText("Cancelling…")
        else:  # paused: nothing runs, delete what was downloaded
            discard(self.specs)
            self.removed.emit(self)

    def _progress(self, p: Progress) -> None:
        if p.total:
            self.bar.setValue(round(1000 * p.done / p.total))
        self.stats.setText(describe_progress(p))

    def _done(self, paths: list[Path]) -> None:
        self.control = None
        self.bar.setValue(1000)
        self.stats.setText(f"Downloaded and verified (SHA-256): {paths[0].parent}")
        self.pause_button.hide()
        self.cancel_button.hide()
        self.finished.emit(paths[0], self.specs[0].extra)

    def _failed(self, error: BaseException) -> None:
        self.control = None
        self.pause_button.setEnabled(True)
        self.pause_button.setText("Resume")
        if isinstance(error, DownloadStopped):
            if error.cancelled:
                self.removed.emit(self)
                return
            self.stats.setText(f"Paused. {self.stats.text()}")
            return
        message = str(error) if isinstance(error, DownloadError) else describe_error(error)
        self.stats.setText(message)
        self.stats.setStyleSheet("color: #b00020;")


class DownloadList(QWidget):
    """The rows; `finished` carries each completed model's first file and its extra."""

    finished = Signal(object, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[DownloadRow] = []
        self.empty = QLabel("No downloads.")
        self.empty.setStyleSheet("color: palette(mid);")
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.addWidget(self.empty)
        self.layout_.setAlignment(Qt.AlignmentFlag.AlignTop)

    def add(self, row: DownloadRow) -> None:
        self.rows.append(row)
        self.empty.hide()
        self.layout_.addWidget(row)
        row.finished.connect(self.finished)
        row.removed.connect(self._remove)

    def row_for(self, dest: str) -> DownloadRow | None:
        return next((r for r in self.rows if any(s.dest == dest for s in r.specs)), None)

    def _remove(self, row: DownloadRow) -> None:
        self.rows.remove(row)
        row.deleteLater()
        self.empty.setVisible(not self.rows)

    def pause_all(self) -> None:
        for row in self.rows:
            row.pause()
