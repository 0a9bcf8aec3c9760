"""A conversation as plain data: messages, the versions of a reply, the list's summary, and
the operations that change a conversation (core/chats/store.py applies each batch as one
SQLite transaction). A message has an id of its own: an operation names the message it
changes, never a position, so two windows appending to one chat never overwrite each other.
Nothing here touches the disk."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Op = dict[str, Any]  # one change, see op_put, op_text, op_drop, op_meta


@dataclass
class ReplyVersion:
    """An earlier answer to the same message (regenerate), with its own stats."""

    content: str
    stats: dict[str, Any] | None = None


@dataclass
class StoredMessage:
    role: str  # system, user, assistant
    content: str
    created: float = field(default_factory=time.time)
    stats: dict[str, Any] | None = None  # tokens/s, TTFT, prompt and generated tokens
    # False while a reply streams; a reply read back with False was cut off (a kill, a crash)
    complete: bool = True
    alternatives: list[ReplyVersion] = field(default_factory=list)
    cut: str = ""  # why a reply was cut off, when it is known (an engine error): shown under it
    id: str = field(default_factory=lambda: uuid.uuid4().hex)  # the operations name it


def message_from_json(data: dict[str, Any]) -> StoredMessage:
    """A message as saved; version 1 kept earlier replies as bare strings (no stats)."""
    versions = [
        ReplyVersion(v) if isinstance(v, str) else ReplyVersion(str(v["content"]), v.get("stats"))
        for v in data.get("alternatives", [])
    ]
    fields: dict[str, Any] = {
        k: data[k] for k in ("created", "stats", "complete", "cut") if k in data
    }
    if isinstance(data.get("id"), str) and data["id"]:
        fields["id"] = data["id"]
    role, content = data["role"], data["content"]
    if not isinstance(role, str) or not isinstance(content, str):
        raise ValueError(f"not a chat message: {data!r:.80}")
    return StoredMessage(role, content, alternatives=versions, **fields)


META_FIELDS = ("title", "created", "updated", "model", "system_prompt", "sampling")


@dataclass
class Conversation:
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    title: str = ""
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    model: str | None = None
    system_prompt: str = ""
    messages: list[StoredMessage] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)  # this chat's SamplingParams

    def display_title(self) -> str:
        if self.title:
            return self.title
        first = next((m.content for m in self.messages if m.role == "user"), "")
        text = " ".join(first.split())
        return (text[:48] + "…") if len(text) > 48 else (text or "New chat")

    def summary(self) -> ChatSummary:
        return ChatSummary(self.id, self.display_title(), self.created, self.updated, self.model)

    def meta(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in META_FIELDS}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_openai(self) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return system + [{"role": m.role, "content": m.content} for m in self.messages]

    def to_markdown(self) -> str:
        lines = [f"# {self.display_title()}", ""]
        if self.model:
            lines += [f"*Model: {Path(self.model).name}*", ""]
        if self.system_prompt:
            lines += ["**System:** " + self.system_prompt, ""]
        for m in self.messages:
            lines += [f"## {m.role.capitalize()}", "", m.content, ""]
        return "\n".join(lines)


@dataclass(frozen=True)
class ChatSummary:
    """What the chats list shows of a conversation, kept in the index."""

    id: str
    title: str
    created: float
    updated: float
    model: str | None = None


def conversation_from_json(data: dict[str, Any]) -> Conversation:
    messages = [message_from_json(m) for m in data.get("messages", [])]
    fields = {k: data[k] for k in ("id", *META_FIELDS) if k in data}
    return Conversation(messages=messages, **fields)


def import_openai(messages: Sequence[dict[str, Any]], title: str = "") -> Conversation:
    """A conversation from OpenAI-style messages ([{role, content}, ...])."""
    conv = Conversation(title=title)
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            raise ValueError(f"not a chat message: {m!r}")
        if role == "system" and not conv.messages:
            conv.system_prompt = content
        else:
            conv.messages.append(StoredMessage(role, content))
    return conv


# -- operations: small records that change a conversation ---------------------------------
def op_put(message: StoredMessage) -> Op:
    """The message as it is now: added after the chat's last one when new, else replaced."""
    return {"op": "put", "m": asdict(message)}


def op_text(message_id: str, text: str) -> Op:
    """Text added to a message (a streamed reply)."""
    return {"op": "text", "id": message_id, "s": text}


def op_drop(message_ids: Sequence[str]) -> Op:
    """These messages are removed (edit, an undone turn); others' messages stay."""
    return {"op": "drop", "ids": list(message_ids)}


def op_meta(conv: Conversation) -> Op:
    return {"op": "meta", "d": conv.meta(), "title": conv.display_title()}
