"""The KoboldAI API as KoboldCPP serves it (paths, fields, defaults and response shapes of
its HTTP handler), so that SillyTavern, KoboldAI Lite and scripts written for KoboldCPP
work unchanged. Differences: stop sequences are always trimmed from the text."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request
from sse_starlette.sse import EventSourceResponse

from kobold_gui import __version__
from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.engine.sampling_request import sampling_params
from kobold_gui.core.engine.types import GenerationResult, SamplingParams
from kobold_gui.core.engine.worker import ModelUnavailable
from kobold_gui.server.auth import authorized, require_key
from kobold_gui.server.errors import ApiError, as_api_error, refusal
from kobold_gui.server.generation import BuildPrompt, Generation, client_gone
from kobold_gui.server.logprobs import completion_logprobs
from kobold_gui.server.schemas import GenKey, KoboldGenerate
from kobold_gui.server.state import ServerState, server_state
from kobold_gui.server.streams import stream_events

KOBOLDCPP_VERSION = "1.102"  # the KoboldCPP API this one follows
KOBOLDAI_API_VERSION = "1.2.5"
MAX_LENGTH = 512  # what /api/v1/config/max_length advertises

router = APIRouter()
log = logging.getLogger(__name__)

# KoboldCPP's stop reasons (/api/extra/perf): -1 none, 0 out of tokens, 1 EOS, 2 stop string
_STOP_CODES = {"eos": 1, "stop_string": 2, "length": 0, "context_full": 0, "stopped": -1}


def finish_reason(result: GenerationResult) -> str:
    return "stop" if result.stop_reason in ("eos", "stop_string", "stopped") else "length"


def _n_ctx(state: ServerState) -> int:
    loaded = state.worker.loaded
    return loaded.n_ctx if loaded else 0


def _build(body: KoboldGenerate) -> BuildPrompt:
    """KoboldCPP's fitting: max_context_length is capped to the loaded context, max_length
    leaves at least 16 tokens of prompt, a prompt too long loses its oldest tokens (the
    memory is kept), and a memory too long itself keeps its end."""
    params = sampling_params(body.sampling())  # SamplerError (400) before it is queued

    def build(engine: Engine) -> tuple[list[int], SamplingParams]:
        loaded = engine.loaded
        if loaded is None:
            raise ModelUnavailable("no model is loaded")
        engine.check_grammar(params.grammar)
        ctx = min(body.max_context_length or loaded.n_ctx, loaded.n_ctx)
        min_remain = max(min(ctx - 4, 16), 1)
        max_length = max(1, min(body.max_length, ctx - min_remain))
        memory = engine.tokenize(body.memory) if body.memory else []
        prompt = engine.tokenize(body.prompt, add_special=not memory)
        room = max(ctx - max_length, 1)
        bos = engine.tokenize("")  # [BOS] when the model adds one: it stays first
        if len(memory) > room - 1:
            log.warning("memory of %d tokens cut to its last %d", len(memory), room - 1)
            head = bos if memory[: len(bos)] == bos else []
            memory = head + memory[len(memory) - max(room - 1 - len(head), 0) :]
        if len(memory) + len(prompt) > room:
            head = bos if not memory and prompt[: len(bos)] == bos else []
            keep = max(room - len(memory) - len(head), 0)
            prompt = head + (prompt[len(prompt) - keep :] if keep else [])
        return (memory + prompt) or bos or [0], replace(params, max_tokens=max_length)

    return build


def _start(request: Request, body: KoboldGenerate, stream: bool) -> Generation:
    state = server_state(request)
    client = f"{request.client.host}:{request.client.port}" if request.client else "?"
    try:
        build = _build(body)
        state.worker.check_grammar(body.grammar)  # a 422 now, not after the queue
    except Exception as e:
        error = refusal(e)  # KoboldCPP's API answers a bad body 422, as FastAPI does
        raise ApiError(422, error.message, "bad_input") if error.status == 400 else error from None
    gen = Generation(state, build, request.url.path, client, stream, genkey=body.genkey)
    try:
        gen.submit()
    except Exception as e:
        raise as_api_error(e) from None
    return gen


def _results(gen: Generation, result: GenerationResult) -> dict[str, Any]:
    one: dict[str, Any] = {
        "text": result.text,
        "finish_reason": finish_reason(result),
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.generated_tokens,
    }
    if result.logprobs:
        one["logprobs"] = completion_logprobs(result.logprobs)
    return {"results": [one]}


@router.post("/api/v1/generate", dependencies=[Depends(require_key)])
async def generate(request: Request, body: KoboldGenerate) -> dict[str, Any]:
    gen = _start(request, body, stream=False)
    watcher = _watch(request)
    try:
        result = await gen.wait(watcher)
    except Exception as e:
        raise as_api_error(e) from None
    finally:
        watcher.cancel()
    return _results(gen, result)


def _watch(request: Request) -> asyncio.Future[None]:
    return asyncio.ensure_future(client_gone(request.receive))


def _event(token: str, reason: str = "null", **extra: Any) -> dict[str, str]:
    return {
        "event": "message",
        "data": json.dumps({"token": token, "finish_reason": reason, **extra}),
    }


@router.post("/api/extra/generate/stream", dependencies=[Depends(require_key)])
async def generate_stream(request: Request, body: KoboldGenerate) -> EventSourceResponse:
    gen = _start(request, body, stream=True)
    watcher = _watch(request)
    try:
        first = await gen.first_piece(watcher)
    except Exception as e:
        raise as_api_error(e) from None

    events = stream_events(
        gen,
        first,
        _event,
        lambda result: [_event("", finish_reason(result))],
        lambda err: _event("", "error", error=err.message),
    )
    return EventSourceResponse(events, ping=15, sep="\n", headers={"cache-control": "no-cache"})


async def _genkey(request: Request) -> str:
    try:
        data = json.loads(await request.body() or b"{}")
        return GenKey.model_validate(data).genkey if isinstance(data, dict) else ""
    except ValueError:
        return ""


@router.post("/api/extra/abort", dependencies=[Depends(require_key)])
async def abort(request: Request) -> dict[str, str]:
    """With a genkey: that request, running or waiting. Without: the running API request."""
    state = server_state(request)
    key = await _genkey(request)
    gen = state.find(key) if key else state.running()
    if gen is None:
        return {"success": "false", "done": "false"}
    was_running = gen.started
    gen.cancel("aborted")
    return {"success": "true", "done": "true" if was_running else "false"}


@router.api_route(
    "/api/extra/generate/check", methods=["GET", "POST"], dependencies=[Depends(require_key)]
)
async def check(request: Request) -> dict[str, Any]:
    """The text so far of a request (by genkey), or of the running one sent without a key
    (never another client's keyed request)."""
    state = server_state(request)
    key = await _genkey(request) if request.method == "POST" else ""
    text = ""
    if key:
        gen = state.find(key)
        text = gen.text if gen else state.finished_texts.get(key, "")
    else:
        running = state.running()
        if running is not None and not running.genkey:
            text = running.text
    return {"results": [{"text": text}]}


@router.get("/api/v1/model")
async def model(request: Request) -> dict[str, str]:
    state = server_state(request)
    name = state.model_name() if authorized(request) else "koboldcpp/protected-model"
    return {"result": name}


@router.get("/api/v1/info/version")
async def api_version() -> dict[str, str]:
    return {"result": KOBOLDAI_API_VERSION}


@router.get("/api/v1/config/max_context_length")
async def max_context_length(request: Request) -> dict[str, int]:
    return {"value": _n_ctx(server_state(request))}


@router.get("/api/extra/true_max_context_length")
async def true_max_context_length(request: Request) -> dict[str, int]:
    return {"value": _n_ctx(server_state(request))}


@router.get("/api/v1/config/max_length")
async def max_length(request: Request) -> dict[str, int]:
    n_ctx = _n_ctx(server_state(request))
    return {"value": min(MAX_LENGTH, n_ctx // 2) if n_ctx else MAX_LENGTH}


@router.get("/api/extra/version")
async def version(request: Request) -> dict[str, Any]:
    return {
        "result": "KoboldCpp",
        "version": KOBOLDCPP_VERSION,
        "protected": bool(server_state(request).settings.api_key),
        "txt2img": False,
        "vision": False,
        "transcribe": False,
        "multiplayer": False,
        "websearch": False,
        "tts": False,
        "embeddings": False,
        "server": f"kobold-gui {__version__}",
    }


@router.get("/api/extra/perf")
async def perf(request: Request) -> dict[str, Any]:
    state = server_state(request)
    last = state.last
    now = time.time()
    return {
        "last_process": last.prompt_seconds if last else 0.0,
        "last_eval": last.generation_seconds if last else 0.0,
        "last_token_count": last.generated_tokens if last else 0,
        "last_input_count": last.prompt_tokens if last else 0,
        "last_seed": state.last_seed,
        "total_gens": state.total_gens,
        "stop_reason": _STOP_CODES.get(last.stop_reason, -1) if last else -1,
        "queue": state.waiting(),
        "idle": 0 if state.busy() else 1,
        "hordeexitcounter": 0,
        "uptime": now - state.started,
        "idletime": now - state.last_request,
        "quiet": True,
    }
