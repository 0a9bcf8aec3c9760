"""The ASGI app: both APIs, the API key, errors in each protocol's shape, and CORS as
KoboldCPP answers it (any origin, any method, the headers front-ends send), because
front-ends such as KoboldAI Lite and SillyTavern's browser side call it from web pages."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from kobold_gui import __version__
from kobold_gui.server import extra_routes, kobold_routes, llama_routes, openai_routes
from kobold_gui.server.errors import error_body, install_error_handlers
from kobold_gui.server.state import ServerState

log = logging.getLogger(__name__)


class JsonBodies:
    """KoboldCPP reads every POST body as JSON whatever its Content-Type (`curl -d` sends
    form encoding, some scripts send none): so does this server."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


# Other spellings of this server's paths that clients use: KoboldAI United's /api/latest,
# llama-server's OpenAI paths without /v1 (a base URL given without it), KoboldCPP's
# /v1/completion.
PATH_ALIASES = {
    "/models": "/v1/models",
    "/chat/completions": "/v1/chat/completions",
    "/v1/completion": "/v1/completions",
}


class PathAliases:
    """A trailing slash is dropped (KoboldCPP matches paths so: `/api/v1/generate/` is
    `/api/v1/generate`, not a redirect) and the aliases above lead to their paths."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            new = path.rstrip("/") or "/"
            if new.startswith("/api/latest/"):
                new = "/api/v1/" + new.removeprefix("/api/latest/")
            new = PATH_ALIASES.get(new, new)
            if new != path:
                scope = {**scope, "path": new, "raw_path": new.encode()}
        await self.app(scope, receive, send)


class BodyLimit:
    """Answers 413 to a POST body over the limit (KoboldCPP's --maxrequestsize), before
    it is read when its Content-Length says so, else as soon as the bytes pass the limit;
    the app gets the body once it is whole."""

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        limit = int(self.state.settings.max_request_mb * 1024 * 1024)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await self._too_large(scope, receive, send, limit)
                return
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Any, receive: Any, send: Any, limit: int) -> None:
        path = scope.get("path", "")
        mb = self.state.settings.max_request_mb
        message = (
            f"the request is larger than this server's limit of {mb:g} MB"
            " (the --maxrequestsize launch option)"
        )
        log.warning("POST %s refused: %s", path, message)
        self.state.activity.refused(path, _client(scope), 413, message)
        body = error_body(path, 413, message, "request_too_large")
        response = JSONResponse(body, 413, headers={"connection": "close"})
        await response(scope, receive, send)


def _client(scope: Any) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(
        title="kobold-gui local API",
        version=__version__,
        description="KoboldAI- and OpenAI-compatible endpoints on the model loaded in kobold-gui.",
    )
    app.state.server = state
    app.add_middleware(JsonBodies)
    app.add_middleware(BodyLimit, state=state)
    app.add_middleware(PathAliases)
    app.add_middleware(  # outermost: its headers are on every answer, 413 too
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        max_age=600,
    )
    install_error_handlers(app)
    app.include_router(kobold_routes.router)
    app.include_router(extra_routes.router)
    app.include_router(openai_routes.router)
    app.include_router(llama_routes.router)
    app.include_router(llama_routes.public)
    return app
