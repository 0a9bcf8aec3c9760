"""The optional API key: `Authorization: Bearer KEY`, as KoboldCPP's --password and OpenAI
clients send it. Compared in constant time."""

from __future__ import annotations

import secrets

from fastapi import Request

from kobold_gui.server.errors import ApiError


def authorized(request: Request) -> bool:
    key: str = request.app.state.server.settings.api_key
    if not key:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        token.strip().encode(), key.encode()
    )


async def require_key(request: Request) -> None:
    if not authorized(request):
        raise ApiError(
            401,
            "Authentication key is missing or invalid: send 'Authorization: Bearer <key>' "
            "with the API key set in kobold-gui's Server panel.",
            "unauthorized" if not request.url.path.startswith("/v1") else "invalid_request_error",
            code="invalid_api_key",
        )
