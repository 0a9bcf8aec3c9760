"""What KoboldAI Lite and SillyTavern's KoboldCpp modes send, replayed as they send it
(paths, methods, headers, bodies), against the real server on the default model; each
test asserts the fields that front-end reads. docs/frontends.md has the calls with their
places in the front-ends' code."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from kobold_gui.server.runner import ApiServer

from .conftest import CONTEXT, start_server

# KoboldAI Lite's SSE parser (klite.embd, kobold_api_stream_sse): an event is exactly
# "event: X\ndata: Y\n\n"; anything else (\r\n line endings) is never matched.
LITE_EVENT = re.compile(r"^event: (.*)\ndata: (.*)\n\n", re.M)

LITE_HEADERS = {"Content-Type": "application/json"}  # get_kobold_header() without a key

# Lite's generate body: its params flattened, with the prompt (klite.embd, submit_generation)
LITE_PAYLOAD = {
    "n": 1,
    "max_context_length": CONTEXT,
    "max_length": 4,
    "rep_pen": 1.07,
    "temperature": 0.7,
    "top_p": 0.92,
    "top_k": 100,
    "top_a": 0,
    "typical": 1,
    "tfs": 1,
    "rep_pen_range": 360,
    "rep_pen_slope": 0.7,
    "sampler_order": [6, 0, 1, 3, 4, 2, 5],
    "memory": "",
    "trim_stop": True,
    "genkey": "KCPP1234",
    "min_p": 0,
    "dynatemp_range": 0,
    "dynatemp_exponent": 1,
    "smoothing_factor": 0,
    "banned_tokens": [],
    "render_special": False,
    "presence_penalty": 0,
    "logit_bias": {},
    "prompt": "Once upon a time",
    "quiet": True,
    "stop_sequence": ["You:", "\nYou "],
    "use_default_badwordsids": False,
    "bypass_eos": False,
}

# SillyTavern's text-completion body for type "koboldcpp" (textgen-settings.js,
# getTextGenGenerationData), sent whole to /v1/completions, with its own fields.
ST_TEXTGEN = {
    "prompt": "User: Hi\nAssistant:",
    "max_new_tokens": 4,
    "max_tokens": 4,
    "temperature": 0.7,
    "top_p": 1,
    "typical_p": 1,
    "typical": 1,
    "sampler_seed": -1,
    "min_p": 0,
    "repetition_penalty": 1,
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "top_k": 0,
    "skew": 0,
    "min_tokens": 0,
    "add_bos_token": True,
    "smoothing_factor": 0,
    "smoothing_curve": 1,
    "dry_allowed_length": 2,
    "dry_multiplier": 0,
    "dry_base": 1.75,
    "dry_sequence_breakers": '["\\n", ":", "\\"", "*"]',
    "dry_penalty_last_n": 0,
    "max_tokens_second": 0,
    "stopping_strings": ["\nUser:"],
    "stop": ["\nUser:"],
    "truncation_length": CONTEXT,
    "ban_eos_token": False,
    "skip_special_tokens": True,
    "top_a": 0,
    "tfs": 1,
    "mirostat_mode": 0,
    "mirostat_tau": 5,
    "mirostat_eta": 0.1,
    "custom_token_bans": "",
    "banned_strings": [],
    "api_type": "koboldcpp",
    "api_server": "http://127.0.0.1:5001",
    "sampler_order": [6, 0, 1, 3, 4, 2, 5],
    "xtc_threshold": 0.1,
    "xtc_probability": 0,
    "rep_pen": 1,
    "rep_pen_range": 0,
    "repetition_penalty_range": 0,
    "seed": -1,
    "guidance_scale": 1,
    "negative_prompt": "",
    "grammar_string": "",
    "repeat_penalty": 1,
    "tfs_z": 1,
    "repeat_last_n": 0,
    "n_predict": 4,
    "num_predict": 4,
    "num_ctx": CONTEXT,
    "mirostat": 0,
    "ignore_eos": False,
    "rep_pen_slope": 1,
    "grammar": "",
}


@pytest.fixture
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url(), timeout=120) as c:
        yield c


def test_lite_connects_as_to_koboldcpp(client: httpx.Client) -> None:
    """Lite's connect sequence: the model (not empty, not "ReadOnly"), the API version,
    the context sliders, KoboldCpp's version and flags, the true context, a preloaded
    story and the image models; each answer is JSON."""
    model = client.get("/api/v1/model", headers=LITE_HEADERS).json()["result"]
    assert model and model not in ("ReadOnly", "inactive")
    assert client.get("/api/v1/info/version", headers=LITE_HEADERS).json()["result"] >= "1.2.2"
    ctx = client.get("/api/v1/config/max_context_length", headers=LITE_HEADERS).json()
    assert ctx["value"] == CONTEXT
    version = client.get("/api/extra/version", headers=LITE_HEADERS).json()
    assert version["result"] == "KoboldCpp"
    major, minor = (int(p) for p in version["version"].split(".")[:2])
    assert (major, minor) >= (1, 74)  # Lite's newest feature gate (XTC) is 1.74
    assert version["protected"] is False and version["vision"] is False
    assert version["transcribe"] is False and version["txt2img"] is False
    true_ctx = client.get("/api/extra/true_max_context_length", headers=LITE_HEADERS).json()
    assert true_ctx["value"] == CONTEXT
    assert client.get("/api/extra/preloadstory", headers=LITE_HEADERS).json() == {}
    images = client.get("/sdapi/v1/sd-models")  # no image model: Lite keeps images off
    assert images.status_code == 404 and "sdapi" in images.json()["detail"]["msg"]


def test_lite_streams_polls_and_aborts(client: httpx.Client) -> None:
    """Generation over SSE parsed with Lite's own regex, then the polled check and the
    abort it sends with its genkey, the perf box and its tokenizer call (no key)."""
    with client.stream(
        "POST", "/api/extra/generate/stream", headers=LITE_HEADERS, json=LITE_PAYLOAD
    ) as r:
        assert r.status_code == 200
        raw = r.read().decode()
    assert "\r" not in raw
    events = [(m[1], json.loads(m[2])) for m in LITE_EVENT.finditer(raw)]
    assert events and all(kind == "message" for kind, _ in events)
    text = "".join(str(data["token"]) for _, data in events)
    assert text and events[-1][1]["finish_reason"] in ("length", "stop")
    check = client.post(
        "/api/extra/generate/check", headers=LITE_HEADERS, json={"genkey": "KCPP1234"}
    )
    assert check.json()["results"][0]["text"] == text
    abort = client.post("/api/extra/abort", headers=LITE_HEADERS, json={"genkey": "KCPP1234"})
    assert abort.json() == {"success": "false", "done": "false"}  # nothing runs now
    perf = client.get("/api/extra/perf").json()
    assert perf["last_token_count"] >= 1 and perf["idle"] == 1 and perf["queue"] == 0
    tokens = client.post(
        "/api/extra/tokencount",
        headers={"Content-Type": "application/json"},
        json={"prompt": "Hello world", "special": False},
    ).json()
    assert tokens["value"] == len(tokens["ids"]) >= 2


def test_lite_polled_generation_reads_results(client: httpx.Client) -> None:
    """Lite without SSE: /api/v1/generate in chunks, reading results[0].text and
    finish_reason; a trailing slash is the same path (KoboldCPP matches so)."""
    body = LITE_PAYLOAD | {"genkey": ""}
    for path in ("/api/v1/generate", "/api/v1/generate/"):
        r = client.post(path, headers=LITE_HEADERS, json=body)
        assert r.status_code == 200, r.text
        one = r.json()["results"][0]
        assert one["text"] and one["finish_reason"] in ("length", "stop")


def test_sillytavern_kobold_classic_status_and_generate(client: httpx.Client) -> None:
    """SillyTavern's "KoboldAI Classic" server side (kobold.js): three GETs without any
    header, then /api/v1/generate or the SSE stream with its settings, and a bodiless
    abort."""
    united = client.get("/api/v1/info/version").json()["result"]
    extra = client.get("/api/extra/version").json()
    model = client.get("/api/v1/model").json()["result"]
    assert united == "1.2.5" and extra["result"] == "KoboldCpp" and extra["version"]
    assert model and model != "ReadOnly"
    settings = {
        "prompt": "User: Hi\nAssistant:",
        "use_story": False,
        "use_memory": False,
        "use_authors_note": False,
        "use_world_info": False,
        "max_context_length": CONTEXT,
        "max_length": 4,
        "rep_pen": 1.1,
        "rep_pen_range": 320,
        "rep_pen_slope": 1,
        "temperature": 0.7,
        "tfs": 1,
        "top_a": 0,
        "top_k": 40,
        "top_p": 0.9,
        "min_p": 0.05,
        "typical": 1,
        "sampler_order": [6, 0, 1, 3, 4, 2, 5],
        "singleline": False,
        "use_default_badwordsids": False,
        "mirostat": 0,
        "mirostat_eta": 0.1,
        "mirostat_tau": 5,
        "grammar": "",
        "sampler_seed": -1,
        "stop_sequence": ["\nUser:"],
    }
    generated = client.post("/api/v1/generate", json=settings)
    assert generated.json()["results"][0]["text"]
    with client.stream("POST", "/api/extra/generate/stream", json=settings) as r:
        raw = r.read().decode()
    assert [m[1] for m in LITE_EVENT.finditer(raw)][-1] == "message"
    assert client.post("/api/extra/abort").json()["success"] == "false"


def test_sillytavern_textgen_koboldcpp(client: httpx.Client) -> None:
    """Text Completion, type koboldcpp: /v1/models (first id is the status), /props (its
    chat template hashed, n_ctx), /v1/completions with the whole settings body, streamed
    and not, and the remote tokenizer at /api/extra/tokencount."""
    headers = {"Content-Type": "application/json"}
    models = client.get("/v1/models", headers=headers).json()
    assert models["data"][0]["id"].startswith("koboldcpp/")
    props = client.get("/props").json()
    assert isinstance(props["chat_template"], str) and props["chat_template"]
    assert props["default_generation_settings"]["n_ctx"] == CONTEXT
    reply = client.post("/v1/completions", headers=headers, json=ST_TEXTGEN)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["text"]
    body = ST_TEXTGEN | {"stream": True}
    with client.stream("POST", "/v1/completions", headers=headers, json=body) as r:
        raw = r.read().decode()
    assert "\r" not in raw
    datas = [line[6:] for line in raw.split("\n") if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    assert "".join(json.loads(d)["choices"][0]["text"] for d in datas[:-1])
    count = client.post("/api/extra/tokencount", headers=headers, json={"prompt": "Hi there"})
    assert count.json()["value"] == len(count.json()["ids"]) > 0


def test_a_password_gates_what_koboldcpp_gates(worker: object) -> None:
    """With --password: SillyTavern's bare GETs still connect (the model name hidden, as
    KoboldCPP does), Lite's keyed calls see the model, generation needs the key."""
    server = start_server(worker, api_key="sesame")  # type: ignore[arg-type]
    try:
        with httpx.Client(base_url=server.base_url(), timeout=120) as c:
            assert c.get("/api/extra/version").json()["protected"] is True
            assert c.get("/api/v1/model").json()["result"] == "koboldcpp/protected-model"
            keyed = LITE_HEADERS | {"Authorization": "Bearer sesame"}
            assert c.get("/api/v1/model", headers=keyed).json()["result"].startswith("koboldcpp/")
            assert c.post("/api/v1/generate", json={"prompt": "Hi"}).status_code == 401
            ok = c.post("/api/v1/generate", headers=keyed, json={"prompt": "Hi", "max_length": 2})
            assert ok.status_code == 200
            assert c.get("/health").json() == {"status": "ok"}  # llama-server: no key
    finally:
        server.stop()
