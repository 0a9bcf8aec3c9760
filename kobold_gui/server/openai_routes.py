"""The OpenAI-compatible API: /v1/models, /v1/completions and /v1/chat/completions, streamed
and not, with the model's own chat template, usage counts and OpenAI's error shape."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request
from sse_starlette.sse import EventSourceResponse

from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.engine.sampling_request import sampling_params
from kobold_gui.core.engine.types import GenerationResult, SamplingParams
from kobold_gui.core.engine.worker import ModelUnavailable
from kobold_gui.server.auth import require_key
from kobold_gui.server.errors import ApiError, as_api_error, refusal
from kobold_gui.server.generation import (
    BuildPrompt,
    Generation,
    PromptTooLong,
    client_gone,
)
from kobold_gui.server.logprobs import chat_logprobs, completion_logprobs
from kobold_gui.server.openai_schemas import ChatRequest, CompletionRequest, _OpenAISampling
from kobold_gui.server.state import ServerState, server_state
from kobold_gui.server.streams import stream_events

COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])


def finish_reason(result: GenerationResult) -> str:
    return "length" if result.stop_reason in ("length", "context_full") else "stop"


def usage(result: GenerationResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.generated_tokens,
        "total_tokens": result.prompt_tokens + result.generated_tokens,
    }


def _params(body: _OpenAISampling) -> SamplingParams:
    """The request's sampling (SamplerError, a 400, before it is queued)."""
    return sampling_params(body.sampling(max_tokens=1))


def _refused_or(
    request: Request, make: Callable[[Any], BuildPrompt], body: _OpenAISampling
) -> BuildPrompt:
    """The request's prompt builder, or the 400 that says why it cannot be honoured."""
    try:
        build = make(body)
        server_state(request).worker.check_grammar(body.grammar)  # a 400 now, not after the queue
        return build
    except Exception as e:
        raise refusal(e) from None


def _fit(body: _OpenAISampling, tokens: list[int], n_ctx: int, default: int | None) -> int:
    """The reply's token budget; PromptTooLong when prompt and reply exceed the context."""
    asked = body.max_tokens or body.max_completion_tokens or default
    reply = asked if asked is not None else n_ctx - len(tokens)
    if reply < 1 or len(tokens) + reply > n_ctx:
        raise PromptTooLong(len(tokens), max(reply, 1), n_ctx)
    return reply


def _completion_build(body: CompletionRequest) -> BuildPrompt:
    params = _params(body)

    def build(engine: Engine) -> tuple[list[int], SamplingParams]:
        loaded = engine.loaded
        if loaded is None:
            raise ModelUnavailable("no model is loaded")
        engine.check_grammar(params.grammar)
        tokens = engine.tokenize(body.text)
        reply = _fit(body, tokens, loaded.n_ctx, COMPLETION_DEFAULT_MAX_TOKENS)
        return tokens, replace(params, max_tokens=reply)

    return build


def _chat_build(body: ChatRequest) -> BuildPrompt:
    messages = [
        Message("system" if m.role == "developer" else m.role, m.text) for m in body.messages
    ]
    params = _params(body)

    def build(engine: Engine) -> tuple[list[int], SamplingParams]:
        loaded = engine.loaded
        if loaded is None:
            raise ModelUnavailable("no model is loaded")
        engine.check_grammar(params.grammar)
        tokens = engine.chat_tokens(messages)
        return tokens, replace(params, max_tokens=_fit(body, tokens, loaded.n_ctx, None))

    return build


async def _run(
    request: Request,
    body: _OpenAISampling,
    build: BuildPrompt,
    kind: str,
    reply: Callable[[str, str, GenerationResult], dict[str, Any]],
    chunk: Callable[[str, str, str | None, str | None], dict[str, Any]],
) -> Any:
    state = server_state(request)
    client = f"{request.client.host}:{request.client.port}" if request.client else "?"
    gen = Generation(state, build, request.url.path, client, body.stream, kind=kind)
    try:
        gen.submit()
    except Exception as e:
        raise as_api_error(e) from None
    cid = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
    watcher = asyncio.ensure_future(client_gone(request.receive))
    if not body.stream:
        try:
            result = await gen.wait(watcher)
        except Exception as e:
            raise as_api_error(e) from None
        finally:
            watcher.cancel()
        return reply(cid, state.model_name(), result)
    try:
        first = await gen.first_piece(watcher)
    except Exception as e:
        raise as_api_error(e) from None
    model = state.model_name()

    def piece(text: str) -> dict[str, str]:
        return {"data": json.dumps(chunk(cid, model, text, None))}

    def error(err: ApiError) -> dict[str, str]:
        return {"data": json.dumps({"error": {"message": err.message, "type": err.kind}})}

    def end(result: GenerationResult) -> list[dict[str, str]]:
        last = chunk(cid, model, None, finish_reason(result))
        if result.logprobs:  # a stream's logprobs come whole with its end
            last["choices"][0]["logprobs"] = _logprobs(kind, result)
        events = [{"data": json.dumps(last)}]
        if body.include_usage:
            done = chunk(cid, model, None, None) | {"choices": [], "usage": usage(result)}
            events.append({"data": json.dumps(done)})
        return [*events, {"data": "[DONE]"}]

    role = [piece("")] if kind == "chat" else []  # the chat's first chunk names the role
    events = stream_events(gen, first, piece, end, error, before=role)
    return EventSourceResponse(events, ping=15, sep="\n")


def _logprobs(kind: str, result: GenerationResult) -> Any:
    if kind == "chat":
        return chat_logprobs(result.logprobs)
    return completion_logprobs(result.logprobs)


def _model(state: ServerState) -> dict[str, Any]:
    loaded = state.worker.loaded
    meta = {"n_ctx": loaded.n_ctx, "n_ctx_train": loaded.info.context_length} if loaded else {}
    return {
        "id": state.model_name(),
        "object": "model",
        "created": int(state.started),
        "owned_by": "kobold-gui",
        "meta": meta,
    }


@router.get("/models")
async def models(request: Request) -> dict[str, Any]:
    state = server_state(request)
    data = [_model(state)] if state.worker.loaded is not None else []
    return {"object": "list", "data": data}


@router.get("/models/{model_id:path}")
async def model(request: Request, model_id: str) -> dict[str, Any]:
    """The loaded model, by its id (the one /v1/models lists, with or without the
    "koboldcpp/" prefix, or the file's name)."""
    state = server_state(request)
    loaded = state.worker.loaded
    names = {state.model_name(), state.model_name().removeprefix("koboldcpp/")}
    if loaded is not None:
        names |= {loaded.info.path.name, loaded.info.path.stem}
    if loaded is None or model_id not in names:
        raise ApiError(404, f"The model '{model_id}' does not exist", code="model_not_found")
    return _model(state)


def _completion_reply(cid: str, model: str, result: GenerationResult) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "text": result.text,
                "index": 0,
                "logprobs": completion_logprobs(result.logprobs),
                "finish_reason": finish_reason(result),
            }
        ],
        "usage": usage(result),
    }


def _completion_chunk(cid: str, model: str, text: str | None, reason: str | None) -> Any:
    return {
        "id": cid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"text": text or "", "index": 0, "logprobs": None, "finish_reason": reason}],
    }


@router.post("/completions")
async def completions(request: Request, body: CompletionRequest) -> Any:
    build = _refused_or(request, _completion_build, body)
    return await _run(request, body, build, "completion", _completion_reply, _completion_chunk)


def _chat_reply(cid: str, model: str, result: GenerationResult) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "logprobs": chat_logprobs(result.logprobs),
                "finish_reason": finish_reason(result),
            }
        ],
        "usage": usage(result),
    }


def _chat_chunk(cid: str, model: str, text: str | None, reason: str | None) -> Any:
    delta: dict[str, str] = {} if text is None else {"content": text}
    if text == "" and reason is None:
        delta = {"role": "assistant", "content": ""}
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
    }


@router.post("/chat/completions")
async def chat_completions(request: Request, body: ChatRequest) -> Any:
    build = _refused_or(request, _chat_build, body)
    return await _run(request, body, build, "chat", _chat_reply, _chat_chunk)
