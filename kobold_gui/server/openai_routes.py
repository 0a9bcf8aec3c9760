"""The OpenAI-compatible API: /v1/models, /v1/completions and /v1/chat/completions, streamed
and not, with the model's own chat template, usage counts and OpenAI's error shape."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from sse_starlette.sse import EventSourceResponse

from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.engine.types import GenerationResult, SamplingParams
from kobold_gui.core.engine.worker import ModelUnavailable
from kobold_gui.server.auth import require_key
from kobold_gui.server.errors import ApiError, as_api_error
from kobold_gui.server.generation import (
    BuildPrompt,
    Generation,
    PromptTooLong,
    client_gone,
)
from kobold_gui.server.schemas import ChatRequest, CompletionRequest, _OpenAISampling
from kobold_gui.server.state import ServerState

COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


def finish_reason(result: GenerationResult) -> str:
    return "length" if result.stop_reason in ("length", "context_full") else "stop"


def usage(result: GenerationResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.generated_tokens,
        "total_tokens": result.prompt_tokens + result.generated_tokens,
    }


def _bias(body: _OpenAISampling) -> tuple[tuple[int, float], ...]:
    out = []
    for key, value in (body.logit_bias or {}).items():
        try:
            out.append((int(key), max(-100.0, min(100.0, float(value)))))
        except ValueError:
            raise ApiError(400, f"logit_bias: keys must be token ids, got {key!r}") from None
    return tuple(out)


def _params(body: _OpenAISampling, max_tokens: int) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_k=body.top_k,
        top_p=body.top_p,
        min_p=body.min_p,
        repeat_penalty=body.repeat_penalty,
        seed=body.seed if body.seed is not None else -1,
        stop=tuple(s for s in body.stops if s),
        logit_bias=_bias(body),
    )


def _fit(body: _OpenAISampling, tokens: list[int], n_ctx: int, default: int | None) -> int:
    """The reply's token budget; PromptTooLong when prompt and reply exceed the context."""
    asked = body.max_tokens or body.max_completion_tokens or default
    reply = asked if asked is not None else n_ctx - len(tokens)
    if reply < 1 or len(tokens) + reply > n_ctx:
        raise PromptTooLong(len(tokens), max(reply, 1), n_ctx)
    return reply


def _completion_build(body: CompletionRequest) -> BuildPrompt:
    def build(engine: Engine) -> tuple[list[int], SamplingParams]:
        loaded = engine.loaded
        if loaded is None:
            raise ModelUnavailable("no model is loaded")
        tokens = engine.tokenize(body.text)
        return tokens, _params(
            body, _fit(body, tokens, loaded.n_ctx, COMPLETION_DEFAULT_MAX_TOKENS)
        )

    return build


def _chat_build(body: ChatRequest) -> BuildPrompt:
    messages = [
        Message("system" if m.role == "developer" else m.role, m.text) for m in body.messages
    ]

    def build(engine: Engine) -> tuple[list[int], SamplingParams]:
        loaded = engine.loaded
        if loaded is None:
            raise ModelUnavailable("no model is loaded")
        tokens = engine.chat_tokens(messages)
        return tokens, _params(body, _fit(body, tokens, loaded.n_ctx, None))

    return build


async def _run(
    request: Request,
    body: _OpenAISampling,
    build: BuildPrompt,
    kind: str,
    reply: Callable[[str, str, GenerationResult], dict[str, Any]],
    chunk: Callable[[str, str, str | None, str | None], dict[str, Any]],
) -> Any:
    state = _state(request)
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

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            if kind == "chat":
                yield {"data": json.dumps(chunk(cid, model, "", None))}  # the role
            if first is not None:
                yield {"data": json.dumps(chunk(cid, model, first, None))}
                async for piece in gen.pieces():
                    yield {"data": json.dumps(chunk(cid, model, piece, None))}
            try:
                result = gen.result()
            except Exception as e:
                err = as_api_error(e)
                yield {"data": json.dumps({"error": {"message": err.message, "type": err.kind}})}
                return
            yield {"data": json.dumps(chunk(cid, model, None, finish_reason(result)))}
            if body.include_usage:
                done = chunk(cid, model, None, None) | {"choices": [], "usage": usage(result)}
                yield {"data": json.dumps(done)}
            yield {"data": "[DONE]"}
        finally:
            gen.cancel("disconnected")

    return EventSourceResponse(events(), ping=15)


@router.get("/models")
async def models(request: Request) -> dict[str, Any]:
    state = _state(request)
    data = []
    if state.worker.loaded is not None:
        data.append(
            {
                "id": state.model_name(),
                "object": "model",
                "created": int(state.started),
                "owned_by": "kobold-gui",
            }
        )
    return {"object": "list", "data": data}


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
                "logprobs": None,
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
    return await _run(
        request, body, _completion_build(body), "completion", _completion_reply, _completion_chunk
    )


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
                "logprobs": None,
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
    return await _run(request, body, _chat_build(body), "chat", _chat_reply, _chat_chunk)
