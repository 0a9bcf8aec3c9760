"""What the chat panel draws of a saved conversation (the whole of it, all but the reply
that streams again, the count of the last reply's versions), a reply's stats as saved, and
the conversation as the engine is asked with it."""

from __future__ import annotations

from kobold_gui.core.chats.types import Conversation
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.types import GenerationResult
from kobold_gui.ui.chat.chat_panel import (
    CUT_BY_ERROR,
    CUT_NOTE,
    ChatPanel,
    ShownMessage,
    stats_line,
)


def shown_messages(conv: Conversation, streaming: int | None = None) -> list[ShownMessage]:
    """What the transcript draws of a conversation: a reply saved unfinished (and not the one
    streaming now) is marked as cut, with the reason when it is known."""
    out = []
    for i, m in enumerate(conv.messages):
        if m.role not in ("user", "assistant") or i == streaming:
            continue
        note = ""
        if m.role == "assistant" and not m.complete:
            note = CUT_BY_ERROR.format(m.cut) if m.cut else CUT_NOTE
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


def history(conv: Conversation) -> list[Message]:
    """The conversation's user and assistant messages, as the engine is asked with."""
    return [
        Message("user" if m.role == "user" else "assistant", m.content)
        for m in conv.messages
        if m.role in ("user", "assistant")
    ]


def show_versions(chat: ChatPanel, conv: Conversation) -> None:
    """Other version (n) when the last reply has earlier versions."""
    msgs = conv.messages
    count = len(msgs[-1].alternatives) + 1 if msgs and msgs[-1].role == "assistant" else 1
    chat.set_versions(count)


def redraw(chat: ChatPanel, conv: Conversation) -> None:
    chat.show_conversation(shown_messages(conv), chat.system_prompt.text())
    show_versions(chat, conv)


def redraw_without_last(chat: ChatPanel, conv: Conversation) -> None:
    """All but the last reply, which streams again below (continue, regenerate)."""
    shown = shown_messages(conv, streaming=len(conv.messages) - 1)
    chat.show_conversation(shown, chat.system_prompt.text())
    chat.set_versions(1)
