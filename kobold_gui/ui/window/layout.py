"""Where the window's panels sit: the tabs (Model, Chats, GPUs, Benchmark) on the left with
Load always in view below them, the chat on the right; and the window's size, the first
time one that fits the screen it opens on, later as the user left it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QGroupBox,
    QLabel,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.settings import AppSettings


class _VerticalScrollArea(QScrollArea):
    """Scrolls up and down only, so it is never narrower than its content's minimum width
    (with the horizontal bar off, a narrower area cut the content's right edge, and a
    focused field scrolled the left edge out of view)."""

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        inner = self.widget()
        if inner is None:
            return hint
        bar = self.verticalScrollBar().sizeHint().width()
        width = inner.minimumSizeHint().width() + bar + 2 * self.frameWidth()
        return QSize(max(hint.width(), width), hint.height())


def scrolled(widget: QWidget) -> QScrollArea:
    scroll = _VerticalScrollArea()
    scroll.setWidget(widget)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return scroll


def boxed(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    QVBoxLayout(box).addWidget(widget)
    return box


@dataclass
class WindowLayout:
    tabs: QTabWidget
    chats_tab: QWidget
    splitter: QSplitter
    backend_label: QLabel


def build_layout(
    window: QMainWindow,
    side: list[tuple[str, QWidget]],
    chats: tuple[QWidget, QWidget],
    tabs: list[tuple[str, QWidget]],
    load_bar: QWidget,
    chat: QWidget,
    plain_tabs: Sequence[tuple[str, QWidget]] = (),
) -> WindowLayout:
    """`side`: the Model tab's boxes; `chats`: the chat list and its sampling panel;
    `tabs`: more tabs (scrolled); `load_bar` below the tabs; `chat` on the right."""
    backend_label = QLabel("Backend: detecting…")
    backend_label.setObjectName("backendLabel")
    backend_label.setWordWrap(True)
    backend_label.setStyleSheet("color: palette(mid);")
    side_widget = QWidget()
    side_layout = QVBoxLayout(side_widget)
    for title, widget in side:
        side_layout.addWidget(boxed(title, widget))
    side_layout.addStretch(1)
    side_layout.addWidget(backend_label)

    chats_tab = QWidget()
    chats_layout = QVBoxLayout(chats_tab)
    chats_layout.setContentsMargins(0, 0, 0, 0)
    chats_layout.addWidget(chats[0], 1)
    # The sampling box scrolls once "More samplers" unfolds; folded, it shows whole.
    sampling = boxed("Sampling (this chat)", chats[1])
    sampling_area = scrolled(sampling)
    sampling_area.setFrameShape(QFrame.Shape.NoFrame)
    sampling_area.setMinimumHeight(sampling.sizeHint().height() + 4)
    chats_layout.addWidget(sampling_area, 1)
    tab_widget = QTabWidget()
    tab_widget.addTab(scrolled(side_widget), "Model")
    tab_widget.addTab(chats_tab, "Chats")
    for title, widget in tabs:
        tab_widget.addTab(scrolled(widget), title)
    for title, widget in plain_tabs:  # panels that lay out their own scrolling
        tab_widget.addTab(widget, title)
    left = QWidget()
    left_layout = QVBoxLayout(left)
    left_layout.setContentsMargins(0, 0, 4, 4)
    left_layout.addWidget(tab_widget, 1)
    left_layout.addWidget(load_bar)

    splitter = QSplitter()
    splitter.addWidget(left)
    splitter.addWidget(boxed("Chat", chat))
    splitter.setStretchFactor(0, 0)
    splitter.setStretchFactor(1, 1)
    splitter.setSizes([440, 740])
    window.setCentralWidget(splitter)
    return WindowLayout(tab_widget, chats_tab, splitter, backend_label)


def restore_geometry(window: QMainWindow, splitter: QSplitter, settings: AppSettings) -> None:
    """As the user left it; the first time, a size that fits the screen it opens on (a
    1366 x 768 laptop included, its taskbar and title bar left room)."""
    if settings.window_geometry:
        window.restoreGeometry(QByteArray.fromHex(settings.window_geometry.encode()))
    else:
        screen = QGuiApplication.primaryScreen()
        room = screen.availableGeometry() if screen else None
        width = min(1180, room.width() - 40) if room else 1180
        height = min(760, room.height() - 60) if room else 760
        window.resize(width, height)
    if len(settings.splitter_sizes) == 2:
        splitter.setSizes(settings.splitter_sizes)


def remember_geometry(window: QMainWindow, splitter: QSplitter, settings: AppSettings) -> None:
    settings.window_geometry = bytes(window.saveGeometry().toHex().data()).decode()
    settings.splitter_sizes = list(splitter.sizes())
