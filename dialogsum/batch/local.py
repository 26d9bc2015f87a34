"""The local engine: a bounded pool of worker processes on this machine.

Rows are cut into chunks in input order; at most two chunks per worker are in flight, so memory
stays flat however long the input is. Results are written in input order as they complete, so
the output is the same whatever the number of workers, and a rerun after a crash finds a prefix
of it done. One worker runs in this process (no pool to start). The backends' per-call
warnings about truncated dialogues are added up and reported once, for the whole job.

Worker processes end with the job: when it stops (an error, Ctrl-C, SIGTERM) the chunks in flight
are abandoned and the workers ended at once, and each worker dies with its parent however the
parent ends (:mod:`dialogsum.processes`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from dialogsum.batch.output import LineWriter, summary_line
from dialogsum.batch.rows import BatchRow
from dialogsum.errors import BackendError, ConfigError, DataError, DialogsumError, logger
from dialogsum.processes import die_with_parent


class Summarizes(Protocol):
    """What a batch worker needs of a loaded model."""

    def summarize(self, dialogues: list[str], **generation: Any) -> list[str]: ...

    def generation_options(self, **generation: Any) -> Any:
        """``generation`` checked over the model's decoding defaults (or its adapter's)."""
        ...


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
    context = multiprocessing.get_context("spawn")  # fork would copy a half-initialised thread pool
    others = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=start_pool_worker, initargs=(work, os.getpid())
    )
    try:
        pending: deque[tuple[list[BatchRow], Future[tuple[list[str], int]]]] = deque()
        for chunk in chunks(rows, chunk_size):
            pending.append((chunk, pool.submit(counted_chunk, [r.dialogue for r in chunk])))
            while len(pending) >= 2 * workers:
                _write_oldest(pending, writer, progress, advance)
        while pending:
            _write_oldest(pending, writer, progress, advance)
    except BaseException:  # Ctrl-C and SIGTERM (Stopped) included
        _abandon(pool, others)
        raise
    pool.shutdown()
    return progress


#: How long the workers of a stopped job get to end after SIGTERM, then SIGKILL, in seconds.
_END_WAIT = 5.0


def _abandon(pool: ProcessPoolExecutor, others: set[multiprocessing.process.BaseProcess]) -> None:
    """Stop the pool at once: cancel the chunks not started and end the workers in the middle
    of theirs. Nothing a worker had not returned was written, so the output stays a prefix
    that a rerun goes on from; waiting for the chunks in flight would only delay the exit."""
    pool.shutdown(wait=False, cancel_futures=True)
    # The pool's own processes: the children started since it was made (the executor has no
    # public way to end its workers before Python 3.14).
    workers = [p for p in multiprocessing.active_children() if p not in others]
    for process in workers:
        process.terminate()
    for process in workers:
        process.join(_END_WAIT)
        if process.is_alive():
            process.kill()
            process.join(_END_WAIT)


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


def start_pool_worker(work: Work, parent_pid: int) -> None:
    """Start a worker process of the pool: it dies with its parent, leaves Ctrl-C to it (a
    terminal sends SIGINT to the whole process group; the job decides what to do), then loads
    its model."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm would make a multiprocessing lock here: a named semaphore that a worker ended
    # mid-chunk by a stopped job never unregisters, so the resource tracker would warn of a
    # leak when the job exits. A worker shows no bars; a thread lock does.
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    start_worker(work)


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
