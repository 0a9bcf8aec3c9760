"""The KoboldAI API with requests shaped like SillyTavern's and KoboldAI Lite's, through
httpx against the real server on the default model."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest

from kobold_gui.server.runner import ApiServer

from .conftest import CONTEXT

# What SillyTavern sends to a KoboldCPP back-end (fields of its kobold request builder).
SILLYTAVERN = {
    "max_context_length": CONTEXT,
    "max_length": 12,
    "rep_pen": 1.1,
    "rep_pen_range": 320,
    "rep_pen_slope": 1,
    "temperature": 0,
    "tfs": 1,
    "top_a": 0,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.05,
    "typical": 1,
    "sampler_order": [6, 0, 1, 3, 4, 2, 5],
    "use_default_badwordsids": False,
    "dynatemp_range": 0,
    "smoothing_factor": 0,
    "mirostat": 0,
    "grammar": "",
    "sampler_seed": 1234,
    "n": 1,
    "quiet": True,
    "stop_sequence": ["\nUser:"],
    "trim_stop": True,
    "genkey": "",
}


def events(response: httpx.Response) -> Iterator[dict[str, object]]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield json.loads(line[6:])


@pytest.fixture
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url(), timeout=120) as c:
        yield c


def test_info_endpoints_answer_as_koboldcpp(client: httpx.Client) -> None:
    assert client.get("/api/v1/model").json()["result"].startswith("koboldcpp/SmolLM2")
    assert client.get("/api/v1/info/version").json() == {"result": "1.2.5"}
    assert client.get("/api/v1/config/max_context_length").json() == {"value": CONTEXT}
    assert client.get("/api/extra/true_max_context_length").json() == {"value": CONTEXT}
    assert client.get("/api/v1/config/max_length").json()["value"] > 0
    version = client.get("/api/extra/version").json()
    assert version["result"] == "KoboldCpp" and version["protected"] is False
    perf = client.get("/api/extra/perf").json()
    assert {"last_process", "last_eval", "total_gens", "queue", "idle", "stop_reason"} <= set(perf)


def test_sillytavern_generate_returns_text_and_counts(client: httpx.Client) -> None:
    body = {**SILLYTAVERN, "prompt": "User: Name a colour.\nAssistant:"}
    first = client.post("/api/v1/generate", json=body)
    assert first.status_code == 200, first.text
    result = first.json()["results"][0]
    assert result["text"] and "\nUser:" not in result["text"]
    assert 0 < result["completion_tokens"] <= 12
    assert result["finish_reason"] in ("stop", "length")
    again = client.post("/api/v1/generate", json=body).json()["results"][0]
    assert again["text"] == result["text"]  # greedy: the same answer
    perf = client.get("/api/extra/perf").json()
    assert perf["last_token_count"] == again["completion_tokens"] and perf["total_gens"] >= 2


def test_stream_sends_kobold_events_and_a_final_reason(client: httpx.Client) -> None:
    body = {**SILLYTAVERN, "prompt": "Once upon a time", "stop_sequence": [], "max_length": 10}
    with client.stream("POST", "/api/extra/generate/stream", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        got = list(events(r))
    assert all(e["finish_reason"] == "null" for e in got[:-1])
    assert got[-1] == {"token": "", "finish_reason": "length"}
    streamed = "".join(str(e["token"]) for e in got)
    whole = client.post("/api/v1/generate", json=body).json()["results"][0]["text"]
    assert streamed == whole


def test_abort_by_genkey_ends_that_stream(client: httpx.Client, server: ApiServer) -> None:
    body = {**SILLYTAVERN, "prompt": "List every number:", "max_length": 400, "genkey": "KCPP42"}
    body["ban_eos_token"] = True
    body["stop_sequence"] = []
    tokens: list[str] = []
    with client.stream("POST", "/api/extra/generate/stream", json=body) as r:
        for e in events(r):
            tokens.append(str(e["token"]))
            if len(tokens) == 3:
                check = client.post("/api/extra/generate/check", json={"genkey": "KCPP42"})
                assert check.json()["results"][0]["text"].startswith("".join(tokens))
                aborted = client.post("/api/extra/abort", json={"genkey": "KCPP42"}).json()
                assert aborted["success"] == "true"
            last = e
    assert last["finish_reason"] == "stop"
    assert len(tokens) < 100
    assert server.state.activity.snapshot().records[0].status == "aborted"
    # the text stays readable by its key after the end
    check = client.post("/api/extra/generate/check", json={"genkey": "KCPP42"}).json()
    assert check["results"][0]["text"] == "".join(tokens)


def test_abort_with_another_key_does_nothing(client: httpx.Client) -> None:
    assert client.post("/api/extra/abort", json={"genkey": "nobody"}).json()["success"] == "false"


def test_client_that_disconnects_mid_stream_frees_the_engine(
    client: httpx.Client, server: ApiServer
) -> None:
    body = {**SILLYTAVERN, "prompt": "Write a long story.", "max_length": 400, "stop_sequence": []}
    body["ban_eos_token"] = True
    with client.stream("POST", "/api/extra/generate/stream", json=body) as r:
        for n, _e in enumerate(events(r)):
            if n == 2:
                break  # leaving the block closes the connection mid-stream
    done = threading.Event()

    def ended() -> bool:
        record = server.state.activity.snapshot().records[0]
        return record.status == "disconnected"

    for _ in range(600):  # bounded: at most 60 s
        if ended():
            done.set()
            break
        done.wait(0.1)
    assert done.is_set(), "the generation went on after its client left"
    assert server.state.activity.snapshot().records[0].tokens < 400
    quick = client.post("/api/v1/generate", json={**SILLYTAVERN, "prompt": "Hi", "max_length": 2})
    assert quick.status_code == 200


def test_tokencount_counts_with_special_tokens(client: httpx.Client) -> None:
    counted = client.post("/api/extra/tokencount", json={"prompt": "Hello world"}).json()
    assert counted["value"] == len(counted["ids"]) >= 2


def test_prompt_longer_than_the_context_keeps_its_end(client: httpx.Client) -> None:
    long_prompt = "word " * (CONTEXT * 2) + "The end."
    body = {**SILLYTAVERN, "prompt": long_prompt, "max_length": 4, "max_context_length": 256}
    r = client.post("/api/v1/generate", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["prompt_tokens"] <= 256 - 4


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b'["a list"]', "JSON object"),
        (b'{"prompt": "x", "max_length": "many"}', "max_length"),
        (b'{"prompt": "x", "temperature": -1}', "temperature"),
        (b'{"prompt": 5}', "prompt"),
        (b'{"prompt": "x", "logit_bias": {"abc": 1}}', "token ids"),
    ],
)
def test_bad_bodies_get_422_with_a_message(
    client: httpx.Client, content: bytes, words: str
) -> None:
    r = client.post(
        "/api/v1/generate", content=content, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert words in r.json()["detail"]["msg"]


def test_json_is_read_whatever_the_content_type(client: httpx.Client) -> None:
    """As KoboldCPP: `curl -d '{...}'` sends form encoding."""
    body = b'{"prompt": "Hi", "max_length": 2, "temperature": 0}'
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert client.post("/api/v1/generate", content=body, headers=form).status_code == 200


def test_unknown_fields_are_ignored(client: httpx.Client) -> None:
    body = {"prompt": "Hi", "max_length": 2, "temperature": 0, "frobnicate": True, "images": []}
    assert client.post("/api/v1/generate", json=body).status_code == 200


def test_cors_lets_browser_front_ends_call(client: httpx.Client) -> None:
    pre = client.options(
        "/api/v1/generate",
        headers={
            "origin": "http://localhost:8000",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,authorization",
        },
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "authorization" in pre.headers["access-control-allow-headers"]
    got = client.get("/api/extra/version", headers={"origin": "http://localhost:8000"})
    assert got.headers["access-control-allow-origin"] == "*"


def test_unknown_path_is_a_404_with_a_message(client: httpx.Client) -> None:
    r = client.get("/api/v2/nothing")
    assert r.status_code == 404 and "does not exist" in r.json()["detail"]["msg"]
