"""The `parallel` launch option: requests generate at once in slots (core/engine/slots.py),
through real clients against the real server on the default model."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.core.engine.worker import EngineWorker, Job
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import ResolvedLaunch, resolve_launch
from kobold_gui.server.runner import ApiServer

from .conftest import CONTEXT, start_server

SLOTS = 4
PROMPTS = [
    "The capital of France is",
    "Once upon a time, a dragon",
    "def fibonacci(n):",
    "The three primary colours are",
]


def _launch(model: Path, slots: int) -> ResolvedLaunch:
    """One llama.cpp thread: batches of several sequences stay quick on a busy CPU (two
    threads that wait for each other made a step take 10x longer here)."""
    launch = resolve_launch(LaunchConfig(contextsize=CONTEXT, threads=1), model, None, False)
    return dataclasses.replace(launch, n_seq_max=slots)


@pytest.fixture(scope="module")
def slot_worker(default_model: Path) -> Iterator[EngineWorker]:
    w = EngineWorker()
    launch = _launch(default_model, SLOTS)
    job = w.submit(Job("load", lambda engine, cancel: engine.load(launch, None, cancel)))
    assert job.wait(120) and job.error is None, job.error
    yield w
    assert w.close(30)


@pytest.fixture(scope="module")
def slot_server(slot_worker: EngineWorker) -> Iterator[ApiServer]:
    s = start_server(slot_worker)
    yield s
    s.stop()


@pytest.fixture
def client(slot_server: ApiServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=slot_server.base_url() + "/v1", api_key="-", max_retries=0)


class Stream:
    """One streaming completion on its own thread: its text, end and times."""

    def __init__(self, client: openai.OpenAI, prompt: str, **kw: object) -> None:
        self.client, self.prompt, self.kw = client, prompt, kw
        self.parts: list[str] = []
        self.finish: str | None = None
        self.t_first = self.t_end = 0.0
        self.close = threading.Event()  # set: the client leaves after its first piece
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        stream = self.client.completions.create(
            model="-", prompt=self.prompt, temperature=0, stream=True, **self.kw
        )
        for chunk in stream:
            choice = chunk.choices[0]
            if choice.text:
                self.parts.append(choice.text)
                self.t_first = self.t_first or time.monotonic()
            if self.close.is_set() and self.parts:
                stream.close()
                break
            self.finish = choice.finish_reason or self.finish
        self.t_end = time.monotonic()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def join(self) -> Stream:
        self.thread.join(60)
        assert not self.thread.is_alive(), f"{self.prompt!r} hung"
        return self


def _alone(client: openai.OpenAI, prompt: str, max_tokens: int) -> str:
    reply = client.completions.create(
        model="-", prompt=prompt, max_tokens=max_tokens, temperature=0
    )
    return reply.choices[0].text


def _wait_until(cond: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_concurrent_streams_each_get_their_own_whole_answer(client: openai.OpenAI) -> None:
    alone = {p: _alone(client, p, 24) for p in PROMPTS}
    assert len(set(alone.values())) == len(PROMPTS)  # distinct answers, so a mix-up shows
    streams = [Stream(client, p, max_tokens=24) for p in PROMPTS]
    for s in streams:
        s.join()
    differ = 0
    for s in streams:
        assert s.text and s.finish in ("length", "stop"), (s.prompt, s.text, s.finish)
        others = [alone[p] for p in PROMPTS if p != s.prompt]
        assert s.text not in others, f"{s.prompt!r} got another request's answer"
        # Greedy answers may differ slightly with the batch's make-up; they start alike.
        assert s.text[:4] == alone[s.prompt][:4], (s.text, alone[s.prompt])
        differ += s.text != alone[s.prompt]
    print(f"\n{differ} of {len(PROMPTS)} greedy answers differ from the same request alone")
    # They ran at once: every stream had text before any of them ended (a queue would not).
    assert max(s.t_first for s in streams) < min(s.t_end for s in streams)


def test_each_slot_has_its_own_stop_strings(client: openai.OpenAI) -> None:
    prompt = "1, 2, 3, 4,"
    assert "8" in _alone(client, prompt, 16)
    early = Stream(client, prompt, max_tokens=16, stop=["6"])
    late = Stream(client, prompt, max_tokens=16, stop=["8"])
    plain = Stream(client, prompt, max_tokens=16)
    for s in (early, late, plain):
        s.join()
    assert early.finish == "stop" and "6" not in early.text and "5" in early.text
    assert late.finish == "stop" and "8" not in late.text and "7" in late.text
    assert "8" in plain.text


def test_a_cancelled_stream_frees_its_slot_for_a_waiting_request(
    client: openai.OpenAI, slot_server: ApiServer
) -> None:
    long = {"max_tokens": 200, "extra_body": {"ignore_eos": True}}
    slots = slot_server.state.slots
    assert slots is not None
    busy = [Stream(client, p, **long) for p in PROMPTS]  # type: ignore[arg-type]
    try:
        _wait_until(lambda: slots.running == SLOTS and all(s.parts for s in busy), "4 slots")
        fifth = Stream(client, "Hello, my name is", max_tokens=6)
        _wait_until(lambda: slot_server.state.waiting() == 1, "the fifth request to wait")
        assert not fifth.parts  # every slot is taken
        busy[0].close.set()  # its client leaves: the slot is freed, the fifth takes it
        fifth.join()
        assert fifth.text and fifth.finish in ("length", "stop")
        assert all(s.thread.is_alive() for s in busy[1:])  # served beside them, not after
    finally:
        for s in busy:
            s.close.set()
        for s in busy:
            s.join()
    _wait_until(lambda: slots.running == 0 and not slot_server.state.busy(), "slots to empty")


def test_a_prompt_that_starts_alike_reuses_a_slots_cache(
    client: openai.OpenAI, slot_server: ApiServer
) -> None:
    story = "A story about a cat who learns to fly, told in short sentences:"
    first = _alone(client, story, 8)
    assert slot_server.state.last is not None
    assert slot_server.state.last.prompt_tokens_processed == slot_server.state.last.prompt_tokens
    _alone(client, story + first, 8)  # the next turn: only its new tokens are decoded
    last = slot_server.state.last
    assert 0 < last.prompt_tokens_processed < last.prompt_tokens - 5, last


def test_the_window_is_served_between_the_apis_batches(
    client: openai.OpenAI, slot_server: ApiServer, slot_worker: EngineWorker
) -> None:
    alone = _alone(client, PROMPTS[0], 12)
    busy = [Stream(client, p, max_tokens=40) for p in PROMPTS[1:]]
    _wait_until(lambda: all(s.parts for s in busy), "the API's streams")

    def chat(engine: object, cancel: threading.Event) -> str:
        tokens = engine.tokenize(PROMPTS[0])  # type: ignore[attr-defined]
        params = SamplingParams(temperature=0, max_tokens=12)
        return str(engine.generate(tokens, params, lambda _t: None, cancel).text)  # type: ignore[attr-defined]

    job = slot_worker.submit(Job("chat", chat))  # what the window's chat does
    assert job.wait(60) and job.error is None
    # The engine's own path gives the same start (greedy results may differ a little
    # with how the batch was made up).
    assert isinstance(job.result, str) and job.result[:6] == alone[:6]
    for s in busy:
        assert s.join().text and s.finish in ("length", "stop")
    assert _alone(client, PROMPTS[0], 12)[:6] == alone[:6]
    last = slot_server.state.last  # the window's chat used the context: no cache is trusted
    assert last is not None and last.prompt_tokens_processed == last.prompt_tokens


def test_unload_ends_running_and_waiting_requests_with_503(default_model: Path) -> None:
    worker = EngineWorker()
    launch = _launch(default_model, 2)
    assert worker.submit(Job("load", lambda e, c: e.load(launch, None, c))).wait(120)
    server = start_server(worker)
    url = server.base_url() + "/api/v1/generate"
    body = {"prompt": "A long story:", "max_length": 400, "ban_eos_token": True}
    try:
        with ThreadPoolExecutor(3) as pool:
            answers = [pool.submit(httpx.post, url, json=body, timeout=60) for _ in range(3)]
            _wait_until(lambda: server.state.slots.running == 2, "two slots")
            _wait_until(lambda: server.state.waiting() == 1, "the third to wait")
            unload = worker.submit(Job("unload", lambda engine, _cancel: engine.close()))
            for answer in answers:
                r = answer.result(timeout=60)
                assert r.status_code == 503 and "unloaded" in r.json()["detail"]["msg"]
        assert unload.wait(60) and worker.loaded is None
    finally:
        server.stop()
        assert worker.close(30)


def test_props_say_how_many_slots(slot_server: ApiServer) -> None:
    props = httpx.get(slot_server.base_url() + "/props", timeout=10).json()
    assert props["total_slots"] == SLOTS


def test_multiuser_0_answers_503_only_when_every_slot_is_busy(
    client: openai.OpenAI, slot_worker: EngineWorker
) -> None:
    server = start_server(slot_worker, multiuser=0)
    url = server.base_url() + "/api/v1/generate"
    body = {"prompt": "A long story:", "max_length": 200, "ban_eos_token": True}
    try:
        with ThreadPoolExecutor(SLOTS) as pool:
            running = [pool.submit(httpx.post, url, json=body, timeout=60) for _ in range(SLOTS)]
            _wait_until(lambda: server.state.count() == SLOTS, "every slot taken")
            extra = httpx.post(url, json=body, timeout=60)
            assert extra.status_code == 503 and "busy" in extra.text
            for gen in server.state.all_active():
                gen.cancel()
            assert all(r.result(timeout=60).status_code == 200 for r in running)
    finally:
        server.stop()


def test_logprobs_are_each_slots_own(client: openai.OpenAI) -> None:
    def ask(prompt: str) -> openai.types.Completion:
        return client.completions.create(
            model="-", prompt=prompt, max_tokens=6, temperature=0, logprobs=2
        )

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(ask, PROMPTS[:2]))
    for reply in replies:
        lp = reply.choices[0].logprobs
        assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
        assert "".join(lp.tokens) == reply.choices[0].text  # this reply's tokens, in order
        assert all(x is not None and x <= 0 for x in lp.token_logprobs)
        # greedy: the chosen token is the most likely one at its place
        assert all(tok in top for tok, top in zip(lp.tokens, lp.top_logprobs, strict=True))
