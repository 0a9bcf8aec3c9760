"""What the chat panel draws of a saved conversation, and a reply's stats as saved."""

from __future__ import annotations

from kobold_gui.core.chats.types import Conversation
from kobold_gui.core.engine.types import GenerationResult
from kobold_gui.ui.chat.chat_panel import CUT_NOTE, ShownMessage, stats_line


def shown_messages(conv: Conversation, streaming: int | None = None) -> list[ShownMessage]:
    """What the transcript draws of a conversation: a reply saved unfinished (and not the one
    streaming now) is marked as cut."""
    out = []
    for i, m in enumerate(conv.messages):
        if m.role not in ("user", "assistant") or i == streaming:
            continue
        note = ""
        if m.role == "assistant" and not m.complete:
            note = CUT_NOTE
        elif m.stats:
            note = stats_line(
                m.stats.get("generated_tokens", 0),
                m.stats.get("tokens_per_s", 0.0),
                m.stats.get("time_to_first_token_s", 0.0),
            )
        out.append(ShownMessage(m.role, m.content, note))
    return out


def result_stats(result: GenerationResult) -> dict[str, object]:
    return {
        "tokens_per_s": round(result.tokens_per_s, 2),
        "time_to_first_token_s": round(result.time_to_first_token_s, 4),
        "prompt_tokens": result.prompt_tokens,
        "generated_tokens": result.generated_tokens,
        "stop_reason": result.stop_reason,
    }
