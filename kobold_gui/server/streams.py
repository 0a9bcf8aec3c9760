"""The server-sent events of a streamed generation, the same for every API: the text as it
comes, then the end (or the error that ended it), each in its API's shape; the generation
is cancelled when the client leaves before the end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable

from kobold_gui.core.engine.types import GenerationResult
from kobold_gui.server.errors import ApiError, as_api_error
from kobold_gui.server.generation import Generation

Event = dict[str, str]


async def stream_events(
    gen: Generation,
    first: str | None,
    piece: Callable[[str], Event],
    end: Callable[[GenerationResult], Iterable[Event]],
    error: Callable[[ApiError], Event],
    before: Iterable[Event] = (),
) -> AsyncIterator[Event]:
    """`before` (e.g. OpenAI's chunk with the role), each piece of text, then `end`'s events
    for the result; a failure after the first piece becomes `error`'s event."""
    try:
        for event in before:
            yield event
        if first is not None:
            yield piece(first)
            async for text in gen.pieces():
                yield piece(text)
        try:
            result = gen.result()
        except Exception as e:
            yield error(as_api_error(e))
            return
        for event in end(result):
            yield event
    finally:
        gen.cancel("disconnected")  # nothing when it has ended
