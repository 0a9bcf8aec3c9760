"""Every request to the hub's API with limits of its own: a connect limit, a read limit and
a bounded retry (NetLimits), so that a hub that accepts the connection and never answers,
or one that refuses it, ends in a message instead of a wait without end.

huggingface_hub's listing calls cannot be given these: list_models pages through
http_backoff with timeout=None (overriding the client's own limits) and up to 5 retries with
growing pauses (24 s before a refused connection is said). So the API's JSON is fetched here,
on huggingface_hub's own client, checked by its hf_raise_for_status (which names a gated or
missing repository) and read by its own dataclasses (search.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

# huggingface_hub's HTTP module (httpx in 1.x, httpx2 from 2.0): see core/hub/search.py
from huggingface_hub.utils import hf_raise_for_status, httpx

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


@dataclass(frozen=True)
class NetLimits:
    """How long one request may take to connect and between two reads, and how many times
    a request that never reached the hub (refused, unreachable) or got a busy answer (429,
    5xx) is tried again. A read that timed out is not retried: the hub is there and slow,
    and the user can ask again."""

    connect_s: float = 10.0
    read_s: float = 30.0
    retries: int = 2
    retry_pause_s: float = 0.5  # then 2x, 3x...

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_s, connect=self.connect_s)


def get_json(
    client: httpx.Client,
    url: str,
    limits: NetLimits,
    headers: dict[str, str],
    params: dict[str, Any] | None = None,
) -> Any:
    """The JSON the hub answers at `url`; raises huggingface_hub's errors for an error
    answer and httpx's for a network failure (the last one, once the retries are spent)."""

    def ask() -> httpx.Response:
        return client.get(url, params=params, headers=headers, timeout=limits.timeout())

    r = with_retries(limits, ask)
    hf_raise_for_status(r)
    return r.json()


def with_retries(limits: NetLimits, call: Callable[[], T]) -> T:
    """call() again after a connection that failed, or a busy answer (429, 5xx: returned
    as it is once the retries are spent), at most limits.retries times."""
    for attempt in range(limits.retries + 1):
        last = attempt == limits.retries
        try:
            result = call()
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if last:
                raise
        else:
            status = getattr(result, "status_code", None)
            if last or status not in RETRY_STATUS:
                return result
        time.sleep(limits.retry_pause_s * (attempt + 1))
    raise AssertionError("unreachable")  # the last attempt returns or raises
