"""Training one stage of a sync sweep: each trial to the stage's rung, here and in workers.

With ``--workers N`` (N > 1) the sweep's process trains one trial at a time and N-1 spawned
processes train others, each loading the model once for the whole sweep. Every process reports
its trials' rung scores to the shared study; the sweep's process records each run as it comes
back. Which trials go on is decided from the study once the whole stage is back, as with one
worker, and the bracket is asked before anything trains, so the trials, their scores and the
pruning are those of one worker (given the same torch threads per trial).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from dialogsum.errors import ConfigError
from dialogsum.sweep.job import SweepContext, SweepJob, join_sweep
from dialogsum.sweep.progress import Progress
from dialogsum.sweep.study import OWNER, this_process
from dialogsum.sweep.trials import StudyReporter, TrialOutcome, attempt


@dataclass(frozen=True)
class Segment:
    """A trial to train to the stage's rung ``until``; ``reported``: the rung scores it has
    reported before (it resumes from its checkpoint when there are any)."""

    trial: Any
    until: int
    reported: tuple[tuple[int, float], ...]


class Trainers:
    """The sweep's process and, with ``--workers N``, N-1 worker processes: a context manager
    whose :meth:`train` runs a stage's segments on all of them."""

    def __init__(
        self,
        context: SweepContext,
        study: Any,
        progress: Progress | None,
        job: SweepJob | None,
    ) -> None:
        self.context = context
        self.study = study
        self.progress = progress
        self.job = job
        self._pool: Any = None  # a ProcessPoolExecutor with workers
        # The segments not started and those in workers: a worker's segment ending hands the
        # next one out from the pool's own thread, while this process trains one of its own.
        self._lock = threading.RLock()  # a callback may run at once, in the thread adding it
        self._waiting: deque[Segment] = deque()
        self._running: dict[Future[TrialOutcome | None], Segment] = {}
        #: Whether the sweep's budget stopped a stage (see :meth:`train`).
        self.stopped = False

    def __enter__(self) -> Trainers:
        if self._others() > 0:
            self._pool = self._start_pool()
        return self

    def _start_pool(self) -> Any:
        """The worker processes (an executor)."""
        import multiprocessing

        if self.job is None:
            raise ValueError("workers in other processes need the sweep's job")
        # Spawned, as the asynchronous schedule's workers are: a forked copy of a process
        # holding torch's threads can deadlock.
        return ProcessPoolExecutor(
            max_workers=self._others(),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.job, os.getpid()),
        )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pool = self._pool
        if pool is None:
            return
        with self._lock:
            self._waiting.clear()  # nothing more starts
        if kind is None:
            # A stage's end, or the budget: the segments running end within a step there,
            # and are recorded first (see train), so the study is whole when the sweep reports.
            pool.shutdown(wait=True, cancel_futures=True)
            return
        # An error or Ctrl-C: the workers end now, not at their segments' ends. Their trials
        # stay running in the study with a dead owner, which a rerun finds and reruns, as
        # after a kill -9.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def train(self, segments: list[Segment]) -> Iterator[tuple[Any, TrialOutcome]]:
        """Each segment's trial and its outcome, in the order they end. At the budget no
        segment starts, the ones running stop within a step (and are not yielded: their trials
        are marked stopped) and :attr:`stopped` is set; every segment that ended before is
        yielded, so its run counts."""
        with self._lock:
            self._waiting = deque(segments)
            self._hand_out()
        while True:
            # The workers' ended segments first: one that failed stops the stage before this
            # process starts another.
            yield from self._ended_in_workers()
            with self._lock:
                mine = self._waiting.popleft() if self._waiting else None
                running = list(self._running)
            if mine is not None:  # this process trains one too
                outcome = None if self.context.out_of_time else self._here(mine)
                if outcome is None:
                    self._stop()
                else:
                    yield mine.trial, outcome
            elif running:
                wait(running, return_when=FIRST_COMPLETED)
            else:
                return

    def _ended_in_workers(self) -> Iterator[tuple[Any, TrialOutcome]]:
        """The trials and outcomes of the workers' segments that have ended, taken off."""
        with self._lock:
            ended = [future for future in self._running if future.done()]
        for future in ended:
            with self._lock:
                segment = self._running.pop(future)
            try:
                outcome = future.result()
            except BrokenProcessPool as error:
                raise ConfigError(
                    "A sweep worker process ended without finishing its trial (out of "
                    "memory, or its model failed to load: see the errors above); the "
                    "trials it ran rerun when the sweep is run again."
                ) from error
            if outcome is None:
                self._stop()
                continue
            self._report(segment, outcome)
            yield segment.trial, outcome

    def _stop(self) -> None:
        """The budget is spent: nothing more starts."""
        self.stopped = True
        with self._lock:
            self._waiting.clear()

    def _hand_out(self) -> None:
        """Give idle workers the next waiting segments (none past the budget); called with
        the lock held."""
        pool = self._pool
        busy = sum(not future.done() for future in self._running)  # ended, not taken off yet
        while pool is not None and self._waiting and busy < self._others():
            if self.context.out_of_time:
                return
            segment = self._waiting.popleft()
            future = pool.submit(
                _train_in_worker, segment.trial.number, segment.until, segment.reported
            )
            self._running[future] = segment
            busy += 1
            future.add_done_callback(self._next)

    def _next(self, future: Future[TrialOutcome | None]) -> None:
        """A worker's segment ended: give it the next one at once (not after a failure,
        which ends the stage)."""
        if future.cancelled() or future.exception() is not None:
            return
        with self._lock:
            self._hand_out()

    def _others(self) -> int:
        return self.context.options.workers - 1

    def _report(self, segment: Segment, outcome: TrialOutcome) -> None:
        """The progress bar hears the rungs a worker's segment reached."""
        if self.progress is None:
            return
        before = {step for step, _ in segment.reported}
        for step, _ in outcome.rungs:
            if step not in before:
                self.progress(segment.trial.number, step)

    def _here(self, segment: Segment) -> TrialOutcome | None:
        trial = segment.trial
        trial.set_user_attr(OWNER, this_process())
        return attempt(
            self.context,
            self.study,
            trial,
            StudyReporter(trial, self.progress, prune=False),
            until=segment.until,
            resume=bool(segment.reported),
            reported=segment.reported,
        )


#: A worker process's sweep: its context and its handle on the shared study.
_WORKER: list[Any] = []


def _start_worker(job: SweepJob, parent_pid: int) -> None:
    """A worker's start (see :func:`~dialogsum.sweep.job.join_sweep`)."""
    _WORKER[:] = join_sweep(job, parent_pid)


def _train_in_worker(
    number: int, until: int, reported: tuple[tuple[int, float], ...]
) -> TrialOutcome | None:
    """Train trial ``number`` (asked by the sweep's process) to ``until`` in this worker."""
    import optuna

    context, study = _WORKER
    frozen = study.get_trials(deepcopy=False)[number]
    trial = optuna.trial.Trial(study, frozen._trial_id)
    # The process that runs it now: where it dies, a rerun of the sweep reruns the trial.
    trial.set_user_attr(OWNER, this_process())
    reporter = StudyReporter(trial, None, prune=False)
    return attempt(
        context, study, trial, reporter, until=until, resume=bool(reported), reported=reported
    )
