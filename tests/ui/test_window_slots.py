"""The window's chat as one more client of the parallel slots: with a launch of several
sequences, a chat reply and an API stream through the window's running server generate at
the same time, each with its own text, and Stop ends only the chat's."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pytestqt.qtbot import QtBot

from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.slots import slots_for
from kobold_gui.core.engine.types import GenerationResult, SamplingParams
from kobold_gui.core.engine.worker import EngineWorker
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.server.state import ServerSettings
from kobold_gui.ui.engine.controller import EngineController
from kobold_gui.ui.server.panel import ServerPanel

API_PROMPT = "The capital of France is"
CHAT = [Message("user", "Name three colours.")]


@pytest.fixture(scope="module")
def worker(default_model: Path) -> Iterator[EngineWorker]:
    """Loaded as the window loads a launch with `parallel` 4 (one llama.cpp thread: batches
    of several sequences stay quick on a busy CPU)."""
    w = EngineWorker()
    config = LaunchConfig(contextsize=2048, threads=1, parallel=4)
    launch = resolve_launch(config, default_model, None, False)
    assert launch.n_seq_max == 4
    job = w.load(launch)
    assert job.wait(120) and job.error is None, job.error
    yield w
    assert w.close(30)


@pytest.fixture
def panel(qtbot: QtBot, worker: EngineWorker) -> Iterator[ServerPanel]:
    p = ServerPanel(worker)
    qtbot.addWidget(p)
    assert p.start(ServerSettings(port=0))
    yield p
    p.shutdown()


@pytest.fixture
def controller(worker: EngineWorker) -> EngineController:
    return EngineController(worker=worker)


class ApiStream:
    """One streaming /v1/completions on its own thread, as a front-end sends it."""

    def __init__(self, url: str, max_tokens: int) -> None:
        self.url, self.max_tokens = url, max_tokens
        self.parts: list[str] = []
        self.finish: str | None = None
        self.t_first = self.t_end = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        body = {
            "prompt": API_PROMPT, "max_tokens": self.max_tokens, "temperature": 0,
            "stream": True, "ignore_eos": True,
        }  # fmt: skip
        with httpx.stream("POST", self.url + "/v1/completions", json=body, timeout=300) as r:
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choice = json.loads(line[6:])["choices"][0]
                if choice.get("text"):
                    self.parts.append(choice["text"])
                    self.t_first = self.t_first or time.perf_counter()
                self.finish = choice.get("finish_reason") or self.finish
        self.t_end = time.perf_counter()

    def join(self) -> str:
        self.thread.join(300)
        assert not self.thread.is_alive()
        return "".join(self.parts)


def _chat(
    qtbot: QtBot, controller: EngineController, max_tokens: int, stop_after: int = 0
) -> tuple[str, GenerationResult, float]:
    """The window's reply: its text as the GUI gets it, its result, when its text came first;
    with `stop_after`, Stop once that many pieces came."""
    pieces: list[str] = []
    first = [0.0]

    def on_text(text: str) -> None:
        pieces.append(text)
        first[0] = first[0] or time.perf_counter()
        if stop_after and len(pieces) == stop_after:
            controller.stop()

    controller.text.connect(on_text)
    try:
        with qtbot.waitSignal(controller.replyFinished, timeout=300000) as done:
            controller.send(CHAT, SamplingParams(max_tokens=max_tokens, temperature=0))
    finally:
        controller.text.disconnect(on_text)
    return "".join(pieces), done.args[0], first[0]


def test_the_chat_and_an_api_stream_generate_together_each_with_its_own_text(
    qtbot: QtBot, panel: ServerPanel, controller: EngineController, worker: EngineWorker
) -> None:
    assert panel.server is not None and slots_for(worker).active()
    url = panel.server.base_url()
    api_alone = ApiStream(url, 24).join()
    chat_alone, _result, _t = _chat(qtbot, controller, 24)
    assert api_alone and chat_alone

    api = ApiStream(url, 48)
    qtbot.waitUntil(lambda: bool(api.parts), timeout=120000)
    chat, result, chat_first = _chat(qtbot, controller, 24)
    assert api.join().startswith(api_alone[:12]) and api.finish == "length"
    # The chat streamed while the API's stream ran: together, not one after the other.
    assert api.t_first < chat_first < api.t_end
    assert result.stop_reason == "length" and result.generated_tokens == 24
    assert chat == result.text and chat.startswith(chat_alone[:12])  # its own, not the API's
    assert API_PROMPT not in chat and chat_alone[:12] not in "".join(api.parts)


def test_stop_of_the_chat_leaves_the_api_stream_whole(
    qtbot: QtBot, panel: ServerPanel, controller: EngineController
) -> None:
    assert panel.server is not None
    api = ApiStream(panel.server.base_url(), 60)
    qtbot.waitUntil(lambda: bool(api.parts), timeout=120000)
    t_stop = time.perf_counter()
    chat, result, _first = _chat(qtbot, controller, 400, stop_after=2)
    assert result.stop_reason == "stopped" and 0 < result.generated_tokens < 400
    assert chat == result.text
    assert time.perf_counter() - t_stop < 60  # Stop is a step away, not the API's end
    api.join()
    assert api.finish == "length" and len(api.parts) >= 50  # every token of the API's reply
    assert api.t_end > t_stop


def test_launch_settings_show_what_parallel_chose_and_how_the_context_is_shared(
    qtbot: QtBot, default_model: Path
) -> None:
    from kobold_gui.core.models.gguf_info import read_gguf
    from kobold_gui.ui.launch.launch_panel import LaunchPanel

    panel = LaunchPanel()
    qtbot.addWidget(panel)
    panel.state.set_model(default_model, read_gguf(default_model))
    panel.state.set_backend(False, None)  # this machine: a CPU build
    note = panel.parallel_note.text()
    assert panel.parallel.specialValueText() == "auto" and panel.parallel.value() == 0
    assert note.startswith("auto: 1, requests queue (on the CPU")
    assert "One request at a time uses all 4096 tokens of context." in note
    panel.parallel.setValue(16)
    assert panel.config().parallel == 16 and panel.state.resolved is not None
    assert panel.state.resolved.n_seq_max == 16
    note = panel.parallel_note.text()
    assert note.startswith("16 (set; auto would queue: on the CPU, batching several requests")
    assert "16 requests at once share 4096 tokens of context" in note
    assert "output buffer in RAM grows by 2.81 MiB" in note
