"""KoboldCPP's helper endpoints (tokens, logprobs, grammar, the preloaded story), which
KoboldAI Lite, SillyTavern's KoboldCpp modes and scripts written for KoboldCPP call.
llama-server's own paths (/props, /tokenize, ...) are in llama_routes.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request

from kobold_gui.core.engine.sampling_request import schema_grammar
from kobold_gui.server.auth import require_key
from kobold_gui.server.errors import ApiError, as_api_error, refusal
from kobold_gui.server.logprobs import completion_logprobs
from kobold_gui.server.schemas import Detokenize, GenKey, SchemaBody, TokenCount
from kobold_gui.server.state import server_state

router = APIRouter(dependencies=[Depends(require_key)])
log = logging.getLogger(__name__)


@router.post("/api/extra/tokencount")
@router.post("/api/extra/tokenize")
async def tokencount(request: Request, body: TokenCount) -> dict[str, Any]:
    try:
        ids = server_state(request).worker.tokenize(body.prompt, add_special=body.special)
    except Exception as e:
        raise refusal(e) from None
    return {"value": len(ids), "ids": ids}


@router.post("/api/extra/detokenize")
async def detokenize(request: Request, body: Detokenize) -> dict[str, Any]:
    try:
        text = server_state(request).worker.detokenize(body.ids)
    except Exception as e:
        error = as_api_error(e)
        status = 503 if error.status == 503 else 400
        raise ApiError(status, error.message, error.kind) from None
    return {"result": text, "success": True}


@router.post("/api/extra/last_logprobs")
async def last_logprobs(request: Request) -> dict[str, Any]:
    """The logprobs of the last finished request sent with this genkey (or, without one,
    of the last request when it had none: never another client's keyed request). They are
    there when that request asked for logprobs."""
    state = server_state(request)
    try:
        data = json.loads(await request.body() or b"{}")
        key = GenKey.model_validate(data).genkey if isinstance(data, dict) else ""
    except ValueError:
        key = ""
    items = state.finished_logprobs.get(key, ()) if key else state.last_unkeyed_logprobs()
    return {"logprobs": completion_logprobs(items)}


@router.post("/api/extra/json_to_grammar")
async def json_to_grammar(request: Request) -> dict[str, Any]:
    """{"schema": {...}} (or the schema itself) to GBNF: {"result": ..., "success": true}."""
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ApiError(400, "the body is not valid JSON", "bad_input") from None
    if isinstance(data, dict) and isinstance(data.get("schema"), dict):
        data = SchemaBody.model_validate(data).schema_
    try:
        return {"result": schema_grammar(data), "success": True}
    except Exception as e:
        raise refusal(e) from None


@router.get("/api/extra/preloadstory")
async def preloadstory(request: Request) -> Any:
    """The story file served with --preloadstory ({} without one), for KoboldAI Lite."""
    path = server_state(request).settings.preload_story
    if not path:
        return {}
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("the preloaded story %s cannot be read: %s", path, e)
        return {}
