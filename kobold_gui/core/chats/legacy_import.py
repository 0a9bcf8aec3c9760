"""Chat files of earlier versions, imported into the database once, nothing lost:

- version 1: `<id>.json`, the whole chat (earlier replies as bare strings);
- version 2: `<id>.json` naming a journal generation, and `<id>.<generation>.jsonl`, one
  JSON record a line (put, text, trim, meta; positions by index) replayed over it.

A journal is read record by record: a line cut by a kill or a full disk, a damaged line in
the middle, or a record glued after a cut one are each skipped alone, and every readable
record after them is kept (the file store stopped at the first bad line). Odd values of a
chat's title, dates or model are replaced (the file's time, no model) with a note. A chat's
files move to `imported/` only once the database holds as many messages as were read;
until then they stay where they are. A file that cannot be read at all (not JSON, from a
newer version) is renamed `*.aside` and named in the store's problems, as before."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kobold_gui.core.chats.types import META_FIELDS, Conversation, message_from_json


class ChatStore(Protocol):
    """What the import needs of core/chats/store.py's ChatStore."""

    folder: Path

    @property
    def read_only(self) -> bool: ...

    def has_chat(self, conv_id: str) -> bool: ...

    def save(self, conv: Conversation) -> None: ...

    def message_count(self, conv_id: str) -> int: ...

    def report(self, message: str) -> None: ...


LAST_FILE_VERSION = 2
_SNAPSHOT = re.compile(r"^([0-9a-f]{32})\.json$")
_RECORD_START = '{"op"'  # cannot occur inside a JSON string (its quotes are escaped)


class LegacyError(ValueError):
    """A chat file that cannot be read at all."""


@dataclass
class LegacyChat:
    conv: Conversation
    files: list[Path]
    notes: list[str] = field(default_factory=list)


def legacy_ids(folder: Path) -> list[str]:
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return []
    return sorted(m.group(1) for name in names if (m := _SNAPSHOT.match(name)))


def read_chat(folder: Path, conv_id: str) -> LegacyChat:
    path = folder / f"{conv_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise LegacyError(f"could not be read ({e})") from None
    if not isinstance(data, dict):
        raise LegacyError("could not be read (not a JSON object)")
    version = data.get("version", 1)
    if isinstance(version, int) and version > LAST_FILE_VERSION:
        raise LegacyError("was written by a newer kobold-gui")
    chat = LegacyChat(Conversation(id=conv_id), [path, *sorted(folder.glob(f"{conv_id}.*.jsonl"))])
    _fill(chat, data, path.stat().st_mtime)
    generation = data.get("journal", 0)
    journal = folder / f"{conv_id}.{generation}.jsonl"
    if isinstance(generation, int) and journal.exists():
        _replay(chat, journal)
    return chat


def _fill(chat: LegacyChat, data: dict[str, Any], mtime: float) -> None:
    """The snapshot's fields into chat.conv, odd ones replaced and noted."""
    conv = chat.conv
    kinds: dict[str, tuple[type, ...]] = {
        "title": (str,),
        "created": (int, float),
        "updated": (int, float),
        "model": (str, type(None)),
        "system_prompt": (str,),
        "sampling": (dict,),
    }
    for key in META_FIELDS:
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, kinds[key]) and not isinstance(value, bool):
            setattr(conv, key, value)
        else:
            fixed = mtime if key in ("created", "updated") else getattr(conv, key)
            setattr(conv, key, fixed)
            chat.notes.append(f"{key} was {value!r:.40}, read as {fixed!r:.40}")
    messages = data.get("messages", [])
    for n, m in enumerate(messages if isinstance(messages, list) else []):
        try:
            conv.messages.append(message_from_json(m))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            chat.notes.append(f"message {n + 1} could not be read ({e})")


def records_in(line: str) -> tuple[list[dict[str, Any]], bool]:
    """The whole records in one journal line, and whether the line was only that (a record
    may follow a cut one on the same line: the next append after a failed one)."""
    decoder = json.JSONDecoder()
    records: list[dict[str, Any]] = []
    clean, pos = True, 0
    while True:
        start = line.find(_RECORD_START, pos)
        if line[pos : None if start < 0 else start].strip():
            clean = False
        if start < 0:
            return records, clean
        try:
            record, pos = decoder.raw_decode(line, start)
        except ValueError:
            clean, pos = False, start + 1
            continue
        if isinstance(record, dict):
            records.append(record)


def _replay(chat: LegacyChat, journal: Path) -> None:
    lines = journal.read_bytes().decode("utf-8", errors="replace").split("\n")
    damaged: list[str] = []
    for n, line in enumerate(lines):
        records, clean = records_in(line)
        cut_last = n == len(lines) - 1  # no newline after it: a kill's cut, not a problem
        if not clean and not cut_last:
            damaged.append(f"line {n + 1}")
        for record in records:
            try:
                apply_record(chat.conv, record)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
                damaged.append(f"line {n + 1}: {e}")
    if damaged:
        chat.notes.append(
            f"{len(damaged)} damaged record(s) in {journal.name} ({damaged[0]}) were skipped; "
            "every readable record after them was kept"
        )


def apply_record(conv: Conversation, op: dict[str, Any]) -> None:
    """One record of a version 2 journal (positions by index)."""
    kind = op.get("op")
    if kind == "text":
        conv.messages[op["i"]].content += op["s"]
    elif kind == "put":
        index, message = op["i"], message_from_json(op["m"])
        if not isinstance(index, int) or index < 0:
            raise ValueError(f"no message {index!r}")
        if index >= len(conv.messages):  # after a lost record: appended, not dropped
            conv.messages.append(message)
        else:
            conv.messages[index] = message
    elif kind == "trim":
        del conv.messages[op["n"] :]
    elif kind == "meta":
        for key, value in op["d"].items():
            if key in META_FIELDS:
                setattr(conv, key, value)
    else:
        raise ValueError(f"unknown journal record {kind!r}")


def import_folder(store: ChatStore) -> None:
    """Every old chat file of the store's folder into its database, verified, then moved to
    imported/ (left in place in a folder that cannot be written)."""
    folder = store.folder
    for conv_id in legacy_ids(folder):
        try:
            chat = read_chat(folder, conv_id)
        except (LegacyError, OSError) as e:
            _set_aside(store, folder / f"{conv_id}.json", str(e))
            continue
        name = f"{conv_id}.json"
        try:
            if not store.has_chat(conv_id):
                store.save(chat.conv)
        except sqlite3.Error as e:  # a full disk: tried again on the next start
            store.report(f"The chat file {name} could not be imported yet ({e}).")
            continue
        for note in chat.notes:
            store.report(f"The chat file {name}: {note}.")
        if store.message_count(conv_id) < len(chat.conv.messages):
            store.report(f"The chat file {name} was not imported in full; it stays in place.")
        elif not store.read_only:
            _move_imported(folder, chat.files)
    index = folder / "index.json"
    if index.exists() and not store.read_only and not legacy_ids(folder):
        _move_imported(folder, [index])


def _move_imported(folder: Path, files: list[Path]) -> None:
    target = folder / "imported"
    target.mkdir(exist_ok=True)
    for path in files:
        path.replace(target / path.name)


def _set_aside(store: ChatStore, path: Path, why: str) -> None:
    if store.read_only:
        store.report(f"The chat file {path.name} {why}; it was left as it is.")
        return
    tag = "newer" if "newer" in why else "corrupt"
    target = path.with_name(f"{path.stem}.{tag}-{int(time.time())}.json.aside")
    try:
        path.replace(target)
    except OSError as e:
        store.report(f"The chat file {path.name} {why}; it could not be moved ({e}).")
        return
    store.report(f"The chat file {path.name} {why}; it was kept as {target.name}.")
