"""KoboldCPP's helper endpoints, llama-server's /props, logprobs, SSE framing, and inputs
that used to break the server: real clients against the real server on the default model."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import openai
import pytest

from kobold_gui.server.exposure import exposure_warning
from kobold_gui.server.runner import ApiServer

from .conftest import CONTEXT, start_server


@pytest.fixture
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url(), timeout=120) as c:
        yield c


def test_tokenize_and_detokenize_round_trip(client: httpx.Client) -> None:
    ids = client.post("/api/extra/tokenize", json={"prompt": "Hello world"}).json()["ids"]
    assert (
        ids
        and client.post("/api/extra/tokencount", json={"prompt": "Hello world"}).json()["ids"]
        == ids
    )
    back = client.post("/api/extra/detokenize", json={"ids": ids}).json()
    assert back == {"result": "Hello world", "success": True}
    bad = client.post("/api/extra/detokenize", json={"ids": [10**9]})
    assert bad.status_code == 400 and "token ids" in bad.json()["detail"]["msg"]


def test_props_and_model_by_id_answer_what_front_ends_read(
    client: httpx.Client, server: ApiServer
) -> None:
    props = client.get("/props").json()
    assert props["default_generation_settings"]["n_ctx"] == CONTEXT
    assert props["total_slots"] == 1 and "{%" in props["chat_template"]
    oai = openai.OpenAI(base_url=server.base_url() + "/v1", api_key="x")
    listed = oai.models.list().data[0].id
    assert oai.models.retrieve(listed).id == listed
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("no-such-model")


def test_json_to_grammar_and_preloadstory(client: httpx.Client) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    out = client.post("/api/extra/json_to_grammar", json={"schema": schema}).json()
    assert out["success"] is True and "root ::=" in out["result"]
    bad = client.post("/api/extra/json_to_grammar", json={"schema": {"type": "nonsense"}})
    assert bad.status_code == 400 and "json_schema" in bad.json()["detail"]["msg"]
    assert client.get("/api/extra/preloadstory").json() == {}


def test_logprobs_in_both_apis_and_last_logprobs(client: httpx.Client, server: ApiServer) -> None:
    body = {"prompt": "The sky is", "max_length": 6, "temperature": 0, "logprobs": True}
    result = client.post("/api/v1/generate", json=body).json()["results"][0]
    lp = result["logprobs"]
    assert "".join(lp["tokens"]) == result["text"]
    assert all(v <= 0 for v in lp["token_logprobs"]) and len(lp["top_logprobs"][0]) == 5
    # greedy: the chosen token is the most likely one
    assert lp["token_logprobs"][0] == pytest.approx(max(lp["top_logprobs"][0].values()))
    assert client.post("/api/extra/last_logprobs", json={}).json()["logprobs"] == lp
    oai = openai.OpenAI(base_url=server.base_url() + "/v1", api_key="x")
    chat = oai.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=5,
        logprobs=True,
        top_logprobs=3,
    )
    content = chat.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == chat.usage.completion_tokens  # type: ignore[union-attr]
    assert all(len(c.top_logprobs) == 3 and c.logprob <= 0 for c in content)


def _events_split_on_blank_lines(response: httpx.Response) -> list[str]:
    """What a KoboldCpp client does: the raw stream cut at "\\n\\n", no "\\r" expected."""
    raw = b"".join(response.iter_bytes()).decode()
    return [e for e in raw.split("\n\n") if e.strip()]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/extra/generate/stream", {"prompt": "Hi", "max_length": 4}),
        ("/v1/completions", {"prompt": "Hi", "max_tokens": 4, "stream": True}),
    ],
)
def test_stream_events_end_with_a_blank_line(client: httpx.Client, path: str, body: dict) -> None:
    with client.stream("POST", path, json=body) as r:
        events = _events_split_on_blank_lines(r)
    assert "\r" not in "".join(events)
    datas = [e.split("data: ", 1)[1] for e in events if "data: " in e]
    assert len(datas) >= 2
    pieces = [json.loads(d) for d in datas if d != "[DONE]"]
    text = "".join(p["token"] if "token" in p else p["choices"][0]["text"] for p in pieces)
    assert text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/generate", {"prompt": "Hi \ud800 there", "max_length": 3}),
        ("/v1/completions", {"prompt": "Hi \ud800", "max_tokens": 3}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "\ud83d"}]}),
        ("/api/extra/tokencount", {"prompt": "x\udfff"}),
    ],
)
def test_a_lone_surrogate_is_no_500(client: httpx.Client, path: str, body: dict) -> None:
    raw = json.dumps(body | ({"max_tokens": 3} if "messages" in body else {}))
    assert "\\ud" in raw  # json.dumps escapes it, as a browser sends it
    r = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


def test_memory_longer_than_the_context_keeps_its_end(client: httpx.Client) -> None:
    memory = " ".join(f"word{i}" for i in range(2000))  # far more than 1024 tokens
    r = client.post("/api/v1/generate", json={"memory": memory, "prompt": "End.", "max_length": 4})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["prompt_tokens"] <= CONTEXT - 4


def test_a_prompt_list_of_two_says_why(server: ApiServer) -> None:
    oai = openai.OpenAI(base_url=server.base_url() + "/v1", api_key="x")
    with pytest.raises(openai.BadRequestError, match="list of 2 prompts"):
        oai.completions.create(model="m", prompt=["a", "b"], max_tokens=2)


def test_a_body_over_the_size_limit_is_a_413_before_it_is_read(worker: object) -> None:
    small = start_server(worker, max_request_mb=0.01)  # type: ignore[arg-type]
    try:
        with httpx.Client(base_url=small.base_url(), timeout=30) as c:
            r = c.post("/api/v1/generate", json={"prompt": "x" * 20000})
            assert r.status_code == 413 and "0.01 MB" in r.json()["detail"]["msg"]
            assert c.post("/api/v1/generate", json={"prompt": "Hi", "max_length": 2}).is_success
        # only the headers are sent: the answer comes without the body being read
        host, port = small.base_url().removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(
                b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
            )
            assert b" 413 " in s.recv(4096).split(b"\r\n")[0]
    finally:
        small.stop()


def test_exposure_warns_without_a_key_and_notes_with_one() -> None:
    assert exposure_warning("127.0.0.1") == ""
    assert "anyone there can use the model" in exposure_warning("0.0.0.0")
    noted = exposure_warning("0.0.0.0", "secret")
    assert "need the API key" in noted and "anyone" not in noted
