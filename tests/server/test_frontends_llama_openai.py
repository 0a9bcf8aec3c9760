"""What SillyTavern's llama.cpp, generic OpenAI-compatible and Chat Completion (custom)
connections and Open WebUI's OpenAI connection send, replayed as they send it, against
the real server on the default model; each test asserts the fields that front-end reads.
docs/frontends.md has the calls with their places in the front-ends' code."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from kobold_gui.server.runner import ApiServer

from .conftest import CONTEXT

# SillyTavern's text-completion body for type "llamacpp" (getTextGenGenerationData: the
# common fields, llama.cpp's aliases, logit_bias as [id, bias] pairs, samplers by name).
ST_LLAMACPP = {
    "prompt": "User: Hi\nAssistant:",
    "max_new_tokens": 4,
    "max_tokens": 4,
    "temperature": 0.7,
    "top_p": 1,
    "typical_p": 1,
    "typical": 1,
    "sampler_seed": -1,
    "min_p": 0.05,
    "repetition_penalty": 1,
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "top_k": 40,
    "dry_allowed_length": 2,
    "dry_multiplier": 0,
    "dry_base": 1.75,
    "dry_sequence_breakers": '["\\n", ":", "\\"", "*"]',
    "dry_penalty_last_n": 0,
    "samplers": ["top_k", "tfs_z", "typical_p", "top_p", "min_p", "xtc", "temperature"],
    "stopping_strings": ["\nUser:"],
    "stop": ["\nUser:"],
    "truncation_length": CONTEXT,
    "ban_eos_token": False,
    "top_a": 0,
    "tfs": 1,
    "mirostat_mode": 0,
    "mirostat_tau": 5,
    "mirostat_eta": 0.1,
    "banned_strings": [],
    "api_type": "llamacpp",
    "api_server": "http://127.0.0.1:5001",
    "xtc_threshold": 0.1,
    "xtc_probability": 0,
    "rep_pen": 1,
    "rep_pen_range": 0,
    "seed": -1,
    "repeat_penalty": 1,
    "tfs_z": 1,
    "repeat_last_n": 0,
    "n_predict": 4,
    "num_predict": 4,
    "mirostat": 0,
    "ignore_eos": False,
    "logit_bias": [[0, False]],
    "grammar": "",
    "cache_prompt": True,
}

# SillyTavern's Chat Completion body for source "custom" (chat-completions.js, /generate)
ST_CHAT = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "system", "name": "example_user", "content": "Hello"},
        {"role": "user", "content": "Hi"},
    ],
    "model": "koboldcpp/SmolLM2-135M-Instruct.Q4_1",
    "temperature": 1,
    "max_tokens": 4,
    "stream": False,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "top_p": 1,
    "top_k": 0,
    "logit_bias": {},
}


@pytest.fixture
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url(), timeout=120) as c:
        yield c


def _datas(raw: str) -> list[str]:
    assert "\r" not in raw  # "\n" line endings, as llama-server and KoboldCPP send
    return [line[6:] for line in raw.split("\n") if line.startswith("data: ")]


def test_sillytavern_llamacpp_connects_generates_and_tokenizes(client: httpx.Client) -> None:
    """Type llamacpp: /v1/models, /props?model=, /completion (JSON, then SSE whose events
    carry `content` and end with stop: true and no [DONE]), /tokenize, /slots."""
    auth = {"Content-Type": "application/json"}
    assert client.get("/v1/models", headers=auth).json()["data"][0]["id"]
    props = client.get("/props", params={"model": "x"}).json()
    assert props["chat_template"] and props["default_generation_settings"]["n_ctx"] == CONTEXT
    assert props["total_slots"] == 1
    reply = client.post("/completion", headers=auth, json=ST_LLAMACPP)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["content"] and data["stop"] is True and data["tokens_predicted"] >= 1
    assert data["stop_type"] in ("limit", "eos", "word") and data["timings"]["predicted_n"] >= 1
    body = ST_LLAMACPP | {"stream": True, "n_probs": 3}
    with client.stream("POST", "/completion", headers=auth, json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(d) for d in _datas(r.read().decode())]
    assert [e["stop"] for e in events][-1] is True and not any(e["stop"] for e in events[:-1])
    assert "".join(e["content"] for e in events)  # the last one adds nothing
    assert events[-1]["content"] == ""
    probs = events[-1]["completion_probabilities"]
    assert probs[0]["probs"][0]["tok_str"] and 0 < probs[0]["probs"][0]["prob"] <= 1
    tokens = client.post("/tokenize", headers=auth, json={"content": "Hello world"}).json()
    assert len(tokens["tokens"]) >= 2
    text = client.post("/detokenize", json={"tokens": tokens["tokens"]}).json()["content"]
    assert text == "Hello world"
    slots = client.get("/slots").json()
    assert slots[0]["id"] == 0 and slots[0]["is_processing"] is False
    saved = client.post("/slots/0", params={"action": "save"}, json={"filename": "a.bin"})
    assert saved.status_code == 501 and "slots action" in saved.json()["error"]["message"]


def test_llama_server_errors_have_its_shape(client: httpx.Client) -> None:
    bad = client.post("/completion", json={"prompt": "Hi", "n_predict": "many"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == 400 and "n_predict" in bad.json()["error"]["message"]
    ids = client.post("/tokenize", json={"content": "Hi"}).json()["tokens"]
    assert client.post("/completion", json={"prompt": ids, "n_predict": 2}).json()["content"]
    # ids outside the vocabulary are the request's fault: 400, not a server error
    outside = client.post("/detokenize", json={"tokens": [-5, 10**9]})
    assert outside.status_code == 400, outside.text
    error = outside.json()["error"]
    assert error["type"] == "invalid_request_error" and "token ids must be 0 to" in error["message"]
    # an empty prompt is the request's fault too (400 on both text-completion paths)
    for path in ("/completion", "/v1/completions"):
        empty = client.post(path, json={"prompt": "", "n_predict": 2, "max_tokens": 2})
        assert empty.status_code == 400, (path, empty.text)
        assert "the prompt is empty" in empty.text


def test_sillytavern_generic_openai_text_completion(client: httpx.Client) -> None:
    """Type generic: /v1/models, then /v1/completions with OpenAI's keys only."""
    assert client.get("/v1/models").json()["data"][0]["id"]
    body = {
        "prompt": "User: Hi\nAssistant:",
        "model": "",
        "max_tokens": 4,
        "temperature": 0.7,
        "top_p": 1,
        "frequency_penalty": 0,
        "presence_penalty": 0,
        "stop": ["\nUser:"],
        "seed": -1,
        "stream": True,
    }
    with client.stream("POST", "/v1/completions", json=body) as r:
        datas = _datas(r.read().decode())
    assert datas[-1] == "[DONE]"
    assert json.loads(datas[-2])["choices"][0]["finish_reason"] in ("length", "stop")


def test_sillytavern_chat_completion_custom(client: httpx.Client) -> None:
    """Chat Completion, source custom: /models with "Bearer undefined" (no key saved),
    then /chat/completions with its body, not streamed and streamed."""
    headers = {"Authorization": "Bearer undefined"}
    models = client.get("/v1/models", headers=headers).json()
    assert [m["id"] for m in models["data"] if isinstance(m, dict)]
    reply = client.post("/v1/chat/completions", headers=headers, json=ST_CHAT)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"]
    with client.stream(
        "POST", "/v1/chat/completions", headers=headers, json=ST_CHAT | {"stream": True}
    ) as r:
        datas = _datas(r.read().decode())
    chunks = [json.loads(d) for d in datas[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)


def test_open_webui_openai_connection(server: ApiServer) -> None:
    """Open WebUI with the base URL http://host:port/v1: its verify and model list
    (GET /models: data[].id, name optional), then a streamed chat with
    stream_options.include_usage (it reads usage from the last chunk), and a title
    request, not streamed; through the openai package, as an OpenAI client sends it."""
    with httpx.Client(base_url=server.base_url() + "/v1", timeout=120) as c:
        listed = c.get("/models", headers={"Content-Type": "application/json"}).json()
    ids = [m["id"] for m in listed["data"] if m.get("id") or m.get("name")]
    assert ids
    api = openai.OpenAI(base_url=server.base_url() + "/v1", api_key="none", timeout=120)
    stream = api.chat.completions.create(
        model=ids[0],
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    title = api.chat.completions.create(
        model=ids[0], messages=[{"role": "user", "content": "Title?"}], max_tokens=4
    )
    assert title.choices[0].message.content


def test_a_base_url_without_v1_still_finds_the_openai_paths(client: httpx.Client) -> None:
    """llama-server answers /models and /chat/completions without /v1 too."""
    assert client.get("/models").json()["data"][0]["id"]
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    assert client.post("/chat/completions", json=body).json()["choices"][0]["message"]
    missing = client.post("/chat/completions", json={"messages": []})
    assert missing.status_code == 400 and "error" in missing.json()
