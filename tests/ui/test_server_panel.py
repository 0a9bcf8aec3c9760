"""The Server panel and the window's engine controller sharing one model with the API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pytestqt.qtbot import QtBot

from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.types import GenerationResult, SamplingParams
from kobold_gui.core.engine.worker import EngineWorker, Job
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.server.state import ServerSettings
from kobold_gui.ui.engine.controller import EngineController
from kobold_gui.ui.server.panel import ServerPanel


@pytest.fixture(scope="module")
def worker(default_model: Path) -> Iterator[EngineWorker]:
    w = EngineWorker()
    launch = resolve_launch(LaunchConfig(contextsize=1024), default_model, None, False)
    job = w.submit(Job("load", lambda engine, cancel: engine.load(launch, None, cancel)))
    assert job.wait(120) and job.error is None
    yield w
    assert w.close(30)


@pytest.fixture
def panel(qtbot: QtBot, worker: EngineWorker) -> Iterator[ServerPanel]:
    p = ServerPanel(worker)
    qtbot.addWidget(p)
    assert p.start(ServerSettings(port=0))
    yield p
    p.shutdown()


def _generate(url: str, max_length: int, key: str = "") -> httpx.Response:
    body = {"prompt": "Story:", "max_length": max_length, "ban_eos_token": True, "genkey": key}
    return httpx.post(url + "/api/v1/generate", json=body, timeout=300)


def test_panel_shows_urls_and_live_activity(qtbot: QtBot, panel: ServerPanel) -> None:
    assert panel.server is not None
    url = panel.server.base_url()
    assert panel.kobold_url.text() == url and panel.openai_url.text() == url + "/v1"
    assert panel.port.value() == panel.server.port
    assert "Serving on" in panel.status.text() and not panel.port.isEnabled()
    with ThreadPoolExecutor(1) as pool:
        reply = pool.submit(_generate, url, 6)
        qtbot.waitUntil(lambda: panel.table.rowCount() >= 1, timeout=60000)
        assert reply.result(120).status_code == 200
    qtbot.waitUntil(lambda: panel.table.item(0, 2).text() == "done", timeout=60000)
    assert panel.table.item(0, 3).text() == "6"
    assert panel.table.item(0, 5).text().endswith("ms")
    assert "1 request" in panel.counts.text() and "Running 0" in panel.counts.text()
    bad = httpx.post(url + "/v1/chat/completions", json={"messages": []}, timeout=60)
    assert bad.status_code == 400
    qtbot.waitUntil(lambda: "1 error" in panel.counts.text(), timeout=60000)
    status = panel.table.item(0, 2)
    assert status.text() == "error 400" and "messages" in status.toolTip()
    assert "messages" in panel.last_error.text() and panel.last_error.isVisibleTo(panel)
    assert panel.table.item(0, 1).text() == "OpenAI chat"


def test_lan_address_warns_and_stop_frees_the_port(qtbot: QtBot, panel: ServerPanel) -> None:
    with qtbot.waitSignal(panel.servingChanged, timeout=60000) as stopped:
        panel.stop()
    assert stopped.args == [False]
    assert panel.port.isEnabled() and panel.status.text() == "Not serving."
    panel.host.setEditText("0.0.0.0")
    assert panel.warning.isVisibleTo(panel) and "anyone" in panel.warning.text()
    panel.host.setEditText("127.0.0.1")
    assert not panel.warning.isVisibleTo(panel)


def test_port_in_use_is_shown_not_raised(qtbot: QtBot, worker: EngineWorker) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        p = ServerPanel(worker)
        qtbot.addWidget(p)
        assert not p.start(ServerSettings(port=taken.getsockname()[1]))
    assert "already in use" in p.status.text() and p.server is None


@pytest.fixture
def controller(qtbot: QtBot, worker: EngineWorker) -> Iterator[EngineController]:
    c = EngineController(worker=worker)
    yield c


def _long_chat() -> tuple[list[Message], SamplingParams]:
    return [Message("user", "Tell a story.")], SamplingParams(max_tokens=300, ban_eos=True)


def test_window_stop_while_waiting_leaves_the_api_reply_whole(
    qtbot: QtBot, panel: ServerPanel, controller: EngineController
) -> None:
    assert panel.server is not None
    url, state = panel.server.base_url(), panel.server.state
    with ThreadPoolExecutor(1) as pool:
        api: Future[httpx.Response] = pool.submit(_generate, url, 40)
        qtbot.waitUntil(lambda: state.running() is not None, timeout=60000)
        with qtbot.waitSignal(controller.replyFinished, timeout=60000) as finished:
            controller.send(*_long_chat())  # waits behind the API request
            controller.stop()
        result: GenerationResult = finished.args[0]
        assert result.stop_reason == "stopped" and result.generated_tokens == 0
        answer = api.result(300).json()["results"][0]
    assert answer["completion_tokens"] == 40


def test_window_stop_while_running_ends_only_the_window_reply(
    qtbot: QtBot, panel: ServerPanel, controller: EngineController
) -> None:
    assert panel.server is not None
    url, state = panel.server.base_url(), panel.server.state
    texts: list[str] = []
    controller.text.connect(texts.append)
    with qtbot.waitSignal(controller.replyFinished, timeout=120000) as finished:
        controller.send(*_long_chat())
        qtbot.waitUntil(lambda: bool(texts), timeout=60000)
        with ThreadPoolExecutor(1) as pool:
            api = pool.submit(_generate, url, 5)
            qtbot.waitUntil(lambda: state.waiting() == 1, timeout=60000)
            controller.stop()
            assert api.result(300).json()["results"][0]["completion_tokens"] == 5
    assert finished.args[0].stop_reason == "stopped"
    assert finished.args[0].generated_tokens < 300
    assert threading.active_count() > 0
