"""Micro-batching: concurrent requests gathered into one model call, answers returned to each.

Requests wait in a bounded queue. One collector takes the first waiting request, then gathers
others with the *same generation parameters* until ``max_batch_size`` dialogues are in hand or
``max_wait_ms`` has passed, and runs the batch on a worker thread, so the event loop never
blocks. The backend sorts the batch's dialogues by length. Each request's summaries go back to
that request alone, in its own order, as soon as they are all final: the backend reports each
summary when it is done (``summarize(..., on_summary=...)``), so a request whose dialogues
finish early is answered before the rest of its batch. dialogsum's summaries do not depend
on their batch (int8 included), so strangers' requests can share one.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dialogsum.generation import GenerationOptions

Summarize = Callable[..., list[str]]


class QueueFull(Exception):
    """The queue holds ``max_queue`` requests already."""


@dataclass
class Job:
    """One request's dialogues, validated generation options and where its answer goes."""

    texts: list[str]
    options: GenerationOptions
    future: asyncio.Future[list[str]]
    key: str = field(init=False)
    queued_at: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        # Requests with equal options share a batch.
        self.key = self.options.model_dump_json()


class MicroBatcher:
    """Runs ``summarize(texts, options=options)`` over batches of queued jobs."""

    def __init__(
        self,
        summarize: Summarize,
        *,
        batching: bool,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.summarize = summarize
        self.batching = batching
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.pending: list[Job] = []
        self.arrived = asyncio.Event()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dialogsum-model")
        self.task: asyncio.Task[None] | None = None
        self.closing = False

    @property
    def depth(self) -> int:
        """Requests waiting for a batch."""
        return len(self.pending)

    def start(self) -> None:
        """Start the collector on the running event loop."""
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        """Finish every accepted request, then stop."""
        self.closing = True
        self.arrived.set()
        if self.task is not None:
            await self.task
        self.executor.shutdown(wait=True)

    async def submit(self, texts: list[str], options: GenerationOptions) -> list[str]:
        """Queue one request and wait for its summaries."""
        if len(self.pending) >= self.max_queue or self.closing:
            raise QueueFull
        job = Job(texts, options, asyncio.get_running_loop().create_future())
        self.pending.append(job)
        self.arrived.set()
        return await job.future

    def _take(self) -> list[Job]:
        first = self.pending.pop(0)
        taken, size = [first], len(first.texts)
        if not self.batching:
            return taken
        for job in list(self.pending):
            if job.key == first.key and size + len(job.texts) <= self.max_batch_size:
                self.pending.remove(job)
                taken.append(job)
                size += len(job.texts)
        return taken

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.pending:
                if self.closing:
                    return
                self.arrived.clear()
                await self.arrived.wait()
                continue
            if self.batching and self.max_wait > 0:
                # Give concurrent requests a moment to arrive and join this batch.
                waited = time.perf_counter() - self.pending[0].queued_at
                if waited < self.max_wait and sum(len(j.texts) for j in self.pending) < (
                    self.max_batch_size
                ):
                    await asyncio.sleep(self.max_wait - waited)
            jobs = [job for job in self._take() if not job.future.cancelled()]
            if not jobs:
                continue
            texts = [text for job in jobs for text in job.texts]
            if self.on_batch is not None:
                self.on_batch(len(jobs), len(texts))
            answers = _Answers(jobs)

            def on_summary(index: int, summary: str, answers: _Answers = answers) -> None:
                loop.call_soon_threadsafe(answers.deliver, index, summary)  # model's thread

            try:
                call = functools.partial(
                    self.summarize, texts, options=jobs[0].options, on_summary=on_summary
                )
                summaries = await loop.run_in_executor(self.executor, call)
            except Exception as exc:  # the model failed: every request still waiting hears it
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for index, summary in enumerate(summaries):  # whatever was not reported early
                answers.deliver(index, summary)


class _Answers:
    """Each job's summaries as they are reported; a job is answered when it has them all,
    so a request whose dialogues finish early does not wait for the rest of its batch."""

    def __init__(self, jobs: list[Job]) -> None:
        self.owner = [(job, slot) for job in jobs for slot in range(len(job.texts))]
        self.summaries: dict[int, list[str | None]] = {id(j): [None] * len(j.texts) for j in jobs}
        self.missing = {id(job): len(job.texts) for job in jobs}

    def deliver(self, index: int, summary: str) -> None:
        if not isinstance(summary, str) or not 0 <= index < len(self.owner):
            # A backend that breaks its contract: never answer with it. The Summarizer's check
            # fails the call when it returns, and every request still waiting hears why.
            return
        job, slot = self.owner[index]
        summaries = self.summaries[id(job)]
        if summaries[slot] is not None:
            return
        summaries[slot] = summary
        self.missing[id(job)] -= 1
        if not self.missing[id(job)] and not job.future.done():
            job.future.set_result([text or "" for text in summaries])
