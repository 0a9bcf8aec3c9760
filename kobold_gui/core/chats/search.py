"""Search over the chats: titles by LIKE (one row per chat), messages through the FTS5 index
(core/chats/db.py keeps it in sync by triggers), so nothing reads every chat. Each word typed
must start a word of the same message ("owl" finds "owls", any case). Without FTS5 the
messages are searched with LIKE on the whole text (slower, same answers for one word)."""

from __future__ import annotations

import re
import sqlite3

_WORD = re.compile(r"\w+")


def has_index(conn: sqlite3.Connection) -> bool:
    sql = "SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'"
    if conn.execute(sql).fetchone() is None:
        return False
    try:
        conn.execute("SELECT rowid FROM messages_fts LIMIT 0").fetchall()
    except sqlite3.OperationalError:  # made by a build with FTS5, opened by one without
        return False
    return True


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def fts_query(text: str) -> str:
    """Every word of the text as a prefix, all required ("owl fac" -> "owl"* "fac"*)."""
    return " ".join(f'"{word}"*' for word in _WORD.findall(text))


def find(conn: sqlite3.Connection, text: str, fts: bool) -> set[str]:
    needle = text.strip()
    if not needle:
        return set()
    pattern = _like(needle)
    found = {
        row[0]
        for row in conn.execute(
            "SELECT id FROM chats WHERE deleted = 0 AND (shown_title LIKE ? ESCAPE '\\'"
            " OR title LIKE ? ESCAPE '\\')",
            (pattern, pattern),
        )
    }
    query = fts_query(needle)
    if fts and query:
        rows = conn.execute(
            "SELECT DISTINCT m.chat_id FROM messages_fts JOIN messages AS m"
            " ON m.n = messages_fts.rowid WHERE messages_fts MATCH ?",
            (query,),
        )
    else:
        rows = conn.execute(
            "SELECT DISTINCT chat_id FROM messages WHERE content LIKE ? ESCAPE '\\'", (pattern,)
        )
    found |= {row[0] for row in rows}
    if not found:
        return found
    marks = ", ".join("?" * len(found))
    live = conn.execute(f"SELECT id FROM chats WHERE deleted = 0 AND id IN ({marks})", [*found])
    return {row[0] for row in live}
