"""Rows of the chats database to and from the conversation types, checked: SQLite keeps
whatever a column is given (another program, an older build, a damaged page), so every
value read is checked for its type, and a row that does not fit raises OddRow, for the
store to set that one row aside (never the whole list)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from kobold_gui.core.chats.types import ChatSummary, ReplyVersion, StoredMessage

CHAT_COLUMNS = "id, title, shown_title, created, updated, model, system_prompt, sampling"
MESSAGE_COLUMNS = "id, role, content, created, stats, complete, cut, alternatives"
ROLES = ("system", "user", "assistant")


class OddRow(ValueError):
    """A row whose values do not fit (a date that is not a number, a model that is not text)."""


def _time(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OddRow(f"{name} is {value!r:.40}, not a time")
    return float(value)


def _text(value: object, name: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise OddRow(f"{name} is {value!r:.40}, not text")
    return value


def _json(value: object, name: str, kind: type) -> Any:
    if value is None:
        return None
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except ValueError as e:
        raise OddRow(f"{name} is not JSON ({e})") from None
    if not isinstance(data, kind):
        raise OddRow(f"{name} is {data!r:.40}, not a {kind.__name__}")
    return data


def summary_from_row(row: tuple[Any, ...]) -> ChatSummary:
    """(CHAT_COLUMNS) -> what the chats list shows."""
    conv_id, title, shown, created, updated, model = row[:6]
    return ChatSummary(
        str(_text(conv_id, "id")),
        str(_text(shown, "title") or _text(title, "title") or "New chat"),
        _time(created, "created"),
        _time(updated, "updated"),
        _text(model, "model", optional=True),
    )


def meta_from_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """(CHAT_COLUMNS) -> the Conversation's fields other than its messages."""
    summary = summary_from_row(row)
    return {
        "id": summary.id,
        "title": _text(row[1], "title"),
        "created": summary.created,
        "updated": summary.updated,
        "model": summary.model,
        "system_prompt": _text(row[6], "system prompt"),
        "sampling": _json(row[7], "sampling", dict) or {},
    }


def message_from_row(row: tuple[Any, ...]) -> StoredMessage:
    """(MESSAGE_COLUMNS) -> a message."""
    msg_id, role, content, created, stats, complete, cut, alternatives = row
    if role not in ROLES:
        raise OddRow(f"role is {role!r:.40}")
    versions = []
    for v in _json(alternatives, "alternatives", list) or []:
        if not isinstance(v, dict) or not isinstance(v.get("content"), str):
            raise OddRow(f"a reply version is {v!r:.40}")
        versions.append(ReplyVersion(v["content"], v.get("stats")))
    return StoredMessage(
        role,
        str(_text(content, "content")),
        created=_time(created, "created"),
        stats=_json(stats, "stats", dict),
        complete=bool(complete),
        alternatives=versions,
        cut=str(_text(cut, "cut")),
        id=str(_text(msg_id, "id")),
    )


def message_values(m: StoredMessage) -> tuple[Any, ...]:
    """A message as (MESSAGE_COLUMNS) values."""
    versions = [{"content": v.content, "stats": v.stats} for v in m.alternatives]
    return (
        m.id,
        m.role,
        m.content,
        m.created,
        None if m.stats is None else json.dumps(m.stats),
        int(m.complete),
        m.cut,
        json.dumps(versions, ensure_ascii=False),
    )


def message_from_op(data: Mapping[str, Any]) -> StoredMessage:
    """A message as an operation carries it (asdict of a StoredMessage), checked."""
    versions = [v if isinstance(v, dict) else {"content": v} for v in data.get("alternatives", [])]
    created = data.get("created")
    return message_from_row(
        (
            data.get("id"),
            data.get("role"),
            data.get("content"),
            0.0 if created is None else created,
            data.get("stats"),
            data.get("complete", True),
            data.get("cut", ""),
            versions,
        )
    )
