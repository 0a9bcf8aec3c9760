"""The ASGI app: both APIs, the API key, errors in each protocol's shape, and CORS as
KoboldCPP answers it (any origin, any method, the headers front-ends send), because
front-ends such as KoboldAI Lite and SillyTavern's browser side call it from web pages."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from kobold_gui import __version__
from kobold_gui.server import kobold_routes, openai_routes
from kobold_gui.server.errors import install_error_handlers
from kobold_gui.server.state import ServerState


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


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(
        title="kobold-gui local API",
        version=__version__,
        description="KoboldAI- and OpenAI-compatible endpoints on the model loaded in kobold-gui.",
    )
    app.state.server = state
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        max_age=600,
    )
    app.add_middleware(JsonBodies)
    install_error_handlers(app)
    app.include_router(kobold_routes.router)
    app.include_router(openai_routes.router)
    return app
