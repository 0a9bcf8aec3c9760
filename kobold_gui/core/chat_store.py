"""Conversations on disk: one versioned JSON file each under the data folder, written
atomically (temporary file, flush, rename), so a crash or a kill at any moment leaves the
last saved state, never half a file. A corrupt file, or one from a newer version, is
reported and moved aside, never overwritten."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kobold_gui.core.paths import data_dir, write_json_atomic

SCHEMA_VERSION = 1
_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class StoredMessage:
    role: str  # system, user, assistant
    content: str
    created: float = field(default_factory=time.time)
    stats: dict[str, Any] | None = None  # tokens/s, TTFT, prompt and generated tokens
    complete: bool = True  # False while a reply streams (or when it was cut off)
    alternatives: list[str] = field(default_factory=list)  # earlier versions (regenerate)


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


class ChatFileError(ValueError):
    """A conversation file that cannot be used; it has been moved aside."""


def conversation_from_json(data: dict[str, Any]) -> Conversation:
    messages = [StoredMessage(**m) for m in data.get("messages", [])]
    fields = {
        k: data[k]
        for k in ("id", "title", "created", "updated", "model", "system_prompt", "sampling")
        if k in data
    }
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


class ChatStore:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or data_dir() / "chats"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.problems: list[str] = []  # files set aside, for the user

    def path_of(self, conv_id: str) -> Path:
        return self.folder / f"{conv_id}.json"

    def save(self, conv: Conversation) -> None:
        conv.updated = time.time()
        write_json_atomic(self.path_of(conv.id), {"version": SCHEMA_VERSION, **asdict(conv)})

    def load(self, conv_id: str) -> Conversation:
        path = self.path_of(conv_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            version = data.get("version")
            if isinstance(version, int) and version > SCHEMA_VERSION:
                raise ChatFileError(
                    self._set_aside(path, f"v{version}", "was written by a newer kobold-gui")
                )
            return conversation_from_json(data)
        except ChatFileError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise ChatFileError(
                self._set_aside(path, "corrupt", f"could not be read ({e})")
            ) from None

    def _set_aside(self, path: Path, tag: str, why: str) -> str:
        target = path.with_name(f"{path.stem}.{tag}-{int(time.time())}.json.aside")
        path.replace(target)
        message = f"The chat file {path.name} {why}; it was kept as {target.name}."
        self.problems.append(message)
        return message

    def conversations(self) -> list[Conversation]:
        """Every readable conversation, the most recent first (bad files are set aside)."""
        out = []
        for path in self.folder.glob("*.json"):
            if not _ID.match(path.stem):
                continue
            try:
                out.append(self.load(path.stem))
            except (ChatFileError, OSError):
                continue
        return sorted(out, key=lambda c: c.updated, reverse=True)

    def delete(self, conv_id: str) -> Path:
        """Moves the file to the trash folder (undo restores it)."""
        trash = self.folder / "trash"
        trash.mkdir(exist_ok=True)
        target = trash / f"{conv_id}.json"
        self.path_of(conv_id).replace(target)
        return target

    def undelete(self, conv_id: str) -> None:
        (self.folder / "trash" / f"{conv_id}.json").replace(self.path_of(conv_id))

    def search(self, text: str) -> list[Conversation]:
        needle = text.lower().strip()
        return [
            c
            for c in self.conversations()
            if not needle
            or needle in c.display_title().lower()
            or any(needle in m.content.lower() for m in c.messages)
        ]
