"""Micro-batching: concurrent requests gathered into one model call, answers returned to each.

Requests wait in a bounded queue. One collector takes the first waiting request, then gathers
others with the *same generation parameters*, whatever adapter each asks for, until
``max_batch_size`` dialogues are in hand or ``max_wait_ms`` has passed, and runs the batch on a
worker thread, so the event loop never blocks: one ``summarize_rows`` call, each row naming its
request's adapter. The backend sorts the batch's dialogues by length. Each request's summaries
go back to that request alone, in its own order, as soon as they are all final: the backend
reports each summary when it is done (``on_summary``), so a request whose dialogues finish
early is answered before the rest of its batch; and, where it can, the text decoded so far
(``on_partial``), which a streaming request receives as it comes. dialogsum's summaries do not
depend on their batch (int8 included), so strangers' requests can share one.

An adapter unloaded after a request was checked fails the whole model call
(:class:`~dialogsum.adapter_serving.UnknownAdapterError`): the requests that asked for it get
that error, and the rest of the batch runs again without them.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dialogsum.adapter_serving import UnknownAdapterError

if TYPE_CHECKING:
    from dialogsum.generation import GenerationOptions, OnSummary

#: ``summarize(texts, adapters, options, on_summary, on_partial)``: one model call of a batch,
#: ``adapters[i]`` the adapter of ``texts[i]`` (None: the base), ``options.adapter`` None.
Summarize = Callable[
    [list[str], list["str | None"], "GenerationOptions", "OnSummary", "OnSummary"], list[str]
]


class QueueFull(Exception):
    """The queue holds ``max_queue`` requests already."""


@dataclass
class Job:
    """One request's dialogues, validated generation options and where its answer goes."""

    texts: list[str]
    options: GenerationOptions
    future: asyncio.Future[list[str]]
    #: Called on the event loop with ``(index in texts, summary so far)`` while it decodes.
    on_partial: OnSummary | None = None
    key: str = field(init=False)
    queued_at: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        # Requests with equal options share a batch, whichever adapter each asks for.
        self.key = self.options.model_dump_json(exclude={"adapter"})


class MicroBatcher:
    """Runs ``summarize(texts, adapters, options, on_summary, on_partial)`` over batches of
    queued jobs."""

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

    async def submit(
        self, texts: list[str], options: GenerationOptions, on_partial: OnSummary | None = None
    ) -> list[str]:
        """Queue one request and wait for its summaries; ``on_partial(index, text)`` hears
        the text decoded so far of ``texts[index]``, where the backend can tell."""
        if len(self.pending) >= self.max_queue or self.closing:
            raise QueueFull
        job = Job(texts, options, asyncio.get_running_loop().create_future(), on_partial)
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
            while jobs:
                jobs = await self._run(loop, jobs)

    async def _run(self, loop: asyncio.AbstractEventLoop, jobs: list[Job]) -> list[Job]:
        """Run one batch; returns the jobs to run again (an adapter was unloaded under them)."""
        texts = [text for job in jobs for text in job.texts]
        adapters = [job.options.adapter for job in jobs for _ in job.texts]
        if self.on_batch is not None:
            self.on_batch(len(jobs), len(texts))
        answers = _Answers(jobs)

        def on_summary(index: int, summary: str, answers: _Answers = answers) -> None:
            loop.call_soon_threadsafe(answers.deliver, index, summary)  # model's thread

        def on_partial(index: int, text: str, answers: _Answers = answers) -> None:
            loop.call_soon_threadsafe(answers.partial, index, text)  # model's thread

        options = jobs[0].options.model_copy(update={"adapter": None})
        call = functools.partial(self.summarize, texts, adapters, options, on_summary, on_partial)
        try:
            summaries = await loop.run_in_executor(self.executor, call)
        except UnknownAdapterError as exc:
            # Unloaded since these requests were checked: they hear it; the others run again
            # (those answered before the call failed are done).
            gone = [job for job in jobs if job.options.adapter == exc.name]
            for job in gone or jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return [job for job in jobs if not job.future.done()]
        except Exception as exc:  # the model failed: every request still waiting hears it
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return []
        for index, summary in enumerate(summaries):  # whatever was not reported early
            answers.deliver(index, summary)
        return []


class _Answers:
    """Each job's summaries as they are reported; a job is answered when it has them all,
    so a request whose dialogues finish early does not wait for the rest of its batch."""

    def __init__(self, jobs: list[Job]) -> None:
        self.owner = [(job, slot) for job in jobs for slot in range(len(job.texts))]
        self.summaries: dict[int, list[str | None]] = {id(j): [None] * len(j.texts) for j in jobs}
        self.missing = {id(job): len(job.texts) for job in jobs}

    def partial(self, index: int, text: str) -> None:
        """Pass the text decoded so far to its request, if it listens and waits still."""
        if not isinstance(text, str) or not 0 <= index < len(self.owner):
            return
        job, slot = self.owner[index]
        if job.on_partial is not None and not job.future.done():
            job.on_partial(slot, text)

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
