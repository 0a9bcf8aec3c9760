"""Who can reach the API at an address: said before the server starts (no web stack needed
to say it, so the window's Server tab imports FastAPI and uvicorn only when it serves)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, api_key: str = "") -> str:
    """What a user should know before serving beyond this computer ("" on loopback): a
    warning without an API key, a milder note with one (the key, like the text, still
    crosses the network unencrypted)."""
    if is_loopback(host):
        return ""
    who = "every network this computer is on" if host in ("0.0.0.0", "::") else host
    if api_key:
        return (
            f"The API is reachable from {who}; clients need the API key. The traffic,"
            " the key included, is not encrypted: serve only on networks you trust."
        )
    return (
        f"The API is reachable from {who}: anyone there can use the model"
        " (set an API key), and the traffic is not encrypted."
    )
