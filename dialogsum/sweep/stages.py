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
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from dialogsum.processes import die_with_parent
from dialogsum.sweep.job import SweepContext, SweepJob, load_context
from dialogsum.sweep.progress import Progress
from dialogsum.sweep.study import OWNER, open_study, this_process
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
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Trainers:
        others = self.context.options.workers - 1
        if others > 0:
            if self.job is None:
                raise ValueError("workers in other processes need the sweep's job")
            import multiprocessing

            # Spawned, as the asynchronous schedule's workers are: a forked copy of a process
            # holding torch's threads can deadlock.
            self._pool = ProcessPoolExecutor(
                max_workers=others,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.job, os.getpid()),
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            # Segments not started are dropped; those running end first (at the budget they
            # stop there and are marked so), so the study is whole when the sweep reports.
            self._pool.shutdown(wait=True, cancel_futures=True)

    def train(self, segments: list[Segment]) -> Iterator[tuple[Any, TrialOutcome | None]]:
        """Each segment's trial and its outcome (None: the budget stopped it), in the order
        they end. Past the budget no segment starts."""
        waiting = deque(segments)
        running: dict[Future[TrialOutcome | None], Segment] = {}
        while waiting or running:
            self._hand_out(waiting, running)
            if waiting:  # this process trains one too
                segment = waiting.popleft()
                if self.context.out_of_time:
                    yield segment.trial, None
                    return
                yield segment.trial, self._here(segment)
            elif running:
                wait(running, return_when=FIRST_COMPLETED)
            for future in [future for future in running if future.done()]:
                segment = running.pop(future)
                outcome = future.result()  # a worker's failure is the sweep's
                if outcome is not None and self.progress is not None:
                    for step, _ in outcome.rungs:
                        self.progress(segment.trial.number, step)
                yield segment.trial, outcome

    def _hand_out(
        self, waiting: deque[Segment], running: dict[Future[TrialOutcome | None], Segment]
    ) -> None:
        """Give idle workers the next segments (none past the budget)."""
        if self._pool is None:
            return
        while waiting and len(running) < self.context.options.workers - 1:
            if self.context.out_of_time:
                return
            segment = waiting.popleft()
            future = self._pool.submit(
                _train_in_worker, segment.trial.number, segment.until, segment.reported
            )
            running[future] = segment

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
    """A worker's start: it ends with the sweep's process, and loads the model once."""
    die_with_parent(parent_pid)
    context = load_context(job)
    study = open_study(context.folder, context.options, job.settings(), context.first_rung)
    _WORKER[:] = [context, study]


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
