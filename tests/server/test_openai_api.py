"""The OpenAI-compatible API through the official `openai` package."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from kobold_gui.core.engine.worker import EngineWorker
from kobold_gui.server.runner import ApiServer

from .conftest import CONTEXT, start_server

HELLO = [{"role": "user", "content": "Say hello in three words."}]


@pytest.fixture
def client(server: ApiServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url() + "/v1", api_key="unused", max_retries=0)


def test_models_lists_the_loaded_model(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert len(ids) == 1 and "SmolLM2" in ids[0]


def test_chat_uses_the_models_template_and_counts_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="any", messages=HELLO, max_tokens=12, temperature=0, seed=7
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert "<|im_start|>" not in choice.message.content  # the template's markers are not text
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.prompt_tokens > 10  # the template's tokens
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_stream_equals_the_whole_reply(client: openai.OpenAI) -> None:
    args = {"model": "m", "messages": HELLO, "max_tokens": 12, "temperature": 0}
    whole = client.chat.completions.create(**args).choices[0].message.content  # type: ignore[call-overload]
    chunks = list(
        client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})  # type: ignore[call-overload]
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_completions_streamed_and_not(client: openai.OpenAI) -> None:
    done = client.completions.create(model="m", prompt="The sky is", max_tokens=6, temperature=0)
    assert done.choices[0].text and done.choices[0].finish_reason == "length"
    assert done.usage is not None and done.usage.completion_tokens == 6
    streamed = client.completions.create(
        model="m", prompt="The sky is", max_tokens=6, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == done.choices[0].text


def test_stop_and_logit_bias_steer_the_text(client: openai.OpenAI, server: ApiServer) -> None:
    base = client.completions.create(model="m", prompt="1, 2, 3,", max_tokens=8, temperature=0)
    text = base.choices[0].text
    assert "4" in text
    stopped = client.completions.create(
        model="m", prompt="1, 2, 3,", max_tokens=8, temperature=0, stop=["4"]
    )
    assert stopped.choices[0].text == text[: text.index("4")]
    assert stopped.choices[0].finish_reason == "stop"
    four = httpx.post(
        server.base_url() + "/api/extra/tokencount", json={"prompt": " 4", "special": False}
    ).json()["ids"]
    banned = client.completions.create(
        model="m",
        prompt="1, 2, 3,",
        max_tokens=8,
        temperature=0,
        logit_bias={str(t): -100 for t in four},
    )
    assert banned.choices[0].text != text


def test_seed_makes_sampling_repeatable(client: openai.OpenAI) -> None:
    args = {"model": "m", "prompt": "A story:", "max_tokens": 8, "temperature": 1.0, "seed": 99}
    first = client.completions.create(**args).choices[0].text  # type: ignore[call-overload]
    again = client.completions.create(**args).choices[0].text  # type: ignore[call-overload]
    assert first == again


def test_prompt_longer_than_the_context_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "word " * (CONTEXT * 2)}]
        )
    assert err.value.code == "context_length_exceeded"
    assert "maximum context length" in err.value.message
    with pytest.raises(openai.BadRequestError):  # streamed: an HTTP error too, not a stream
        client.completions.create(model="m", prompt="x", max_tokens=CONTEXT * 2, stream=True)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"messages": HELLO, "temperature": "hot"}, "temperature"),
        ({"messages": HELLO, "n": 3}, "n"),
        ({"messages": HELLO, "logit_bias": {"x": 1}}, "token ids"),
    ],
)
def test_bad_bodies_get_openai_errors(
    server: ApiServer, body: dict[str, object], words: str
) -> None:
    r = httpx.post(server.base_url() + "/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 400
    error = r.json()["error"]
    assert words in error["message"] and error["type"] == "invalid_request_error"


@pytest.fixture
def keyed(worker: EngineWorker) -> Iterator[ApiServer]:
    s = start_server(worker, api_key="s3cret")
    yield s
    s.stop()


def test_api_key_is_required_when_set(keyed: ApiServer) -> None:
    url = keyed.base_url()
    wrong = openai.OpenAI(base_url=url + "/v1", api_key="guess", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    plain = httpx.post(url + "/api/v1/generate", json={"prompt": "x"}, timeout=60)
    assert plain.status_code == 401 and plain.json()["detail"]["type"] == "unauthorized"
    assert httpx.get(url + "/api/v1/model").json()["result"] == "koboldcpp/protected-model"
    assert httpx.get(url + "/api/extra/version").json()["protected"] is True
    right = openai.OpenAI(base_url=url + "/v1", api_key="s3cret", max_retries=0)
    assert right.completions.create(model="m", prompt="Hi", max_tokens=2).usage is not None
