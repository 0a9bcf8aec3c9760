"""The first ten minutes of a new user, walked in the real window on a laptop's screen
(1366 x 768, and 1280 x 720): pick, slide, scroll over the settings, load, three turns of
chat, Stop, regenerate, rename, export, a bad file. After every step the window must still
fit the screen (no widget's minimum size may follow its text), and what the user typed is
what is saved. Waits end on signals; HANG_GUARD_MS only stops a hang."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.core.launch.batching import BLAS_STOPS
from kobold_gui.ui.window.main_window import MainWindow
from tests.conftest import HANG_GUARD_MS

FRAME = (0, 40)  # what a window manager's title bar and a taskbar take at most


def fits(window: MainWindow, screen: tuple[int, int]) -> None:
    width, height = screen[0] - FRAME[0], screen[1] - FRAME[1]
    hint = window.minimumSizeHint()
    assert hint.width() <= width and hint.height() <= height, (hint, screen)
    window.resize(width, height)
    QApplication.processEvents()
    assert window.width() <= width and window.height() <= height, (window.size(), screen)


def wheel(widget: QWidget, steps: int = -3) -> None:
    """A mouse wheel turn over a widget that does not have the focus."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(
        centre,
        QPointF(widget.mapToGlobal(QPoint(int(centre.x()), int(centre.y())))),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def say(qtbot: QtBot, window: MainWindow, text: str) -> object:
    window.chat.input.setFocus()
    qtbot.keyClicks(window.chat.input, text)
    with qtbot.waitSignal(window.engine_controller.replyFinished, timeout=HANG_GUARD_MS) as done:
        qtbot.keyClick(window.chat.input, Qt.Key.Key_Return)
    return done.args[0]


@pytest.mark.parametrize("screen", [(1366, 768), (1280, 720)], ids=["1366x768", "1280x720"])
def test_the_first_ten_minutes(
    qtbot: QtBot, default_model: Path, tmp_path: Path, screen: tuple[int, int]
) -> None:
    window = MainWindow(initial_model=default_model)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(window.load_button.isEnabled, timeout=HANG_GUARD_MS)
    fits(window, screen)

    # Slide the batch size: the label shows what llama.cpp gets, and the form does not jump.
    height_before = window.launch.batch.effective_label.height()
    window.launch.batch.slider.setValue(BLAS_STOPS.index(2048))
    assert "n_ubatch 1024" in window.launch.batch.effective_label.text()
    assert window.launch.batch.effective_label.height() == height_before
    fits(window, screen)

    # Scrolling over the settings changes none of them.
    config = window.launch_config()
    for widget in (window.launch.context, window.launch.flash, window.launch.threads):
        wheel(widget)
    assert window.launch_config() == config

    # Load: the focus goes to the message box, not to the system prompt.
    system = window.chat.system_prompt.text()
    with qtbot.waitSignal(window.engine_controller.loaded, timeout=HANG_GUARD_MS):
        qtbot.mouseClick(window.load_button, Qt.MouseButton.LeftButton)
    assert window.focusWidget() is window.chat.input
    assert (window.loaded.n_batch, window.loaded.n_ubatch) == (2048, 1024)  # type: ignore[union-attr]
    fits(window, screen)

    # Three turns of chat: stats lines and buttons must not widen the window.
    window.sampling = SamplingParams(max_tokens=12, temperature=0)
    typed = ["Hello! Who are you?", "Name three colours.", "And three animals, please."]
    for text in typed:
        result = say(qtbot, window, text)
        assert result.generated_tokens > 0  # type: ignore[attr-defined]
        fits(window, screen)
    assert window.chat.system_prompt.text() == system  # nothing typed went there

    # Stop a long reply as soon as it streams.
    window.sampling = SamplingParams(max_tokens=100_000)
    window.chat.input.setFocus()
    qtbot.keyClicks(window.chat.input, "Tell me a very long story.")
    with qtbot.waitSignal(window.engine_controller.replyFinished, timeout=HANG_GUARD_MS) as stopped:
        with qtbot.waitSignal(window.engine_controller.text, timeout=HANG_GUARD_MS):
            qtbot.keyClick(window.chat.input, Qt.Key.Key_Return)
        qtbot.mouseClick(window.chat.stop_button, Qt.MouseButton.LeftButton)
    assert stopped.args[0].stop_reason == "stopped"
    fits(window, screen)

    # Regenerate (Ctrl+R): the earlier reply stays as a version.
    window.sampling = SamplingParams(max_tokens=12, temperature=0.8, seed=7)
    with qtbot.waitSignal(window.engine_controller.replyFinished, timeout=HANG_GUARD_MS):
        qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert window.chat.version_button.isVisible()
    fits(window, screen)

    # Rename, then export as JSON without typing the extension.
    window.tabs.setCurrentWidget(window.chats_tab)
    window.chat_list.rename("My first chat")
    qtbot.waitUntil(
        lambda: window.conversations.conversation.title == "My first chat", timeout=HANG_GUARD_MS
    )
    written = window.conversations.write_export(
        tmp_path / "first", "JSON, OpenAI messages (*.json)"
    )
    assert written.suffix == ".json"
    exported = json.loads(written.read_text(encoding="utf-8"))
    user_texts = [m["content"] for m in exported["messages"] if m["role"] == "user"]
    assert user_texts[:3] == typed
    fits(window, screen)

    # What was typed is what is saved (the file, read back as a new window would).
    conv = window.chats.load(window.conversations.conversation.id)
    assert [m.content for m in conv.messages if m.role == "user"][:3] == typed

    # A bad file: a clear message, the loaded model stays, the window still fits.
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model")
    with qtbot.waitSignal(window.models.infoFailed, timeout=HANG_GUARD_MS):
        window.choose_model(bad)
    assert window.models.notice.isVisibleTo(window.models) and window.loaded is not None
    assert "stays loaded" in window.statusBar().currentMessage()  # said where the user is
    assert window.models.recent.findData(str(bad)) < 0  # not added to the model list
    fits(window, screen)
    window.close()
