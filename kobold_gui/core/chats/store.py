"""Conversations in one SQLite database (core/chats/db.py): a row per chat, a row per
message. Every change is one small transaction (a message put, streamed text added, messages
dropped, the chat's title and settings), so a kill or a full disk leaves the database as it
was before that change, and two windows or processes on one chat only ever add or change
the rows they name (a message has an id), never each other's.

Each chat row has a revision (`rev`, one counter for the database) and the token of the
store that wrote it last: another window finds what others changed with changes_since(),
asked when `PRAGMA data_version` moved (ui/chat/watcher.py polls it).

A row with odd values (a date that is not a number, a model that is not text) is moved to
the chats_aside table with the reason, noted in `problems`, and the list goes on. A data
folder that cannot be written opens a copy of the database in a temporary folder: the chats
work for this session, `warning` says they are not saved. Old chat files (the JSON files
and journals of earlier versions) are imported on the first scan (core/chats/legacy_import.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kobold_gui.core.chats import legacy_import, search
from kobold_gui.core.chats.db import Connections, NewerDatabase, write
from kobold_gui.core.chats.rows import (
    CHAT_COLUMNS,
    MESSAGE_COLUMNS,
    OddRow,
    message_from_op,
    message_from_row,
    message_values,
    meta_from_row,
    summary_from_row,
)
from kobold_gui.core.chats.types import (
    ChatSummary,
    Conversation,
    Op,
    ReplyVersion,
    StoredMessage,
    import_openai,
)
from kobold_gui.core.paths import data_dir

__all__ = [
    "ChatFileError",
    "ChatStore",
    "ChatSummary",
    "Conversation",
    "ReplyVersion",
    "StoredMessage",
    "import_openai",
]

DB_NAME = "chats.sqlite3"
_PUT = (
    "INSERT INTO messages(id, role, content, created, stats, complete, cut, alternatives,"
    " chat_id, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
    " (SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE chat_id = ?))"
    " ON CONFLICT(id) DO UPDATE SET role = excluded.role, content = excluded.content,"
    " created = excluded.created, stats = excluded.stats, complete = excluded.complete,"
    " cut = excluded.cut, alternatives = excluded.alternatives"
)
_META = (
    "UPDATE chats SET title = ?, created = ?, updated = ?, model = ?, system_prompt = ?,"
    " sampling = ?, shown_title = ? WHERE id = ?"
)


class ChatFileError(ValueError):
    """A chat that cannot be opened (not saved, deleted, or set aside); the message says why."""


def folder_writable(folder: Path) -> bool:
    """Whether a file can really be made there: os.access alone says yes to root on a
    read-only mount or an immutable folder, so a small file is written and removed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return False
    return True


def _default_folder() -> Path:
    """The data folder's chats/; a data folder that cannot even be made (a read-only home)
    is still named, for the store to open in memory and say so."""
    try:
        return data_dir() / "chats"
    except OSError as e:
        name = e.filename if isinstance(e.filename, str) else tempfile.gettempdir()
        return Path(name) / "chats"


class ChatStore:
    """Reads and writes may come from any thread (each has its own connection)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or _default_folder()
        self.problems: list[str] = []  # rows and files set aside or partly read, for the user
        self.warning = ""  # set when the chats cannot be saved (a read-only folder)
        self.token = uuid.uuid4().hex  # this store's writes, told apart from others'
        self._lock = threading.Lock()
        self._imported = False
        self._db = self._open()
        self.fts = search.has_index(self._db.get())
        if not self.fts:
            self.report("Search reads every message: this SQLite has no FTS5.")

    # -- opening ---------------------------------------------------------------------------
    def _open(self) -> Connections:
        path = self.folder / DB_NAME
        if folder_writable(self.folder):
            try:
                return Connections(path)
            except NewerDatabase as e:
                why = f"{e}; this session's chats are kept in memory only"
            except sqlite3.DatabaseError as e:
                if path.exists() and "not a database" in str(e):
                    aside = path.with_name(f"{DB_NAME}.corrupt-{int(time.time())}.aside")
                    path.replace(aside)
                    self.report(f"The chats database could not be read ({e}); kept as {aside}.")
                    return Connections(path)
                why = f"the chats database cannot be written ({e})"
        else:
            why = f"the folder {self.folder} cannot be written"
        self.warning = f"Chats cannot be saved: {why}. This session's chats are kept in memory."
        return self._open_copy(path)

    def _open_copy(self, path: Path) -> Connections:
        """A copy of the database (with its write-ahead log) in a temporary folder."""
        temp = Path(tempfile.mkdtemp(prefix="kobold-gui-chats-"))
        for suffix in ("", "-wal"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                shutil.copyfile(source, temp / (DB_NAME + suffix))
        try:
            return Connections(temp / DB_NAME)
        except sqlite3.DatabaseError:  # a newer or damaged file: an empty database
            for leftover in temp.iterdir():
                leftover.unlink()
            return Connections(temp / DB_NAME)

    @property
    def read_only(self) -> bool:
        return bool(self.warning)

    def close(self) -> None:
        self._db.close()

    def report(self, message: str) -> None:
        with self._lock:
            if message not in self.problems:
                self.problems.append(message)

    # -- reading -------------------------------------------------------------------------
    def load(self, conv_id: str) -> Conversation:
        """The conversation as saved. A message with odd values is left out (and noted)."""
        conn = self._db.get()
        conn.execute("BEGIN")  # one snapshot for the chat and its messages
        try:
            row = conn.execute(
                f"SELECT {CHAT_COLUMNS} FROM chats WHERE id = ? AND deleted = 0", (conv_id,)
            ).fetchone()
            rows = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? ORDER BY seq",
                (conv_id,),
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        if row is None:
            raise ChatFileError(f"The chat {conv_id} is not saved (deleted, or set aside).")
        try:
            meta = meta_from_row(row)
        except OddRow as e:
            raise ChatFileError(self._set_aside(row, str(e))) from None
        messages, odd = [], []
        for r in rows:
            try:
                messages.append(message_from_row(r))
            except OddRow as e:
                odd.append(str(e))
        if odd:
            self.report(
                f"{len(odd)} message(s) of the chat {meta['title'] or conv_id} could not be "
                f"read ({odd[0]}); they are kept in the database, not shown."
            )
        return Conversation(messages=messages, **meta)

    def scan(self) -> list[ChatSummary]:
        """Every chat, most recent first; old chat files are imported first (once). Meant
        for a worker thread."""
        with self._lock:
            first, self._imported = not self._imported, True
        if first:
            legacy_import.import_folder(self)
        return self.summaries()

    def summaries(self) -> list[ChatSummary]:
        rows = self._db.get().execute(f"SELECT {CHAT_COLUMNS} FROM chats WHERE deleted = 0")
        out = []
        for row in rows.fetchall():
            try:
                out.append(summary_from_row(row))
            except OddRow as e:
                self._set_aside(row, str(e))
        return sorted(out, key=lambda s: s.updated, reverse=True)

    def search(self, text: str) -> set[str]:
        """Ids of the chats whose title or messages hold the words (FTS5, else LIKE)."""
        return search.find(self._db.get(), text, self.fts)

    def message_count(self, conv_id: str) -> int:
        sql = "SELECT count(*) FROM messages WHERE chat_id = ?"
        return int(self._db.get().execute(sql, (conv_id,)).fetchone()[0])

    def has_chat(self, conv_id: str) -> bool:
        sql = "SELECT 1 FROM chats WHERE id = ?"
        return self._db.get().execute(sql, (conv_id,)).fetchone() is not None

    # -- what others changed (another window, another process) ----------------------------------
    def data_version(self) -> int:
        """Moves when another connection committed (SQLite does not notify: poll this)."""
        return int(self._db.get().execute("PRAGMA data_version").fetchone()[0])

    def revision(self) -> int:
        row = self._db.get().execute("SELECT coalesce(max(rev), 0) FROM chats").fetchone()
        return int(row[0])

    def changes_since(self, rev: int) -> tuple[int, list[tuple[str, ChatSummary | None]]]:
        """(the newest revision, [(chat id, its summary, or None when deleted)]) of the chats
        that other stores changed after `rev`."""
        rows = self._db.get().execute(
            f"SELECT rev, writer, deleted, {CHAT_COLUMNS} FROM chats WHERE rev > ? ORDER BY rev",
            (rev,),
        )
        changed: list[tuple[str, ChatSummary | None]] = []
        for new_rev, writer, deleted, *row in rows.fetchall():
            rev = max(rev, new_rev)
            if writer == self.token:
                continue
            try:
                changed.append((row[0], None if deleted else summary_from_row(tuple(row))))
            except OddRow:
                changed.append((row[0], None))
        return rev, changed

    # -- writing ----------------------------------------------------------------------------
    def save(self, conv: Conversation) -> None:
        """The conversation and every message in it (added or replaced by id; messages that
        others added stay)."""
        with write(self._db.get()) as conn:
            self._ensure_chat(conn, conv.id)
            self._meta(conn, conv.id, conv.meta(), conv.display_title())
            conn.executemany(_PUT, [(*message_values(m), conv.id, conv.id) for m in conv.messages])
            self._touch(conn, conv.id)

    def append(self, conv_id: str, ops: Iterable[Op], summary: ChatSummary | None = None) -> int:
        """Applies the operations (core/chats/types.py) in one transaction: all or none.
        An operation that does not fit is left out and the rest written, then ValueError
        says which. Returns 0 (the journal's size in the file store; nothing grows here)."""
        bad: list[str] = []
        with write(self._db.get()) as conn:
            self._ensure_chat(conn, conv_id)
            for op in ops:
                try:
                    self._apply(conn, conv_id, op)
                except (ValueError, KeyError, TypeError) as e:  # that one left out, not all
                    bad.append(f"{e!s:.80}")
            self._touch(conn, conv_id)
        if bad:
            raise ValueError(f"{len(bad)} change(s) left out: {bad[0]}")
        return 0

    def _apply(self, conn: sqlite3.Connection, conv_id: str, op: Op) -> None:
        kind = op.get("op")
        if kind == "put":
            conn.execute(_PUT, (*message_values(message_from_op(op["m"])), conv_id, conv_id))
        elif kind == "text":
            conn.execute(
                "UPDATE messages SET content = content || ? WHERE id = ? AND chat_id = ?",
                (op["s"], op["id"], conv_id),
            )
        elif kind == "drop":
            ids = list(op["ids"])
            marks = ", ".join("?" * len(ids))
            sql = f"DELETE FROM messages WHERE chat_id = ? AND id IN ({marks})"
            conn.execute(sql, (conv_id, *ids))
        elif kind == "meta":
            self._meta(conn, conv_id, op["d"], op.get("title", ""))
        else:
            raise ValueError(f"unknown chat operation {kind!r}")

    def _ensure_chat(self, conn: sqlite3.Connection, conv_id: str) -> None:
        now = time.time()
        sql = "INSERT OR IGNORE INTO chats(id, created, updated) VALUES (?, ?, ?)"
        conn.execute(sql, (conv_id, now, now))

    def _meta(self, conn: sqlite3.Connection, conv_id: str, d: dict[str, Any], shown: str) -> None:
        values = [d.get(k) for k in ("title", "created", "updated", "model", "system_prompt")]
        sampling = json.dumps(d.get("sampling") or {})
        conn.execute(_META, (*values, sampling, shown or d.get("title") or "", conv_id))

    def _touch(self, conn: sqlite3.Connection, conv_id: str) -> None:
        conn.execute(
            "UPDATE chats SET rev = (SELECT coalesce(max(rev), 0) + 1 FROM chats), writer = ?"
            " WHERE id = ?",
            (self.token, conv_id),
        )

    def sync(self, conv_id: str = "") -> None:
        """Writes the log into the database file, synced to the disk (a power cut, not a
        kill, could lose the last commits of synchronous=NORMAL before this)."""
        self._db.get().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def delete(self, conv_id: str) -> None:
        """Marks the chat deleted (undelete brings it back)."""
        with write(self._db.get()) as conn:
            conn.execute("UPDATE chats SET deleted = 1 WHERE id = ?", (conv_id,))
            self._touch(conn, conv_id)

    def undelete(self, conv_id: str) -> Conversation:
        with write(self._db.get()) as conn:
            conn.execute("UPDATE chats SET deleted = 0 WHERE id = ?", (conv_id,))
            self._touch(conn, conv_id)
        return self.load(conv_id)

    def _set_aside(self, row: tuple[Any, ...], why: str) -> str:
        """Moves one chat row with odd values to chats_aside (its messages stay)."""
        conv_id = row[0]
        message = f"The chat {conv_id!r:.40} has an odd value ({why}); it was set aside."
        try:
            with write(self._db.get()) as conn:
                conn.execute(
                    "INSERT INTO chats_aside(id, row, reason, at) VALUES (?, ?, ?, ?)",
                    (str(conv_id), json.dumps(row, default=repr), why, time.time()),
                )
                conn.execute("DELETE FROM chats WHERE id = ?", (conv_id,))
        except sqlite3.Error as e:  # not moved (a full disk): left out of this list only
            message += f" (it stays in the list's table: {e})"
        self.report(message)
        return message
