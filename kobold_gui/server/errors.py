"""Errors in each protocol's own shape: OpenAI's {"error": {...}} under /v1, KoboldCPP's
{"detail": {"msg", "type"}} elsewhere. Every message is written for the person at the
front-end."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kobold_gui.core.engine.prompt_template import TemplateError
from kobold_gui.core.engine.sampler import SamplerError
from kobold_gui.core.engine.types import BadTokenIds, EmptyPrompt, EngineError
from kobold_gui.core.engine.worker import ModelUnavailable, QueueClosed
from kobold_gui.server.generation import PromptTooLong, ServerBusy

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", code: str = ""
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.recorded = False


def is_openai(path: str) -> bool:
    return path.startswith("/v1")


# llama-server's own paths: its error shape, {"error": {"code": status, "message", "type"}}
LLAMA_PATHS = ("/completion", "/completions", "/tokenize", "/detokenize", "/props", "/slots")


def is_llama(path: str) -> bool:
    return path in LLAMA_PATHS or path.startswith("/slots/")


def error_body(path: str, status: int, message: str, kind: str, code: str = "") -> Any:
    if is_llama(path):
        return {"error": {"code": status, "message": message, "type": kind}}
    if is_openai(path):
        return {"error": {"message": message, "type": kind, "param": None, "code": code or None}}
    return {"detail": {"msg": message, "type": kind}}


def as_api_error(e: BaseException) -> ApiError:
    """A generation's failure as the HTTP error a client gets."""
    if isinstance(e, ApiError):
        return e
    recorded = _as_api_error(e)
    recorded.recorded = True  # the generation's own record has it already
    return recorded


def refusal(e: BaseException) -> ApiError:
    """A request refused before its generation began (its activity record is the
    refusal's own)."""
    return e if isinstance(e, ApiError) else _as_api_error(e)


def _as_api_error(e: BaseException) -> ApiError:
    if isinstance(e, SamplerError):
        return ApiError(400, str(e))
    if isinstance(e, PromptTooLong):
        return ApiError(400, str(e), code="context_length_exceeded")
    if isinstance(e, (TemplateError, BadTokenIds, EmptyPrompt)):
        return ApiError(400, str(e))
    if isinstance(e, (ModelUnavailable, QueueClosed, ServerBusy)):
        return ApiError(503, str(e), "service_unavailable")
    if isinstance(e, EngineError):
        log.error("a request failed: %s", e)
        return ApiError(500, str(e), "server_error")
    log.error("a request failed unexpectedly", exc_info=e)
    return ApiError(500, f"unexpected error: {type(e).__name__}: {e}", "server_error")


def _respond(request: Request, e: ApiError) -> JSONResponse:
    """The error response; refusals also show in the Server panel's activity (generations
    that fail are recorded by their own job)."""
    log.info("%s %s answered %d: %s", request.method, request.url.path, e.status, e.message)
    if not getattr(e, "recorded", False):
        client = f"{request.client.host}:{request.client.port}" if request.client else "?"
        request.app.state.server.activity.refused(request.url.path, client, e.status, e.message)
    return JSONResponse(error_body(request.url.path, e.status, e.message, e.kind, e.code), e.status)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def validation_message(exc: RequestValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            lines.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', '')})")
        elif loc == ("body",) and err.get("type") in ("model_attributes_type", "dict_type"):
            lines.append("the body must be a JSON object")
        elif err.get("type") == "value_error":  # a validator's own message names the field
            lines.append(str(err.get("ctx", {}).get("error") or err.get("msg")))
        else:
            lines.append(f"{_field(loc)}: {err.get('msg')}")
    return "; ".join(lines) or "the request body is not valid"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _respond(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # OpenAI and llama-server answer 400 for a bad body; KoboldAI's API 422.
        status = 400 if is_openai(request.url.path) or is_llama(request.url.path) else 422
        kind = "invalid_request_error" if status == 400 else "bad_input"
        return _respond(request, ApiError(status, validation_message(exc), kind))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = (
            f"{request.url.path} does not exist on this server"
            if exc.status_code == 404
            else str(exc.detail)
        )
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        return _respond(request, ApiError(exc.status_code, message, kind))
