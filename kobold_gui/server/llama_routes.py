"""llama-server's own paths, in its shapes: /completion (SillyTavern's Text Completion
type "llamacpp" generates there), /tokenize, /detokenize, /props, /health and /slots.
Errors are llama-server's {"error": {"code", "message", "type"}} (errors.py)."""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.engine.sampling_request import sampling_params
from kobold_gui.core.engine.types import GenerationResult, SamplingParams, TokenLogprob
from kobold_gui.core.engine.worker import ModelUnavailable
from kobold_gui.server.auth import require_key
from kobold_gui.server.errors import ApiError, as_api_error, refusal
from kobold_gui.server.generation import BuildPrompt, Generation, PromptTooLong, client_gone
from kobold_gui.server.llama_schemas import LlamaCompletion, LlamaDetokenize, LlamaTokenize
from kobold_gui.server.state import ServerState, server_state
from kobold_gui.server.streams import stream_events

router = APIRouter(dependencies=[Depends(require_key)])
public = APIRouter()  # llama-server answers /health without the API key

_STOP_TYPES = {"eos": "eos", "stop_string": "word", "length": "limit", "context_full": "limit"}


def _build(body: LlamaCompletion) -> BuildPrompt:
    """The prompt (text, with BOS as llama-server adds it, or token ids) and a reply of
    n_predict tokens, cut to what the context has left (-1: all of it)."""
    params = sampling_params(body.sampling(max_tokens=1))  # SamplerError: 400 now

    def build(engine: Engine) -> tuple[list[int], SamplingParams]:
        loaded = engine.loaded
        if loaded is None:
            raise ModelUnavailable("no model is loaded")
        engine.check_grammar(params.grammar)
        prompt = body.prompt
        tokens = engine.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        room = loaded.n_ctx - len(tokens)
        if room < 1:
            raise PromptTooLong(len(tokens), 1, loaded.n_ctx)
        asked = body.n_predict if body.n_predict >= 0 else (body.max_tokens or room)
        return tokens or engine.tokenize(""), replace(params, max_tokens=max(1, min(asked, room)))

    return build


def _probabilities(items: tuple[TokenLogprob, ...]) -> list[dict[str, Any]]:
    """llama-server's completion_probabilities (token, logprob, bytes, top_logprobs), with
    its older names too (content, probs: tok_str, prob), which SillyTavern reads."""

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

    return [
        entry(i.token, i.logprob)
        | {
            "top_logprobs": [entry(t, lp) for t, lp in i.top],
            "content": i.token,
            "probs": [{"tok_str": t, "prob": math.exp(lp)} for t, lp in i.top],
        }
        for i in items
    ]


def _final(state: ServerState, body: LlamaCompletion, result: GenerationResult) -> Any:
    stop_type = _STOP_TYPES.get(result.stop_reason, "none")
    prompt_ms, predicted_ms = result.prompt_seconds * 1000, result.generation_seconds * 1000
    out = {
        "index": 0,
        "content": result.text,
        "tokens": [],
        "id_slot": 0,
        "stop": True,
        "model": state.model_name(),
        "tokens_predicted": result.generated_tokens,
        "tokens_evaluated": result.prompt_tokens,
        "generation_settings": {
            "n_predict": body.n_predict,
            "temperature": body.temperature,
            "top_k": body.top_k,
            "top_p": body.top_p,
            "min_p": body.min_p,
            "seed": body.seed if body.seed is not None else -1,
            "stream": body.stream,
        },
        "prompt": body.prompt if isinstance(body.prompt, str) else "",
        "has_new_line": "\n" in result.text,
        "truncated": False,
        "stop_type": stop_type,
        "stopped_eos": stop_type == "eos",
        "stopped_word": stop_type == "word",
        "stopped_limit": stop_type == "limit",
        "stopping_word": "",
        "tokens_cached": result.prompt_tokens + result.generated_tokens,
        "timings": {
            "prompt_n": result.prompt_tokens_processed,
            "prompt_ms": prompt_ms,
            "prompt_per_second": result.prompt_tokens_per_s,
            "predicted_n": result.generated_tokens,
            "predicted_ms": predicted_ms,
            "predicted_per_second": result.tokens_per_s,
        },
    }
    if result.logprobs:
        out["completion_probabilities"] = _probabilities(result.logprobs)
    return out


def _chunk(text: str) -> dict[str, str]:
    data = {"index": 0, "content": text, "tokens": [], "stop": False, "id_slot": -1}
    return {"data": json.dumps(data)}


@router.post("/completion")
@router.post("/completions")
async def completion(request: Request, body: LlamaCompletion) -> Any:
    """llama-server's completion: the whole reply as JSON, or with "stream": true an SSE
    stream of {"content", "stop": false} events ending in the final object ("stop": true,
    timings, counts), without [DONE], as llama-server sends it."""
    state = server_state(request)
    try:
        build = _build(body)
        state.worker.check_grammar(body.grammar)
    except Exception as e:
        raise refusal(e) from None
    client = f"{request.client.host}:{request.client.port}" if request.client else "?"
    gen = Generation(state, build, request.url.path, client, body.stream)
    try:
        gen.submit()
    except Exception as e:
        raise as_api_error(e) from None
    watcher = asyncio.ensure_future(client_gone(request.receive))
    if not body.stream:
        try:
            return _final(state, body, await gen.wait(watcher))
        except Exception as e:
            raise as_api_error(e) from None
        finally:
            watcher.cancel()
    try:
        first = await gen.first_piece(watcher)
    except Exception as e:
        raise as_api_error(e) from None

    def error(err: ApiError) -> dict[str, str]:
        body = {"code": err.status, "message": err.message, "type": err.kind}
        return {"data": json.dumps({"error": body})}

    def last(result: GenerationResult) -> list[dict[str, str]]:
        return [{"data": json.dumps(_final(state, body, result) | {"content": ""})}]  # all sent

    events = stream_events(gen, first, _chunk, last, error)
    return EventSourceResponse(events, ping=15, sep="\n")


@router.post("/tokenize")
async def tokenize(request: Request, body: LlamaTokenize) -> dict[str, Any]:
    """{"content"} to {"tokens": [ids]} (with_pieces: [{"id", "piece"}]); no BOS unless
    add_special, as llama-server."""
    worker = server_state(request).worker
    try:
        ids = worker.tokenize(body.content, add_special=body.add_special)
        if not body.with_pieces:
            return {"tokens": ids}
        return {"tokens": [{"id": i, "piece": worker.detokenize([i])} for i in ids]}
    except Exception as e:
        raise refusal(e) from None


@router.post("/detokenize")
async def detokenize(request: Request, body: LlamaDetokenize) -> dict[str, str]:
    try:
        return {"content": server_state(request).worker.detokenize(body.tokens)}
    except Exception as e:
        raise refusal(e) from None


@router.get("/props")
async def props(request: Request) -> dict[str, Any]:
    """The parts front-ends read: SillyTavern reads default_generation_settings.n_ctx,
    chat_template (hashed to pick its templates) and total_slots; llama.cpp's web UI the
    model path, modalities and build."""
    state = server_state(request)
    loaded = state.worker.loaded
    n_ctx = loaded.n_ctx if loaded else 0
    template = (loaded.info.chat_template or "") if loaded else ""
    return {
        "default_generation_settings": {
            "n_ctx": n_ctx,
            "params": {"n_predict": -1, "temperature": 0.8, "top_k": 40, "top_p": 0.95},
        },
        "total_slots": state.n_slots(),
        "model_path": str(loaded.info.path) if loaded else "",
        "chat_template": template,
        "modalities": {"vision": False, "audio": False},
        "build_info": "kobold-gui",
    }


@public.get("/health")
@public.get("/v1/health")
async def health(request: Request) -> Any:
    """{"status": "ok"} with a model loaded, else 503 as llama-server answers while loading."""
    if server_state(request).worker.loaded is None:
        error = {"code": 503, "message": "Loading model", "type": "unavailable_error"}
        return JSONResponse({"error": error}, 503)
    return {"status": "ok"}


@router.get("/slots")
async def slots(request: Request) -> list[dict[str, Any]]:
    """One entry per --parallel slot: its context share and whether it is generating
    (the busy ones listed first: which slot runs which request is not tracked here)."""
    state = server_state(request)
    loaded = state.worker.loaded
    n = max(state.n_slots(), 1)
    running = sum(1 for gen in state.all_active() if gen.started)
    n_ctx = (loaded.n_ctx // n) if loaded else 0
    return [
        {"id": i, "id_task": -1, "n_ctx": n_ctx, "is_processing": i < running} for i in range(n)
    ]


@router.post("/slots/{slot_id}")
async def slot_action(slot_id: str) -> None:
    """Saving, restoring and erasing a slot's cache: llama-server answers 501 unless
    started with --slot-save-path; this server has no such option."""
    raise ApiError(
        501,
        "This server does not support slots action (saving, restoring or erasing a slot's"
        " cache to a file)",
        "not_supported_error",
    )
