"""Guards against Qt binding bugs that would crash a streamed chat."""

from __future__ import annotations

import gc
import sys

from PySide6.QtGui import QTextCharFormat, QTextCursor, QTextDocument


def test_insert_text_keeps_the_refcount_of_none() -> None:
    """PySide6 6.12.0 dropped a reference to None on every QTextCursor.insertText(); the chat
    inserts each streamed chunk that way, so a long reply ended in 'deallocating None'."""
    doc = QTextDocument()
    cursor = QTextCursor(doc)
    fmt = QTextCharFormat()
    gc.collect()
    before = sys.getrefcount(None)
    for _ in range(5000):
        cursor.insertText("x")
        cursor.insertText("y", fmt)
    gc.collect()
    assert sys.getrefcount(None) - before > -100


def test_insert_markdown_keeps_the_refcount_of_none() -> None:
    doc = QTextDocument()
    cursor = QTextCursor(doc)
    gc.collect()
    before = sys.getrefcount(None)
    for _ in range(2000):
        cursor.insertMarkdown("**x**")
    gc.collect()
    assert sys.getrefcount(None) - before > -100
