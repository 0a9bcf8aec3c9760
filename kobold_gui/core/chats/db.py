"""The chats database: one SQLite file (Python's own sqlite3) in WAL mode, so readers never
wait for the writer and a write is one small transaction that either lands whole or leaves
the file as it was (a kill, a full disk). Each thread gets its own connection, with a busy
timeout: another window's (or process's) write makes a writer wait, never fail at once.

The schema is versioned with PRAGMA user_version; MIGRATIONS[n] takes a database from
version n to n + 1 inside one transaction. Full-text search is an FTS5 table over the
messages' text, kept in sync by triggers; a SQLite built without FTS5 gets no such table
(search then falls back to LIKE, see core/chats/search.py)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

SQLITE_FULL = 13  # the result code (sqlite3.SQLITE_FULL from Python 3.11 on)
BUSY_TIMEOUT_MS = 5000  # another writer holds the file: wait this long, then report

SCHEMA_V1 = """
CREATE TABLE chats(
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    shown_title TEXT NOT NULL DEFAULT '',
    created REAL,
    updated REAL,
    model TEXT,
    system_prompt TEXT NOT NULL DEFAULT '',
    sampling TEXT NOT NULL DEFAULT '{}',
    deleted INTEGER NOT NULL DEFAULT 0,
    rev INTEGER NOT NULL DEFAULT 0,
    writer TEXT NOT NULL DEFAULT ''
);
CREATE INDEX chats_rev ON chats(rev);
CREATE TABLE messages(
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    chat_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    role TEXT,
    content TEXT,
    created REAL,
    stats TEXT,
    complete INTEGER NOT NULL DEFAULT 1,
    cut TEXT NOT NULL DEFAULT '',
    alternatives TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX messages_chat ON messages(chat_id, seq);
CREATE TABLE chats_aside(id TEXT, row TEXT, reason TEXT, at REAL);
"""

FTS_V1 = """
CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='n');
CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.n, new.content);
END;
CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.n, old.content);
END;
CREATE TRIGGER messages_fts_au AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.n, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.n, new.content);
END;
"""


def has_fts5(conn: sqlite3.Connection) -> bool:
    return any(row[0] == "ENABLE_FTS5" for row in conn.execute("PRAGMA compile_options"))


def _v0_to_v1(conn: sqlite3.Connection) -> None:
    for statement in _statements(SCHEMA_V1 + (FTS_V1 if has_fts5(conn) else "")):
        conn.execute(statement)


def _statements(script: str) -> Iterator[str]:
    """The script's statements (a trigger's body holds ';' of its own)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v0_to_v1]
SCHEMA_VERSION = len(MIGRATIONS)


class NewerDatabase(sqlite3.DatabaseError):
    """The file was written by a newer kobold-gui (a higher user_version)."""


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit, see write()), WAL, with a
    busy timeout; the schema migrated to this version."""
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # a power cut loses at most the last second
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        conn.close()
        raise NewerDatabase(f"{path.name} was written by a newer kobold-gui (v{version})")
    while version < SCHEMA_VERSION:
        with write(conn):
            now = conn.execute("PRAGMA user_version").fetchone()[0]
            if now == version:  # another process may have migrated it meanwhile
                MIGRATIONS[version](conn)
                conn.execute(f"PRAGMA user_version={version + 1}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    return conn


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: BEGIN IMMEDIATE takes the write lock first (waiting up to the
    busy timeout), so it never fails half way for a lock; any error rolls back all of it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class Connections:
    """One connection per thread to one database file; close() ends them all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.get()  # opens (and migrates) now: errors show at start

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.ProgrammingError):  # in use on its thread
                conn.close()
        self._local = threading.local()


def is_full(error: BaseException) -> bool:
    """A write that failed for lack of room (SQLITE_FULL, or ENOSPC from the file system)."""
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return code == SQLITE_FULL or "full" in str(error)
    return isinstance(error, OSError) and error.errno == 28
