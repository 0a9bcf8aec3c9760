"""Token log-probabilities in the shapes clients read: KoboldCPP's (which is OpenAI's
completions shape plus OpenAI's chat `content` list) and OpenAI chat's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kobold_gui.core.engine.types import TokenLogprob


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def chat_logprobs(items: Sequence[TokenLogprob]) -> dict[str, Any] | None:
    """OpenAI chat's `logprobs`: {"content": [{token, logprob, bytes, top_logprobs}]}."""
    if not items:
        return None
    content = [
        _entry(i.token, i.logprob) | {"top_logprobs": [_entry(t, lp) for t, lp in i.top]}
        for i in items
    ]
    return {"content": content}


def completion_logprobs(items: Sequence[TokenLogprob]) -> dict[str, Any] | None:
    """OpenAI completions' `logprobs` (tokens, token_logprobs, top_logprobs, text_offset),
    with chat's `content` list too, as KoboldCPP answers both APIs and last_logprobs."""
    if not items:
        return None
    offsets, at = [], 0
    for i in items:
        offsets.append(at)
        at += len(i.token)
    return {
        "content": (chat_logprobs(items) or {})["content"],
        "tokens": [i.token for i in items],
        "token_logprobs": [i.logprob for i in items],
        "top_logprobs": [dict(i.top) for i in items],
        "text_offset": offsets,
    }
