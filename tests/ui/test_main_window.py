"""The window end to end with the real engine: pick, configure, load, chat, stop, close."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from pytestqt.qtbot import QtBot

from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.core.launch.batching import BLAS_STOPS
from kobold_gui.core.settings import SettingsStore
from kobold_gui.ui.window.main_window import MainWindow
from tests.conftest import HANG_GUARD_MS

LOAD_TIMEOUT = 30_000


def open_window(qtbot: QtBot, model: Path | None = None) -> MainWindow:
    window = MainWindow(initial_model=model)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.load_button.isEnabled(), timeout=HANG_GUARD_MS)
    return window


def load(qtbot: QtBot, window: MainWindow) -> None:
    with qtbot.waitSignal(window.engine_controller.loaded, timeout=LOAD_TIMEOUT):
        qtbot.mouseClick(window.load_button, Qt.MouseButton.LeftButton)


def type_and_send(qtbot: QtBot, window: MainWindow, text: str) -> None:
    window.chat.input.setFocus()
    qtbot.keyClicks(window.chat.input, text)
    qtbot.keyClick(window.chat.input, Qt.Key.Key_Return)


def close(qtbot: QtBot, window: MainWindow) -> None:
    window.close()
    assert window.engine_controller.is_finished()


def test_opens_with_the_default_model_and_its_metadata(qtbot: QtBot, default_model: Path) -> None:
    window = open_window(qtbot)
    assert window.models.current == default_model
    labels = {k: v.text() for k, v in window.models.meta_labels.items()}
    assert labels["layers"] == "30" and labels["quantization"] == "Q4_1"
    assert labels["chat template"] == "yes"
    assert "CPU" in window.backend_label.text()
    close(qtbot, window)


def test_pick_slide_load_chat_stop(qtbot: QtBot, tiny_model: Path) -> None:
    window = open_window(qtbot, tiny_model)
    window.launch.batch.slider.setValue(BLAS_STOPS.index(2048))
    assert window.launch.batch.effective_label.text() == (
        "BLAS 2048 → n_batch 2048, n_ubatch 1024 (capped at 1024)"
    )
    load(qtbot, window)
    assert window.loaded is not None
    assert (window.loaded.n_batch, window.loaded.n_ubatch) == (2048, 1024)
    assert "n_ubatch 1024" in window.load_status.text()
    measured = window.split_editor.measured.text()
    assert "Measured after load:" in measured and "CPU" in measured  # llama.cpp's own sizes

    window.sampling = SamplingParams(max_tokens=100_000)
    chunks: list[str] = []
    window.engine_controller.text.connect(chunks.append)
    type_and_send(qtbot, window, "Tell me a long story")
    assert window.chat.input.toPlainText() == ""
    assert window.chat.stop_button.isEnabled() and not window.chat.send_button.isEnabled()
    # While the reply streams, nothing else may use the model.
    assert not window.unload_button.isEnabled() and not window.load_button.isEnabled()
    assert not window.benchmark.run_button.isEnabled()
    qtbot.waitUntil(lambda: len(chunks) >= 3, timeout=HANG_GUARD_MS)
    assert "Tell me a long story" in window.chat.transcript.toPlainText()
    with qtbot.waitSignal(
        window.engine_controller.replyFinished, timeout=HANG_GUARD_MS
    ) as finished:
        qtbot.mouseClick(window.chat.stop_button, Qt.MouseButton.LeftButton)
    result = finished.args[0]
    assert result.stop_reason == "stopped"
    assert "stopped by you" in window.chat.status.text()
    assert window.chat.history[-1].role == "assistant"
    assert window.chat.history[-1].content == "".join(chunks) == result.text
    # Replies render as Markdown (random tokens can contain its syntax): compare words.
    import re

    words = re.findall(r"[A-Za-z]{5,}", result.text)
    assert not words or words[-1] in window.chat.transcript.toPlainText()
    assert window.chat.send_button.isEnabled() and not window.chat.stop_button.isEnabled()
    assert window.unload_button.isEnabled() and window.benchmark.run_button.isEnabled()
    close(qtbot, window)


def test_a_full_reply_shows_speed_and_first_token_time(qtbot: QtBot, default_model: Path) -> None:
    window = open_window(qtbot, default_model)
    load(qtbot, window)
    window.sampling = SamplingParams(max_tokens=30, temperature=0)
    with qtbot.waitSignal(window.engine_controller.replyFinished, timeout=HANG_GUARD_MS):
        type_and_send(qtbot, window, "What is the capital of France?")
    assert "Paris" in window.chat.history[-1].content
    status = window.chat.status.text()
    assert "tokens/s" in status and "first token" in status
    close(qtbot, window)


def test_closing_mid_reply_stops_cleanly(qtbot: QtBot, tiny_model: Path) -> None:
    window = open_window(qtbot, tiny_model)
    load(qtbot, window)
    window.sampling = SamplingParams(max_tokens=100_000)
    with qtbot.waitSignal(window.engine_controller.text, timeout=HANG_GUARD_MS):
        type_and_send(qtbot, window, "go on forever")
    assert window.chat.streaming
    close(qtbot, window)  # qt_log_level_fail turns "QThread: Destroyed..." into a failure
    assert window.engine_controller.worker.engine.loaded is None


def test_bad_file_leaves_the_loaded_model_working(
    qtbot: QtBot, tiny_model: Path, bad_files: dict[str, Path]
) -> None:
    window = open_window(qtbot, tiny_model)
    load(qtbot, window)
    with qtbot.waitSignal(window.models.infoFailed, timeout=HANG_GUARD_MS):
        window.choose_model(bad_files["zip"])
    assert "zip archive" in window.models.notice.text() and window.models.notice.isVisible()
    assert not window.load_button.isEnabled()
    assert window.loaded is not None and window.chat.model_ready
    window.sampling = SamplingParams(max_tokens=5)
    with qtbot.waitSignal(window.engine_controller.replyFinished, timeout=HANG_GUARD_MS):
        type_and_send(qtbot, window, "still there?")
    assert window.chat.history[-1].role == "assistant"
    close(qtbot, window)


def test_unknown_architecture_is_refused_with_a_message(
    qtbot: QtBot, bad_files: dict[str, Path]
) -> None:
    window = open_window(qtbot)
    with qtbot.waitSignal(window.models.infoFailed, timeout=HANG_GUARD_MS):
        window.choose_model(bad_files["unknown_arch"])
    assert "alienformer" in window.models.notice.text()
    close(qtbot, window)


def test_empty_message_and_no_model_lose_nothing(qtbot: QtBot, tiny_model: Path) -> None:
    window = open_window(qtbot, tiny_model)
    type_and_send(qtbot, window, "   ")
    assert window.chat.status.text() == "Type a message first."
    window.chat.input.clear()
    type_and_send(qtbot, window, "hello before loading")
    assert window.chat.input.toPlainText() == "hello before loading"
    assert "Load a model first" in window.chat.status.text() and not window.chat.history
    close(qtbot, window)


def test_shift_enter_adds_a_line_instead_of_sending(qtbot: QtBot, tiny_model: Path) -> None:
    window = open_window(qtbot, tiny_model)
    load(qtbot, window)
    qtbot.keyClicks(window.chat.input, "line one")
    qtbot.keyClick(window.chat.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.chat.input, "line two")
    assert window.chat.input.toPlainText() == "line one\nline two" and not window.chat.history
    close(qtbot, window)


def drop_file(window: MainWindow, path: Path) -> None:
    """Drop a file on the window, as Qt delivers it (the mime data must outlive the call)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)


def test_dropping_a_file_selects_it(qtbot: QtBot, tiny_model: Path, default_model: Path) -> None:
    window = open_window(qtbot, default_model)
    with qtbot.waitSignal(window.models.infoReady, timeout=HANG_GUARD_MS):
        drop_file(window, tiny_model)
    assert window.models.current == tiny_model
    assert window.models.meta_labels["layers"].text() == "2"
    close(qtbot, window)


def test_cancel_a_load(qtbot: QtBot, default_model: Path) -> None:
    window = open_window(qtbot, default_model)
    with qtbot.waitSignal(window.engine_controller.loadFailed, timeout=LOAD_TIMEOUT) as failed:
        qtbot.mouseClick(window.load_button, Qt.MouseButton.LeftButton)
        assert window.cancel_button.isVisible() and window.progress.isVisible()
        qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    assert failed.args[1] is True  # cancelled
    assert "cancelled" in window.load_status.text() and window.loaded is None
    assert window.load_button.isEnabled() and not window.progress.isVisible()
    close(qtbot, window)


def test_recent_models_remember_their_launch_settings(
    qtbot: QtBot, tiny_model: Path, default_model: Path
) -> None:
    window = open_window(qtbot, tiny_model)
    window.launch.batch.set_blas(256)
    window.launch.context.setValue(2048)
    load(qtbot, window)
    close(qtbot, window)

    settings, warning = SettingsStore().load()
    assert warning is None and settings.recent[0].path == str(tiny_model)
    again = open_window(qtbot)  # reopens with the most recent model and its settings
    assert again.models.current == tiny_model
    assert (again.launch.batch.blas(), again.launch.context.value()) == (256, 2048)
    combo = again.models.recent
    assert combo.findData(str(tiny_model)) >= 0 and combo.findData(str(default_model)) >= 0
    close(qtbot, again)


def test_models_folder_is_listed(qtbot: QtBot, tiny_model: Path, tmp_path: Path) -> None:
    window = open_window(qtbot, tiny_model)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.gguf").write_bytes(b"GGUF")
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    (tmp_path / "notes.txt").write_text("x")
    window.models.set_folder(str(tmp_path))
    lst = window.models.folder_list
    qtbot.waitUntil(
        lambda: lst.count() == 2 and lst.item(0).text() == "a.gguf", timeout=HANG_GUARD_MS
    )
    assert lst.item(1).text() == "b.gguf"
    close(qtbot, window)


@pytest.mark.parametrize("content", ["{not json", '{"version": 99}'])
def test_broken_or_newer_settings_are_kept_aside(
    qtbot: QtBot, isolated_home: Path, content: str
) -> None:
    store = SettingsStore()
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(content)
    window = open_window(qtbot)
    assert window.models.current is not None  # the app works with defaults
    kept = list(store.path.parent.glob("settings.*-*.json"))
    assert len(kept) == 1 and kept[0].read_text() == content
    close(qtbot, window)


def test_the_app_collects_garbage_on_the_gui_thread_only(qapp: object) -> None:
    """Automatic collection could run on a worker thread and destroy widgets there."""
    import gc

    from kobold_gui.ui.app import gui_thread_gc

    gc.enable()
    gui_thread_gc(qapp)  # type: ignore[arg-type]
    assert not gc.isenabled()
    assert qapp.gui_gc.timer.isActive()  # type: ignore[attr-defined]
    qapp.gui_gc.timer.stop()  # type: ignore[attr-defined]
