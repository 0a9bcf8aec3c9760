"""One model, shared: concurrent clients queue fairly and get intact answers; unloading
answers waiting clients at once; too many waiting clients get the busy error."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai

from kobold_gui.core.engine.worker import EngineWorker, Job, ModelUnavailable
from kobold_gui.server.runner import ApiServer

from .conftest import load_default, start_server


def _stream_chat(url: str, n: int) -> str:
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": f"Count from {n} to {n + 5}."}],
        max_tokens=10,
        temperature=0,
        seed=1,
        stream=True,
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_eight_concurrent_streams_are_complete_and_intact(server: ApiServer) -> None:
    url = server.base_url()
    alone = [_stream_chat(url, n) for n in range(8)]
    assert len(set(alone)) > 1  # different prompts, different answers: a mix-up would show
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda n: _stream_chat(url, n), range(8)))
    assert together == alone
    snapshot = server.state.activity.snapshot()
    assert snapshot.running == 0 and snapshot.queued == 0
    assert all(r.status == "done" for r in snapshot.records[:8])


def _generate(url: str, max_length: int, key: str = "") -> httpx.Response:
    body = {
        "prompt": "Tell a story.",
        "max_length": max_length,
        "genkey": key,
        "ban_eos_token": True,
    }
    return httpx.post(url + "/api/v1/generate", json=body, timeout=300)


def _wait_until(check: object, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_busy_server_answers_503_beyond_the_queue(worker: EngineWorker) -> None:
    server = start_server(worker, multiuser=2)  # one running, one waiting
    try:
        url = server.base_url()
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(_generate, url, 300, "first")
            _wait_until(lambda: server.state.running() is not None, "the first to run")
            second = pool.submit(_generate, url, 2)
            _wait_until(lambda: server.state.waiting() == 1, "the second to wait")
            third = _generate(url, 2)
            assert third.status_code == 503
            assert third.json()["detail"]["msg"] == "Server is busy; please try again later."
            httpx.post(url + "/api/extra/abort", json={"genkey": "first"})
            assert first.result().status_code == 200
            assert second.result().status_code == 200
    finally:
        server.stop()


def test_unload_answers_waiting_clients_with_503(default_model: Path) -> None:
    worker = EngineWorker()
    load_default(worker, default_model)
    server = start_server(worker)
    url = server.base_url()
    try:
        events: list[dict[str, object]] = []

        def stream() -> None:
            body = {"prompt": "A long story:", "max_length": 300, "ban_eos_token": True}
            with httpx.stream("POST", url + "/api/extra/generate/stream", json=body) as r:
                events.extend(json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data:"))

        streaming = threading.Thread(target=stream)
        streaming.start()
        _wait_until(lambda: any(r.tokens for r in server.state.activity.snapshot().records), "text")
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(_generate, url, 5)
            _wait_until(lambda: server.state.waiting() == 1, "the second request to wait")
            unload = worker.submit(Job("unload", lambda engine, _cancel: engine.close()))
            answer = waiting.result(timeout=60)
        assert answer.status_code == 503
        assert "unloaded" in answer.json()["detail"]["msg"]
        streaming.join(60)
        assert not streaming.is_alive()
        assert events[-1]["finish_reason"] == "error" and "unloaded" in str(events[-1]["error"])
        assert unload.wait(60) and worker.loaded is None
        after = _generate(url, 5)
        assert after.status_code == 503 and "no model is loaded" in after.json()["detail"]["msg"]
        chat = httpx.post(url + "/v1/chat/completions", json={"messages": [{"role": "user"}]})
        assert chat.status_code == 503 and chat.json()["error"]["type"] == "service_unavailable"
    finally:
        server.stop()
        assert worker.close(30)


def test_a_waiting_job_cancelled_leaves_the_queue_at_once(worker: EngineWorker) -> None:
    gate = threading.Event()
    blocker = worker.submit(Job("call", lambda _e, _c: gate.wait(60)))
    _wait_until(lambda: worker.running() is blocker, "the blocker to start")
    waiting = worker.submit(Job("chat", lambda _e, _c: "never run", client="api"))
    assert worker.queued() == [waiting]
    worker.cancel(waiting)
    assert waiting.done and waiting.result is None and worker.queued() == []
    gate.set()
    assert blocker.wait(60) and blocker.result is True


def test_jobs_run_in_the_order_they_came(worker: EngineWorker) -> None:
    order: list[int] = []
    gate = threading.Event()
    first = worker.submit(Job("call", lambda _e, _c: gate.wait(60)))
    jobs = [
        worker.submit(Job("call", lambda _e, _c, i=i: order.append(i), client=f"c{i % 3}"))
        for i in range(6)
    ]
    gate.set()
    assert first.wait(60) and all(j.wait(60) for j in jobs)
    assert order == list(range(6))


def test_a_failing_job_does_not_stop_the_worker(worker: EngineWorker) -> None:
    def boom(_e: object, _c: object) -> None:
        raise ValueError("bug")

    bad = worker.submit(Job("call", boom))
    assert bad.wait(60) and isinstance(bad.error, ValueError)
    good = worker.submit(Job("call", lambda engine, _c: engine.loaded is not None))
    assert good.wait(60) and good.result is True
    assert not isinstance(good.error, ModelUnavailable)


def test_a_hundred_requests_at_once_get_answers_or_the_busy_error(server: ApiServer) -> None:
    url = server.base_url()
    body = {"prompt": "Hi", "max_length": 1, "temperature": 0}
    with ThreadPoolExecutor(100) as pool:
        answers = list(
            pool.map(
                lambda _i: httpx.post(url + "/api/v1/generate", json=body, timeout=300), range(100)
            )
        )
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 503} and codes.count(200) >= 1
    busy = [a.json()["detail"]["msg"] for a in answers if a.status_code == 503]
    assert all(m == "Server is busy; please try again later." for m in busy)
    assert server.state.waiting() == 0 and not server.state.busy()
    assert httpx.post(url + "/api/v1/generate", json=body, timeout=300).status_code == 200


def test_reload_stops_the_reply_and_answers_waiting_clients(default_model: Path) -> None:
    from kobold_gui.core.launch.options import LaunchConfig
    from kobold_gui.core.launch.resolve import resolve_launch

    worker = EngineWorker()
    load_default(worker, default_model)
    server = start_server(worker)
    url = server.base_url()
    try:
        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(_generate, url, 300)
            _wait_until(lambda: server.state.running() is not None, "the first to run")
            waiting = pool.submit(_generate, url, 5)
            _wait_until(lambda: server.state.waiting() == 1, "the second to wait")
            launch = resolve_launch(LaunchConfig(contextsize=512), default_model, None, False)
            reload = worker.submit(Job("load", lambda e, c: e.load(launch, None, c)))
            for answer in (running.result(60), waiting.result(60)):
                assert answer.status_code == 503
                assert "replaced" in answer.json()["detail"]["msg"]
        assert reload.wait(120) and reload.error is None
        assert httpx.get(url + "/api/v1/config/max_context_length").json() == {"value": 512}
        assert _generate(url, 3).status_code == 200
    finally:
        server.stop()
        assert worker.close(30)


def test_a_waiting_client_that_leaves_frees_its_place_at_once(server: ApiServer) -> None:
    url, state = server.base_url(), server.state
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(_generate, url, 200, "long-one")
        _wait_until(lambda: state.running() is not None, "the first to run")
        body = {"prompt": "x", "max_length": 5}
        try:  # gives up while waiting for its first token: the connection closes
            with httpx.stream(
                "POST", url + "/api/extra/generate/stream", json=body, timeout=1.0
            ) as r:
                r.read()
        except httpx.ReadTimeout:
            pass
        _wait_until(lambda: state.waiting() == 0, "the place to be freed")
        records = state.activity.snapshot().records
        assert any(r.status == "disconnected" and r.tokens == 0 for r in records)
        assert state.running() is not None  # the first goes on
        httpx.post(url + "/api/extra/abort", json={"genkey": "long-one"})
        assert first.result(60).status_code == 200
