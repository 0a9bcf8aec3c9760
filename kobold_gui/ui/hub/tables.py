"""The two tables of Find a model: search results (repository, downloads, likes, updated)
and a repository's files (size, how each runs on this computer, a Download button)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from kobold_gui.core.hub.fit import Fit
from kobold_gui.core.hub.remote_gguf import FetchStats
from kobold_gui.core.hub.search import ModelEntry, RepoSummary
from kobold_gui.core.models.gguf_info import GGUFInfo
from kobold_gui.core.units import human_bytes, human_count

LEVEL_COLORS = {"gpu": "#1b7f3b", "partial": "#9a6700", "too-big": "#b00020"}
DATA_ROLE = Qt.ItemDataRole.UserRole
READING = "reading its header…"


def _ago(when: datetime | None) -> str:
    if when is None:
        return "—"
    days = (datetime.now(timezone.utc) - when).days
    if days < 1:
        return "today"
    if days < 60:
        return f"{days} day{'s' if days > 1 else ''} ago"
    return when.strftime("%Y-%m-%d")


def _item(text: str, tip: str = "", align_right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if tip:
        item.setToolTip(tip)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def _style(table: QTableWidget) -> None:
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().hide()
    table.setAlternatingRowColors(True)


class ResultsTable(QTableWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 4, parent)
        self.setObjectName("hubResults")
        self.setHorizontalHeaderLabels(["Repository", "Downloads", "Likes", "Updated"])
        _style(self)
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)

    def show_results(self, found: list[RepoSummary]) -> None:
        self.setRowCount(0)
        for r in found:
            row = self.rowCount()
            self.insertRow(row)
            name = r.repo_id + ("  (gated: needs a token)" if r.gated else "")
            name += "  (private)" if r.private else ""
            item = _item(name, "Needs an access token" if r.gated else "")
            item.setData(DATA_ROLE, r.repo_id)
            self.setItem(row, 0, item)
            self.setItem(row, 1, _item(human_count(r.downloads), str(r.downloads), True))
            self.setItem(row, 2, _item(str(r.likes), "", True))
            self.setItem(row, 3, _item(_ago(r.updated), str(r.updated or "")))
        self.resizeColumnsToContents()
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)

    def selected_repo(self) -> str | None:
        rows = self.selectionModel().selectedRows()
        item = self.item(rows[0].row(), 0) if rows else None
        return str(item.data(DATA_ROLE)) if item is not None else None


class FilesTable(QTableWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 4, parent)
        self.setObjectName("hubFiles")
        self.setHorizontalHeaderLabels(["File", "Size", "On this computer", ""])
        _style(self)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.setColumnWidth(0, 330)
        self.setWordWrap(True)

    def add_entry(self, entry: ModelEntry, download: Callable[[ModelEntry], object]) -> int:
        """A row for the entry (its fit still being read); returns the row."""
        row = self.rowCount()
        self.insertRow(row)
        name = _item(entry.label, "\n".join(f.name for f in entry.files))
        name.setData(DATA_ROLE, entry)
        self.setItem(row, 0, name)
        self.setItem(row, 1, _item(human_bytes(entry.size), "", True))
        button = QPushButton("Download")
        button.setObjectName("downloadButton")
        button.clicked.connect(lambda _=False: download(entry))
        self.setCellWidget(row, 3, button)
        text = "vision projector: used beside a model, not on its own" if entry.projector else ""
        self.setItem(row, 2, _item(text or READING))
        self.resizeColumnToContents(3)
        return row

    def show_fit(self, row: int, info: GGUFInfo, fit: Fit, stats: FetchStats) -> None:
        tip = (
            f"{info.quantization}, {info.n_layers} layers, {human_count(info.n_params)} "
            f"parameters, trained context {info.context_length or '—'}\n{fit.detail}\n"
            f"(read {human_bytes(stats.bytes_read)} of the header in {stats.requests} "
            f"request{'s' if stats.requests > 1 else ''})"
        )
        item = _item(fit.summary, tip)
        color = LEVEL_COLORS.get(fit.level)
        if color:
            item.setForeground(QBrush(QColor(color)))
        self.setItem(row, 2, item)
        self.resizeRowToContents(row)

    def show_failure(self, row: int, message: str) -> None:
        item = _item(message.split("\n")[0], message)
        item.setForeground(QBrush(QColor(LEVEL_COLORS["too-big"])))
        self.setItem(row, 2, item)
