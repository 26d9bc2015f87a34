"""A streamed answer (``stream: true``): server-sent events in OpenAI's chunk format, ending
with ``data: [DONE]``.

Greedy decoding streams: the backend reports each dialogue's text decoded so far
(``on_partial``), and each chunk carries what is new, up to its last space, since the end of
a word may still change as more tokens are decoded; the rest comes when the summary is final.
Beam search has no text so far (a beam's best hypothesis can change to the end), so its stream
is one chunk of text per summary once it is final. The stream opens when the first text, or
the whole answer, is ready, so a request that fails before (a full queue, an adapter unloaded
meanwhile) is answered with its HTTP error status, not an event.

This module imports no FastAPI.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dialogsum.serve.openai_requests import Prepared
    from dialogsum.serve.openai_responses import Outcome, Shape
    from dialogsum.serve.state import ServiceState


class Progress:
    """One request's summaries on their way: the text so far of its dialogues as the backend
    reports it, then the final summaries (or what failed)."""

    def __init__(self, state: ServiceState, prepared: Prepared) -> None:
        #: How many summaries (choices) the request gets.
        self.choices = len(prepared.texts)
        self.updates: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self.task = asyncio.ensure_future(
            state.summarize(prepared.texts, prepared.options, self._partial)
        )

    def _partial(self, index: int, text: str) -> None:
        self.updates.put_nowait((index, text))  # on the event loop (the batcher's callback)

    async def next(self) -> tuple[int, str] | None:
        """The next text so far, as ``(index, text)``, or None once the task is done."""
        if not self.updates.empty():
            return self.updates.get_nowait()
        if self.task.done():
            return None
        getter = asyncio.ensure_future(self.updates.get())
        try:
            await asyncio.wait({getter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return self.updates.get_nowait() if not self.updates.empty() else None

    def failure(self) -> BaseException | None:
        """What the request failed with, once done (None while running or when it succeeded)."""
        if not self.task.done() or self.task.cancelled():
            return None
        return self.task.exception()

    def cancel(self) -> None:
        """Stop waiting (the client left): a request not yet batched is not run."""
        if not self.task.done():
            self.task.cancel()


async def events(
    progress: Progress,
    first: tuple[int, str] | None,
    shape: Shape,
    finish: Callable[[list[str]], Outcome],
    explain: Callable[[BaseException], dict[str, Any]],
    include_usage: bool,
) -> AsyncIterator[str]:
    """The server-sent events of a streamed answer; ``first`` is the first text so far (None:
    the task is done), ``finish(summaries)`` says why each ended and the usage, ``explain(exc)``
    gives the error event of a request that failed after the stream opened."""
    try:
        sent: dict[int, str] = {}
        for chunk in shape.opening(progress.choices):
            yield _event(chunk)
        update = first
        while update is not None:
            index, text = update
            stable = text[: text.rfind(" ") + 1]  # whole words: a word's end may still change
            done = sent.get(index, "")
            if len(stable) > len(done) and stable.startswith(done):
                yield _event(shape.chunk(index, stable[len(done) :], None))
                sent[index] = stable
            update = await progress.next()
        failed = progress.failure()
        if failed is not None:
            yield _event(explain(failed))
            return
        summaries = progress.task.result()
        result = finish(summaries)
        for index, (summary, reason) in enumerate(
            zip(summaries, result.finish_reasons, strict=True)
        ):
            done = sent.get(index, "")
            rest = summary[len(done) :] if summary.startswith(done) else ""
            if rest:
                yield _event(shape.chunk(index, rest, None))
            yield _event(shape.chunk(index, "", reason))
        if include_usage:
            yield _event(shape.usage_chunk(result.usage))
        yield "data: [DONE]\n\n"
    finally:
        progress.cancel()


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
