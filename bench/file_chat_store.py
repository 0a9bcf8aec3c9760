"""The file chat store as it was before the SQLite one (main at e59e780), kept for
bench/chat_store.py to measure against; not used by the app.

Conversations on disk, one per chat: a snapshot `<id>.json` (versioned, written atomically)
and beside it an append-only journal `<id>.<generation>.jsonl` of the changes made since
(a streamed reply costs an append of its new text, whatever the size of the chat or the
number of chats). Reading replays the journal over the snapshot; a line cut by a kill is
left out. Compacting writes a new snapshot that names a new journal generation, then drops
the old journal, so a kill at any moment leaves one consistent state.

`index.json` caches each chat's title and dates with the sizes and times of its files, so
the chats list is read without parsing every chat; it is only a cache, checked against the
files on start. A corrupt file, or one from a newer version, is reported and moved aside,
never overwritten. Version 1 files (a snapshot without journal) are upgraded on read."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kobold_gui.core.chats.legacy_import import apply_record as apply_op
from kobold_gui.core.chats.types import (
    ChatSummary,
    Conversation,
    Op,
    ReplyVersion,
    StoredMessage,
    conversation_from_json,
    import_openai,
)
from kobold_gui.core.paths import data_dir, write_json_atomic

__all__ = [
    "ChatFileError",
    "ChatStore",
    "ChatSummary",
    "Conversation",
    "ReplyVersion",
    "StoredMessage",
    "import_openai",
]

SCHEMA_VERSION = 2  # 2: a journal beside the snapshot; replies' versions keep their stats
INDEX_VERSION = 1
_ID = re.compile(r"^[0-9a-f]{32}$")
Signature = list[int]


class ChatFileError(ValueError):
    """A conversation file that cannot be used; it has been moved aside."""


class ChatStore:
    """Every write goes through one thread at a time (the ChatWriter's); reads may come from
    any thread."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or data_dir() / "chats"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.problems: list[str] = []  # files set aside, for the user
        self._lock = threading.Lock()
        self._generation: dict[str, int] = {}  # journal generation of chats read or written
        self._summaries: dict[str, ChatSummary] | None = None  # None until scanned

    # -- paths ---------------------------------------------------------------------------
    def path_of(self, conv_id: str) -> Path:
        return self.folder / f"{conv_id}.json"

    def journal_of(self, conv_id: str, generation: int) -> Path:
        return self.folder / f"{conv_id}.{generation}.jsonl"

    # -- reading -------------------------------------------------------------------------
    def load(self, conv_id: str) -> Conversation:
        """The conversation as last saved; a file that cannot be used is set aside
        (ChatFileError says where it went)."""
        conv, generation = self._read(conv_id, set_aside=True)
        with self._lock:
            self._generation.setdefault(conv_id, generation)
        return conv

    def _read(self, conv_id: str, set_aside: bool) -> tuple[Conversation, int]:
        path = self.path_of(conv_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            version = data.get("version", 1)
            if isinstance(version, int) and version > SCHEMA_VERSION:
                if not set_aside:
                    raise ChatFileError(f"{path.name} is from a newer kobold-gui")
                raise ChatFileError(
                    self._set_aside(conv_id, f"v{version}", "was written by a newer kobold-gui")
                )
            conv = conversation_from_json(data)
            generation = int(data.get("journal", 0))
        except ChatFileError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            if not set_aside:
                raise ChatFileError(f"{path.name} could not be read ({e})") from None
            raise ChatFileError(
                self._set_aside(conv_id, "corrupt", f"could not be read ({e})")
            ) from None
        self._replay(conv, self.journal_of(conv_id, generation), set_aside)
        if version == 1 and set_aside:  # upgrade on read: the same data, version 2
            self._write_snapshot(conv, generation)
        return conv, generation

    def _replay(self, conv: Conversation, journal: Path, report: bool) -> None:
        try:
            raw = journal.read_bytes()
        except FileNotFoundError:
            return
        lines = raw.split(b"\n")
        for n, line in enumerate(lines[:-1]):  # the last piece has no newline: cut by a kill
            try:
                apply_op(conv, json.loads(line))
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
                if report:
                    kept = journal.with_name(f"{journal.name}.corrupt-{int(time.time())}.aside")
                    kept.write_bytes(raw)
                    self._report(
                        f"Part of the chat file {journal.name} could not be read (line {n + 1}: "
                        f"{e}); the chat is shown as it was before that line, the file was "
                        f"copied to {kept.name}."
                    )
                return

    def _set_aside(self, conv_id: str, tag: str, why: str) -> str:
        path = self.path_of(conv_id)
        target = path.with_name(f"{conv_id}.{tag}-{int(time.time())}.json.aside")
        path.replace(target)
        message = f"The chat file {path.name} {why}; it was kept as {target.name}."
        self._report(message)
        return message

    def _report(self, message: str) -> None:
        with self._lock:
            self.problems.append(message)

    # -- writing (one thread at a time) ------------------------------------------------------
    def save(self, conv: Conversation) -> None:
        """A new snapshot of the whole conversation (compaction): the journal starts over."""
        with self._lock:
            old = self._generation.get(conv.id)
        generation = 0 if old is None else old + 1
        self._write_snapshot(conv, generation)
        if old is not None:
            self.journal_of(conv.id, old).unlink(missing_ok=True)
        self._remember(conv.summary())

    def _write_snapshot(self, conv: Conversation, generation: int) -> None:
        data = {"version": SCHEMA_VERSION, "journal": generation, **asdict(conv)}
        write_json_atomic(self.path_of(conv.id), data)
        with self._lock:
            self._generation[conv.id] = generation

    def append(self, conv_id: str, ops: Iterable[Op], summary: ChatSummary | None = None) -> int:
        """Adds records to the chat's journal (the chat must have been saved or read before).
        Returns the journal's size in bytes, for the caller to decide when to compact."""
        with self._lock:
            generation = self._generation[conv_id]
        text = "".join(json.dumps(op, ensure_ascii=False) + "\n" for op in ops)
        with open(self.journal_of(conv_id, generation), "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            size = f.tell()
        if summary is not None:
            self._remember(summary)
        return size

    def sync(self, conv_id: str) -> None:
        """Flushes the chat's journal to the disk (a power cut, not only a kill)."""
        with self._lock:
            generation = self._generation.get(conv_id)
        if generation is None:
            return
        try:
            fd = os.open(self.journal_of(conv_id, generation), os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self, conv_id: str) -> None:
        """Moves the chat's files to the trash folder (undo restores them)."""
        trash = self.folder / "trash"
        trash.mkdir(exist_ok=True)
        with self._lock:
            self._generation.pop(conv_id, None)
            if self._summaries is not None:
                self._summaries.pop(conv_id, None)
        self.path_of(conv_id).replace(trash / self.path_of(conv_id).name)
        for journal in self.folder.glob(f"{conv_id}.*.jsonl"):  # a rare action: a listing is fine
            journal.replace(trash / journal.name)

    def undelete(self, conv_id: str) -> Conversation:
        trash = self.folder / "trash"
        (trash / self.path_of(conv_id).name).replace(self.path_of(conv_id))
        for journal in trash.glob(f"{conv_id}.*.jsonl"):
            journal.replace(self.folder / journal.name)
        conv = self.load(conv_id)
        self._remember(conv.summary())
        return conv

    # -- the index: the chats list without parsing every chat ----------------------------------
    def _remember(self, summary: ChatSummary) -> None:
        with self._lock:
            if self._summaries is not None:
                self._summaries[summary.id] = summary

    def scan(self) -> list[ChatSummary]:
        """Every readable chat, most recent first: from the index where a chat's files are
        unchanged, else by reading them (bad files are set aside). Writes the index back when
        it was out of date. Meant for a worker thread (it lists the whole folder)."""
        cached = self._read_index()
        files = self._signatures()
        summaries: dict[str, ChatSummary] = {}
        stale = False
        for conv_id, signature in files.items():
            entry = cached.get(conv_id)
            if entry is not None and entry[1] == signature:
                summaries[conv_id] = entry[0]
                continue
            stale = True
            try:
                conv, _ = self._read(conv_id, set_aside=True)
            except (ChatFileError, OSError):
                continue
            summaries[conv_id] = conv.summary()
        with self._lock:
            if self._summaries is not None:  # written meanwhile: those are newer
                summaries.update(self._summaries)
            self._summaries = summaries
        if stale or set(cached) != set(summaries):
            self.write_index()
        return self.summaries()

    def summaries(self) -> list[ChatSummary]:
        with self._lock:
            known = list((self._summaries or {}).values())
        return sorted(known, key=lambda s: s.updated, reverse=True)

    def _signatures(self) -> dict[str, Signature]:
        """Size and time of each chat's snapshot and journal, from one listing."""
        stats: dict[str, os.stat_result] = {}
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.is_file() and (entry.name.endswith((".json", ".jsonl"))):
                    stats[entry.name] = entry.stat()
        journals: dict[str, Signature] = {}
        for name, st in stats.items():
            if name.endswith(".jsonl"):
                journals.setdefault(name.partition(".")[0], []).extend([st.st_size, st.st_mtime_ns])
        out: dict[str, Signature] = {}
        for name, st in stats.items():
            stem, _, ext = name.partition(".")
            if ext == "json" and _ID.match(stem):
                out[stem] = [st.st_size, st.st_mtime_ns, *journals.get(stem, [])]
        return out

    def _read_index(self) -> dict[str, tuple[ChatSummary, Signature]]:
        try:
            data = json.loads((self.folder / "index.json").read_text(encoding="utf-8"))
            if data.get("version") != INDEX_VERSION:
                return {}
            return {
                conv_id: (ChatSummary(conv_id, **entry["summary"]), list(entry["files"]))
                for conv_id, entry in data["chats"].items()
            }
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}  # only a cache: rebuilt from the files

    def write_index(self) -> None:
        with self._lock:
            if self._summaries is None:
                return
            summaries = dict(self._summaries)
        files = self._signatures()
        chats: dict[str, Any] = {}
        for conv_id, s in summaries.items():
            if conv_id in files:
                summary = {k: v for k, v in asdict(s).items() if k != "id"}
                chats[conv_id] = {"summary": summary, "files": files[conv_id]}
        write_json_atomic(self.folder / "index.json", {"version": INDEX_VERSION, "chats": chats})

    # -- search ----------------------------------------------------------------------------
    def search(self, text: str) -> set[str]:
        """Ids of the chats whose title or messages contain the text (reads every chat:
        for a worker thread)."""
        needle = text.lower().strip()
        found = set()
        for summary in self.summaries():
            if needle in summary.title.lower():
                found.add(summary.id)
                continue
            try:
                conv, _ = self._read(summary.id, set_aside=False)
            except (ChatFileError, OSError):
                continue
            if any(needle in m.content.lower() for m in conv.messages):
                found.add(summary.id)
        return found
