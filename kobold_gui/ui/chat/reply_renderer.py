"""Drawing an assistant reply into the transcript: Markdown, one piece at a time.

A reply is cut into pieces at blank lines outside code fences (or, in a long stretch without
one, at a line end), and each piece is rendered with its own insertMarkdown call, once. The
cut points depend only on the text, never on when the text arrived, so a reply drawn while it
streams and the same reply drawn again from the saved file give the same document. Raw HTML
is shown as the text it is (a model writing `<<Title>>` or `<b>` means those characters)."""

from __future__ import annotations

import re

from PySide6.QtGui import QTextBlockFormat, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import QTextEdit

PIECE_AT_LINE_AFTER = 1500  # characters: then a line end will do (a long list, say)
RENDER_PER_TICK = 2000  # characters drawn as Markdown per render (the rest waits a tick)
MARKDOWN = (
    QTextDocument.MarkdownFeature.MarkdownDialectGitHub
    | QTextDocument.MarkdownFeature.MarkdownNoHTML
)
CODE_BLOCK = re.compile(r"^[ ]{0,3}(```|~~~)[^\n]*\n(.*?)^[ ]{0,3}\1[ \t]*$", re.DOTALL | re.M)
FENCE = re.compile(r"[ ]{0,3}(```|~~~)")


def new_block(cursor: QTextCursor, text_format: QTextCharFormat | None = None) -> None:
    """A new block with plain formats: one started after Markdown would otherwise stay in the
    list, heading or code block the Markdown ended with (a stats line drawn as list item 4)."""
    cursor.insertBlock(QTextBlockFormat(), text_format or QTextCharFormat())


def next_piece_end(text: str, start: int) -> int:
    """End of the piece of text that begins at start, or 0 while it is not complete: after a
    blank line outside a fence, or after the first line end outside a fence once the piece
    is PIECE_AT_LINE_AFTER long. Decided by the characters up to the cut and one after."""
    fence: str | None = None
    pos = start
    while True:
        nl = text.find("\n", pos)
        if nl < 0 or nl + 1 >= len(text):
            return 0  # no line end yet, or not yet the character after it
        mark = FENCE.match(text, pos, nl)
        if mark and fence is None:
            fence = mark.group(1)  # opens a code block
        elif mark and mark.group(1) == fence and not text[mark.end() : nl].strip():
            fence = None  # closes it
        if fence is None:
            if text[nl + 1] == "\n":
                return nl + 2
            if nl + 1 - start >= PIECE_AT_LINE_AFTER:
                return nl + 1
        pos = nl + 1


class ReplyRenderer:
    """One reply in the transcript, from its first character to its last."""

    def __init__(
        self, view: QTextEdit, code_blocks: dict[int, str], text_format: QTextCharFormat
    ) -> None:
        self.view, self.code_blocks, self.text_format = view, code_blocks, text_format
        self.text = ""
        self._rendered = 0  # characters of text drawn as Markdown
        cursor = view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        self._tail_at = cursor.position()  # where the plain, not yet rendered text begins

    def add(self, chunk: str) -> None:
        """New text goes in as plain text at once; render() turns it into Markdown."""
        if not chunk:
            return
        cursor = self.view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if self._rendered and len(self.text) == self._rendered:
            new_block(cursor, self.text_format)  # the tail: a block of its own after pieces
        cursor.insertText(chunk, self.text_format)
        self.text += chunk

    def draw(self, text: str) -> None:
        """A whole saved reply, cut and rendered exactly as it was while it streamed."""
        self.text = text
        self.render(final=True)

    def render(self, final: bool = False) -> None:
        """Draws the pieces that are complete (all of the text when final), each once; the
        work is bounded by RENDER_PER_TICK (unless final), not by the length of the reply."""
        cuts = []
        upto = self._rendered
        while final or upto - self._rendered < RENDER_PER_TICK:
            end = next_piece_end(self.text, upto)
            if end <= 0:
                break
            cuts.append((upto, end))
            upto = end
        if final and upto < len(self.text):
            cuts.append((upto, len(self.text)))
            upto = len(self.text)
        if not cuts:
            return
        cursor = self.view.textCursor()
        cursor.setPosition(self._tail_at)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        for begin, end in cuts:
            if begin:
                new_block(cursor)
            cursor.insertMarkdown(self._with_copy_links(self.text[begin:end]), MARKDOWN)
        self._tail_at = cursor.position()
        self._rendered = upto
        if upto < len(self.text):
            new_block(cursor)
            cursor.insertText(self.text[upto:], self.text_format)

    def _with_copy_links(self, text: str) -> str:
        """A 'copy' link after each fenced code block (the transcript cannot hold buttons)."""

        def add_link(match: re.Match[str]) -> str:
            index = len(self.code_blocks)
            self.code_blocks[index] = match.group(2)
            return f"{match.group(0)}\n\n[copy code](copy:{index})\n"

        return CODE_BLOCK.sub(add_link, text)
