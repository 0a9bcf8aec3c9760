"""The window with its model on another machine that freezes mid-reply (a real llama.cpp RPC
server stopped with SIGSTOP): Stop ends the reply within a second and says why, the partial
reply stays, Load is offered again; closing the window leaves no engine process behind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from kobold_gui.core.engine.child import ChildEngine
from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.ui.window.main_window import MainWindow
from tests.conftest import HANG_GUARD_MS
from tests.core.test_hung_machine import STOP_BOUND_S, frozen_on_resume, pid_alive, wait_gone
from tests.rpc_servers import RpcServer, rpc_servers
from tests.ui.test_conversations import loaded_on_a_machine

# Far above the 1 s that Stop takes, far below "never": a broken Stop fails, not hangs.
STOP_GUARD_MS = 20_000


@contextmanager
def replying_over_a_frozen_machine(
    qtbot: QtBot, model: Path, tmp_path: Path
) -> Iterator[tuple[MainWindow, RpcServer, int]]:
    """A window whose model is all on one machine, which is frozen once the reply has
    streamed its first text; yields the window, the machine and the engine child's pid."""
    with rpc_servers(tmp_path, 1) as (server,), frozen_on_resume(server) as freeze:
        window = loaded_on_a_machine(qtbot, model, server.endpoint)
        engine = window.engine_controller.worker.engine
        assert isinstance(engine, ChildEngine) and engine._child is not None
        child_pid = engine._child.pid
        window.sampling = SamplingParams(max_tokens=5000, temperature=1.0, seed=3, ban_eos=True)
        frozen: list[bool] = []

        def first_text(_text: str) -> None:
            if not frozen:
                frozen.append(True)
                freeze()

        window.engine_controller.text.connect(first_text)
        window.chat.input.setPlainText("Tell me a long story.")
        window.chat.send()
        qtbot.waitUntil(lambda: bool(frozen), timeout=HANG_GUARD_MS)
        qtbot.wait(1000)  # the engine is stuck in the frozen machine by now
        yield window, server, child_pid


def test_stop_ends_a_reply_over_a_frozen_machine_within_a_second(
    qtbot: QtBot, tiny_model: Path, tmp_path: Path
) -> None:
    with replying_over_a_frozen_machine(qtbot, tiny_model, tmp_path) as (window, server, pid):
        assert window.chat.stop_button.isEnabled() and not window.load_button.isEnabled()
        with qtbot.waitSignal(window.engine_controller.replyFailed, timeout=STOP_GUARD_MS) as cut:
            clicked = time.monotonic()
            qtbot.mouseClick(window.chat.stop_button, Qt.MouseButton.LeftButton)
        took = time.monotonic() - clicked
        assert took < STOP_BOUND_S, f"Stop took {took:.1f} s"
        reason = cut.args[0]
        assert f"{server.endpoint} stopped answering" in reason
        assert "did not answer Stop" in reason
        partial = window.chat.history[-1]
        assert partial.role == "assistant" and partial.content  # kept, marked as cut
        assert window.chat.transcript.toPlainText().endswith(
            f"Reply cut off: {reason} · Continue finishes it"
        )
        # The reply's end enables Load before the engine's loss is handled: wait for both.
        qtbot.waitUntil(
            lambda: window.load_button.isEnabled() and window.loaded is None,
            timeout=STOP_GUARD_MS,
        )
        assert not window.unload_button.isEnabled()
        assert server.endpoint in window.load_bar.status.text()  # the bar says why
        assert wait_gone(pid, 2.0), "the engine child is still running"
        window.close()


def test_closing_the_window_mid_reply_over_a_frozen_machine_leaves_no_child(
    qtbot: QtBot, tiny_model: Path, tmp_path: Path
) -> None:
    with replying_over_a_frozen_machine(qtbot, tiny_model, tmp_path) as (window, _server, pid):
        assert pid_alive(pid)
        closing = time.monotonic()
        window.close()
        took = time.monotonic() - closing
        assert wait_gone(pid, 2.0), "the engine child outlived the window"
        assert took < STOP_BOUND_S + 2.0, f"closing took {took:.1f} s"
