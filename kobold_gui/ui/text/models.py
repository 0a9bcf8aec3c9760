"""What the model picker says of the scans: the other apps' models found, and the folders a
scan could not read (the line says how many, its tooltip which and why)."""

from __future__ import annotations

from collections.abc import Sequence

from kobold_gui.core.models.scan import ScanResult

APPS = "LM Studio, GPT4All, Jan, Hugging Face, Ollama"


def unreadable_text(skipped: Sequence[str]) -> str:
    """ "2 folders could not be read", or "" when every folder was read."""
    if not skipped:
        return ""
    n = len(skipped)
    return f"{n} folder{'s' if n != 1 else ''} could not be read"


def unreadable_tooltip(skipped: Sequence[str]) -> str:
    """Each folder that could not be read and why, one a line (at most 20, then a count)."""
    lines = list(skipped[:20])
    if len(skipped) > 20:
        lines.append(f"… and {len(skipped) - 20} more")
    return "\n".join(lines)


def found_text(result: ScanResult) -> str:
    """The line beside the .kcpps menu once the other apps' folders are scanned."""
    if result.models:
        sources = ", ".join(sorted({m.source for m in result.models}))
        text = (
            f"{len(result.models)} model(s) of other apps in the list ({sources}), "
            "loaded where they are"
        )
    else:
        text = f"No models of other apps found ({APPS})"
    unread = unreadable_text(result.skipped)
    return f"{text}; {unread} (hover for which)" if unread else text
