"""The local engine: a bounded pool of worker processes on this machine.

Rows are cut into chunks in input order; at most two chunks per worker are in flight, so memory
stays flat however long the input is. Results are written in input order as they complete, so
the output is the same whatever the number of workers, and a rerun after a crash finds a prefix
of it done. One worker runs in this process (no pool to start). The backends' per-call
warnings about truncated dialogues are added up and reported once, for the whole job.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from multiprocessing import get_context
from typing import Any, Protocol

from dialogsum.batch.output import LineWriter, summary_line
from dialogsum.batch.rows import BatchRow
from dialogsum.errors import BackendError, ConfigError, DataError, DialogsumError, logger


class Summarizes(Protocol):
    """What a batch worker needs of a loaded model."""

    def summarize(self, dialogues: list[str], **generation: Any) -> list[str]: ...


#: Builds the model in a worker. Picklable (a module-level function or a partial of one), since
#: worker processes are started fresh.
Loader = Callable[[], Summarizes]


@dataclass(frozen=True)
class Work:
    """What every worker does with a chunk: load this model once, then summarize like this."""

    load: Loader
    generation: Mapping[str, Any]
    threads: int


def chunks(rows: Iterable[BatchRow], size: int) -> Iterator[list[BatchRow]]:
    """``rows`` in lists of ``size`` (the last may be shorter), lazily."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass
class Progress:
    """What the local engine has done so far."""

    written: int = 0
    truncated: int = 0


def run_local(
    rows: Iterable[BatchRow],
    writer: LineWriter,
    work: Work,
    *,
    workers: int,
    chunk_size: int,
    advance: Callable[[int], None],
    loaded: Summarizes | None = None,
) -> Progress:
    """Summarize ``rows`` with ``workers`` model copies and append them to ``writer`` in order.

    ``advance(n)`` is called as rows are written; ``loaded`` is the model already loaded here
    (used when ``workers`` is 1). Returns how many rows were written and truncated.
    """
    progress = Progress()
    if workers == 1:
        start_worker(work, loaded)
        for chunk in chunks(rows, chunk_size):
            _write(chunk, counted_chunk([r.dialogue for r in chunk]), writer, progress, advance)
        return progress
    context = get_context("spawn")  # fork would copy a half-initialised thread pool
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=start_worker, initargs=(work,)
    ) as pool:
        pending: deque[tuple[list[BatchRow], Future[tuple[list[str], int]]]] = deque()
        for chunk in chunks(rows, chunk_size):
            pending.append((chunk, pool.submit(counted_chunk, [r.dialogue for r in chunk])))
            while len(pending) >= 2 * workers:
                _write_oldest(pending, writer, progress, advance)
        while pending:
            _write_oldest(pending, writer, progress, advance)
    return progress


def _write_oldest(
    pending: deque[tuple[list[BatchRow], Future[tuple[list[str], int]]]],
    writer: LineWriter,
    progress: Progress,
    advance: Callable[[int], None],
) -> None:
    chunk, future = pending.popleft()
    try:
        result = future.result()
    except (ConfigError, DataError):  # the input or the options: nothing a rerun fixes
        raise
    except Exception as exc:  # the model failed, a backend's error included
        detail = str(exc) if isinstance(exc, DialogsumError) else f"{type(exc).__name__}: {exc}"
        raise BackendError(
            f"A worker failed on rows {chunk[0].where} to {chunk[-1].where}: {detail}. What "
            f"was written so far is kept; rerun the same command to go on from there."
        ) from exc
    _write(chunk, result, writer, progress, advance)


def _write(
    chunk: list[BatchRow],
    result: tuple[list[str], int],
    writer: LineWriter,
    progress: Progress,
    advance: Callable[[int], None],
) -> None:
    summaries, truncated = result
    writer.write(_lines(chunk, summaries))
    progress.written += len(chunk)
    progress.truncated += truncated
    advance(len(chunk))


def _lines(chunk: list[BatchRow], summaries: list[str]) -> list[str]:
    return [summary_line(row.id, summary) for row, summary in zip(chunk, summaries, strict=True)]


#: The model of this worker process (set once by :func:`start_worker`).
_worker: tuple[Summarizes, Mapping[str, Any]] | None = None


def start_worker(work: Work, loaded: Summarizes | None = None) -> None:
    """Load this process's model (or take ``loaded``) and set its thread count."""
    global _worker
    os.environ.setdefault("OMP_NUM_THREADS", str(work.threads))
    _worker = (loaded if loaded is not None else work.load(), work.generation)
    torch = sys.modules.get("torch")  # only when the backend loaded it: an export needs none
    if torch is not None:
        torch.set_num_threads(work.threads)


class TruncationCount(logging.Filter):
    """Adds up the backends' truncation warnings (which carry their counts) and holds them
    back, so a long job reports one total instead of a warning per chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Count and drop a truncation warning; let every other record through."""
        truncated = getattr(record, "truncated", None)
        if truncated is None:
            return True
        self.count += int(truncated)
        return False


def counted_chunk(dialogues: list[str]) -> tuple[list[str], int]:
    """Summaries of ``dialogues`` and how many of them were truncated."""
    counter = TruncationCount()
    logger.addFilter(counter)
    try:
        return summarize_chunk(dialogues), counter.count
    finally:
        logger.removeFilter(counter)


def summarize_chunk(dialogues: list[str]) -> list[str]:
    """Summaries of ``dialogues`` by this process's model."""
    assert _worker is not None, "the worker was not started"
    summarizer, generation = _worker
    return summarizer.summarize(dialogues, **generation)
