"""The Optuna engine: trials run on this machine, one after another in each worker process,
all sharing one study (SQLite in the sweep folder, or ``--storage``).

``--workers N`` starts N-1 more processes (spawned, so each loads its own copy of the model);
each asks the shared study for the next trial until the sweep has its trials.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from typing import Any

from dialogsum.sweep.job import SweepContext, SweepJob, join_sweep
from dialogsum.sweep.progress import Progress
from dialogsum.sweep.study import ask, counted_trials, tell_finished, tell_pruned
from dialogsum.sweep.trials import Pruned, StudyReporter, attempt, trial_folder


def run_trials(context: SweepContext, study: Any, progress: Progress | None = None) -> str | None:
    """Run trials until the study holds the sweep's number of them. Returns ``"budget"`` when
    the budget stopped the sweep, else None."""
    while counted_trials(study) < context.options.trials:
        if context.out_of_time:
            return "budget"
        trial = ask(study, context.space, context.options)
        if trial is None:
            return None
        try:
            outcome = attempt(context, study, trial, StudyReporter(trial, progress))
        except Pruned:
            tell_pruned(study, trial, trial_folder(context.folder, trial.number))
        else:
            if outcome is None:
                return "budget"
            tell_finished(study, trial, outcome.score, outcome.steps)
        if progress is not None:
            progress(trial.number, None)
    return None


def start_workers(count: int, target: Callable[..., Any], *args: Any) -> list[Any]:
    """Start ``count`` worker processes running ``target(*args, parent_pid, index)``
    (spawned: a forked copy of a process holding torch's threads can deadlock)."""
    spawn = multiprocessing.get_context("spawn")
    workers = []
    for index in range(1, count + 1):
        arguments = (*args, os.getpid(), index)
        process = spawn.Process(target=target, args=arguments, daemon=False)
        process.start()
        workers.append(process)
    return workers


def worker_main(job: SweepJob, parent_pid: int, index: int) -> None:
    """A ``--workers`` process: run trials of the shared study until the sweep has them."""
    run_trials(*join_sweep(job, parent_pid))
