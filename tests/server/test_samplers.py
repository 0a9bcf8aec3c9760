"""Every sampler the APIs take changes the reply (or is refused with a message), through
httpx and the openai client against the real server on the default model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from kobold_gui.server.runner import ApiServer

PROMPT = "Once upon a time, in a small village by the sea, there lived"
REPEATS = "the cat sat on the mat. the cat sat on the mat. the cat sat on the mat. the cat"
BASE = {"max_length": 12, "temperature": 1.0, "top_k": 200, "top_p": 1.0, "rep_pen": 1.0}


@pytest.fixture
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url(), timeout=120) as c:
        yield c


def _text(client: httpx.Client, **body: Any) -> str:
    r = client.post("/api/v1/generate", json={"prompt": PROMPT, "sampler_seed": 7} | body)
    assert r.status_code == 200, r.text
    text: str = r.json()["results"][0]["text"]
    return text


@pytest.mark.parametrize(
    "extra",
    [
        {"typical": 0.2},
        {"nsigma": 0.3},
        {"xtc_probability": 1.0, "xtc_threshold": 0.02},
        {"mirostat": 1, "mirostat_tau": 1.0},
        {"mirostat": 2, "mirostat_tau": 1.0},
        {"dynatemp_range": 0.9},
        {"sampler_order": [5, 2, 0, 1, 3, 4, 6], "top_p": 0.3, "temperature": 3.0},
    ],
    ids=lambda e: next(iter(e)),
)
def test_random_samplers_change_the_reply(client: httpx.Client, extra: dict[str, Any]) -> None:
    base = BASE | {k: v for k, v in extra.items() if k in ("temperature",)}
    if "sampler_order" in extra:  # the same samplers in llama.cpp's order: temp after top-p
        base = base | {"top_p": 0.3, "sampler_order": [6, 0, 1, 3, 4, 2, 5]}
    plain = _text(client, **base)
    assert _text(client, **base) == plain  # a seed makes a reply repeatable
    assert _text(client, **(base | extra)) != plain


@pytest.mark.parametrize(
    "extra",
    [
        {"rep_pen": 1.5},
        {"presence_penalty": 1.5},
        {"frequency_penalty": 1.0},
        {"dry_multiplier": 2.0, "dry_allowed_length": 2},
    ],
    ids=lambda e: next(iter(e)),
)
def test_penalties_change_a_greedy_repetition(client: httpx.Client, extra: dict[str, Any]) -> None:
    greedy = {"prompt": REPEATS, "max_length": 16, "temperature": 0, "rep_pen": 1.0}
    plain = _text(client, **greedy)
    assert "sat on the mat" in plain  # the model repeats without a penalty
    assert _text(client, **(greedy | extra)) != plain


def test_rep_pen_range_and_slope_change_what_is_penalised(client: httpx.Client) -> None:
    greedy = {"prompt": REPEATS, "max_length": 10, "temperature": 0, "rep_pen": 1.6}
    whole = _text(client, **greedy, rep_pen_range=16)
    assert _text(client, **greedy, rep_pen_range=0) != whole  # 0: no window, no penalty
    # slope 0: only the newer half of the window is penalised
    assert _text(client, **greedy, rep_pen_range=16, rep_pen_slope=0.0) != whole


def test_banned_strings_never_appear(client: httpx.Client) -> None:
    greedy = {"prompt": REPEATS, "max_length": 16, "temperature": 0}
    assert "cat" in _text(client, **greedy)
    assert "cat" not in _text(client, **greedy, banned_tokens=["cat"])


def test_trim_stop_false_keeps_the_stop_string(client: httpx.Client) -> None:
    greedy = {"prompt": REPEATS, "max_length": 16, "temperature": 0, "stop_sequence": ["mat"]}
    assert not _text(client, **greedy).endswith("mat")
    assert _text(client, **greedy, trim_stop=False).endswith("mat")


def test_a_grammar_constrains_the_reply(client: httpx.Client) -> None:
    grammar = 'root ::= ("yes" | "no") "." '
    for seed in (1, 2, 3):
        text = _text(client, grammar=grammar, sampler_seed=seed, temperature=1.5)
        assert text in ("yes.", "no."), text


def test_a_grammar_that_does_not_parse_is_a_422(client: httpx.Client) -> None:
    r = client.post("/api/v1/generate", json={"prompt": PROMPT, "grammar": "root ::= ("})
    assert r.status_code == 422
    assert "grammar" in r.json()["detail"]["msg"]
    assert _text(client, max_length=2)  # the server still answers


@pytest.mark.parametrize(
    ("field", "value"), [("top_a", 0.5), ("tfs", 0.9), ("smoothing_factor", 0.3)]
)
def test_samplers_llama_cpp_lacks_are_refused_unless_neutral(
    client: httpx.Client, server: ApiServer, field: str, value: float
) -> None:
    r = client.post("/api/v1/generate", json={"prompt": PROMPT, field: value})
    assert r.status_code == 422
    assert f"{field}={value}" in r.json()["detail"]["msg"]
    oai = openai.OpenAI(base_url=server.base_url() + "/v1", api_key="x")
    with pytest.raises(openai.BadRequestError, match=field):
        oai.completions.create(model="m", prompt=PROMPT, max_tokens=2, extra_body={field: value})


def test_openai_takes_sillytavern_ranges_and_json_schemas(server: ApiServer) -> None:
    oai = openai.OpenAI(base_url=server.base_url() + "/v1", api_key="x")
    hot = oai.completions.create(
        model="m", prompt=PROMPT, max_tokens=4, temperature=5, extra_body={"top_k": -1}
    )
    assert hot.usage is not None and hot.usage.completion_tokens >= 1
    schema = {
        "type": "object",
        "properties": {"age": {"type": "integer"}},
        "required": ["age"],
    }
    reply = oai.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "How old is Bob? Answer in JSON."}],
        max_tokens=40,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    )
    content = reply.choices[0].message.content or ""
    assert isinstance(json.loads(content)["age"], int), content
