"""Continuous batching in the service: each dialogue joins the running decode at its next step.

The micro-batcher (:mod:`.micro_batcher`) starts a batch and runs it until its longest summary
ends; requests that arrive meanwhile wait. Here every dialogue of a request is handed to the
backend's :class:`~dialogsum.continuous.ContinuousDecoder`, which admits it between two decoder
steps (within ``max_batch_size`` dialogues and ``max_batch_tokens`` tokens in flight) and
answers it the moment its summary is final. One thread (a
:class:`~dialogsum.continuous.ContinuousRunner`) runs the model; the event loop only hands rows
over and receives answers. Requests with different generation parameters and adapters share
the decode; each summary is the one ``summarize()`` gives alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dialogsum.continuous import ContinuousDecoder, ContinuousRow, ContinuousRunner
from dialogsum.serve.micro_batcher import QueueFull

if TYPE_CHECKING:
    from dialogsum.generation import GenerationOptions, OnSummary


class ContinuousBatcher:
    """The service's batcher over a continuous decoder (the interface of ``MicroBatcher``)."""

    def __init__(
        self,
        decoder: ContinuousDecoder,
        *,
        max_queue: int,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self.decoder = decoder
        self.max_queue = max_queue
        self.runner = ContinuousRunner(decoder)
        self.runner.on_start = on_start
        self.requests = 0  # accepted and not answered
        self.closing = False

    @property
    def depth(self) -> int:
        """Dialogues waiting to join the decode."""
        return self.decoder.waiting

    def start(self) -> None:
        """Start the decoding thread."""
        self.runner.start()

    async def stop(self) -> None:
        """Finish every accepted request, then stop."""
        self.closing = True
        await asyncio.get_running_loop().run_in_executor(None, self.runner.stop)

    async def submit(
        self, texts: list[str], options: GenerationOptions, on_partial: OnSummary | None = None
    ) -> list[str]:
        """Hand one request's dialogues to the decoder and wait for their summaries;
        ``on_partial(index, text)`` hears each one's text decoded so far (greedy)."""
        if self.closing or self.decoder.waiting >= self.max_queue:
            raise QueueFull
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[str]] = loop.create_future()
        answer = _Answer(future, len(texts), on_partial)
        rows = [
            ContinuousRow(
                text,
                options,
                _threadsafe(loop, answer.deliver, index),
                _threadsafe(loop, answer.fail),
                None if on_partial is None else _threadsafe(loop, answer.partial, index),
            )
            for index, text in enumerate(texts)
        ]
        self.runner.add(rows)
        return await future


class _Answer:
    """One request's summaries as they come; answered when all are in, or at a first error."""

    def __init__(
        self, future: asyncio.Future[list[str]], count: int, on_partial: OnSummary | None
    ) -> None:
        self.future = future
        self.summaries: list[str | None] = [None] * count
        self.missing = count
        self.on_partial = on_partial

    def deliver(self, index: int, summary: str) -> None:
        if self.future.done() or self.summaries[index] is not None:
            return
        self.summaries[index] = summary
        self.missing -= 1
        if not self.missing:
            self.future.set_result([text or "" for text in self.summaries])

    def fail(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    def partial(self, index: int, text: str) -> None:
        if self.on_partial is not None and not self.future.done():
            self.on_partial(index, text)


def _threadsafe(loop: asyncio.AbstractEventLoop, call: Callable[..., None], *first: int) -> Any:
    """``call(*first, value)`` on ``loop``, from the decoding thread."""

    def hand_over(value: object) -> None:
        # A closed loop (RuntimeError): nobody waits for the answer any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(functools.partial(call, *first, value))

    return hand_over
