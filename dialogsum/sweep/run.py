"""A whole sweep: measure and project it, run its trials on an engine, and write the sweep
folder (``sweep.json``, the report and its plots, ``trials/``, and ``best/``).

The sweep folder::

    study.db          the Optuna study (unless --storage names another database)
    sweep.json        settings, projection, every trial, the best one
    report.md/.html   the report a person reads; plots/ beside them
    trials/NNNN/      each finished trial's run folder (models removed unless keep_models)
    best/             the best trial's run folder: evaluate, export and serve take it
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialogsum.errors import ConfigError, logger
from dialogsum.files import staged_folder, write_text
from dialogsum.sweep.budget import SweepProjection, budget_seconds, check_budget, project_sweep
from dialogsum.sweep.job import SweepContext, SweepJob, costliest, sharing_cores
from dialogsum.sweep.options import SweepOptions
from dialogsum.sweep.trials import Scorer, plan_trial, trial_folder


@dataclass
class SweepResult:
    """What a sweep leaves: its folder, its summary (``sweep.json``), the Optuna study, and
    the best trial's run folder (None when no trial finished)."""

    folder: Path
    summary: dict[str, Any]
    study: Any
    best: Path | None = None
    projection: SweepProjection | None = field(default=None, repr=False)


def measure(context: SweepContext, remaining: int) -> tuple[SweepProjection, float]:
    """Time a few real steps, one scoring (and one greedy scoring, for greedy rungs) and one
    trial start; project the sweep. Also returns the untuned model's score (the objective
    before any training)."""
    from dialogsum.training.estimates import estimate_run

    started = time.perf_counter()
    plan = plan_trial(context, costliest(context.space))
    start_seconds = time.perf_counter() - started
    estimate = estimate_run(plan, steps=3)
    scorer = Scorer(context, context.data)
    started = time.perf_counter()
    default_score = scorer(context.model)
    score_seconds = rung_seconds = time.perf_counter() - started
    if context.options.greedy_rungs:
        started = time.perf_counter()
        scorer(context.model, greedy=True)
        rung_seconds = time.perf_counter() - started
    total = plan.total_steps()
    projection = project_sweep(
        context.options,
        trials=remaining,
        total_steps=total,
        first_rung=context.first_rung,
        seconds_per_step=estimate.seconds_per_step,
        seconds_per_score=score_seconds,
        seconds_per_start=start_seconds,
        seconds_per_rung_score=rung_seconds,
    )
    return projection, default_score


def run_sweep(
    job: SweepJob,
    context: SweepContext,
    *,
    overwrite: bool = False,
    estimate: bool = False,
) -> SweepResult:
    """Run (or with ``estimate``, only project) the sweep ``job`` describes."""
    with each_message_once():
        return _run_sweep(job, context, overwrite=overwrite, estimate=estimate)


def _run_sweep(
    job: SweepJob, context: SweepContext, *, overwrite: bool, estimate: bool
) -> SweepResult:
    from dialogsum.sweep.study import counted_trials, open_study, recover_interrupted

    options = context.options
    folder = context.folder
    existed = folder.exists()
    if not estimate:  # an estimate writes nothing
        prepare_folder(folder, overwrite=overwrite)
    started = time.time()
    try:
        study = (
            None if estimate else open_study(folder, options, job.settings(), context.first_rung)
        )
    except Exception:
        if not existed and not any(folder.iterdir()):  # nothing of the user's: nothing left
            folder.rmdir()
        raise
    if study is not None:
        recovered = recover_interrupted(study)
        if recovered:
            logger.info("rerunning trial(s) %s, interrupted by the last run", recovered)
    remaining = options.trials - (counted_trials(study) if study is not None else 0)
    if study is not None and remaining <= 0 and options.storage is None:
        done = finished_results(folder, len(study.get_trials(deepcopy=False)))
        if done is not None:  # run again as it was: nothing to train, nothing to rewrite
            logger.info(
                "%s has its %d trials already; nothing to run (raise --trials to run more)",
                folder,
                options.trials,
            )
            best = folder / "best" if done["best"] is not None else None
            return SweepResult(folder, done, study, best=best)
    projection, default_score = measure(context, max(remaining, 0))
    if not estimate:
        check_budget(projection, options, spent=time.time() - started)
        logger.info("%s", projection.message())  # an estimate is the caller's to show
    if estimate or study is None:
        summary = {"projection": projection.as_dict(), "default_score": default_score}
        return SweepResult(folder, summary, None, projection=projection)
    limit = budget_seconds(options)
    context.deadline = job.deadline = None if limit is None else started + limit
    stopped = run_engine(job, context, study, remaining)
    summary = write_results(context, study, projection, default_score, started, stopped)
    best = folder / "best" if summary["best"] is not None else None
    return SweepResult(folder, summary, study, best=best, projection=projection)


def run_engine(job: SweepJob, context: SweepContext, study: Any, remaining: int) -> str | None:
    """Run the trials on the sweep's engine, with a progress bar; the stop reason or None."""
    from dialogsum.sweep.progress import SweepProgress

    with SweepProgress(context.options, study) as progress, quiet_trials(context.options):
        if context.options.engine == "ray":
            from dialogsum.sweep.ray_tune import run_ray

            return run_ray(job, context, study, progress)
        # Shared among the processes that can have a trial at once.
        with sharing_cores(job, min(context.options.workers, context.options.trials)):
            return _run_locally(job, context, study, progress)


def _run_locally(job: SweepJob, context: SweepContext, study: Any, progress: Any) -> str | None:
    """The Optuna engine: this process and ``--workers`` N-1 more train the trials."""
    if context.options.schedule == "sync":
        from dialogsum.sweep.synchronous import run_synchronous

        return run_synchronous(context, study, progress, job)
    from dialogsum.sweep.local import run_trials, start_workers, worker_main

    workers = start_workers(context.options.workers - 1, worker_main, job)
    try:
        stopped = run_trials(context, study, progress)
    finally:
        for worker in workers:
            worker.join()
    failed = [w.exitcode for w in workers if w.exitcode]
    if failed:
        raise ConfigError(
            f"{len(failed)} sweep worker(s) failed (exit status {failed}); their trials "
            f"rerun when the sweep is run again. See the errors above."
        )
    return stopped


class _Once(logging.Filter):
    """Lets each message through once: every trial tokenizes the same data and would repeat
    the same truncation warning."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        new = message not in self.seen
        self.seen.add(message)
        return new


@contextmanager
def each_message_once() -> Iterator[None]:
    """dialogsum's log messages, each once while the sweep runs."""
    once = _Once()
    logging.getLogger("dialogsum").addFilter(once)
    try:
        yield
    finally:
        logging.getLogger("dialogsum").removeFilter(once)


@contextmanager
def quiet_trials(options: SweepOptions) -> Iterator[None]:
    """With the progress bar on, the trials' per-step training logs stay out of its way."""
    dialogsum_logger = logging.getLogger("dialogsum")
    level = dialogsum_logger.level
    if options.progress:
        dialogsum_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        dialogsum_logger.setLevel(level)


def prepare_folder(folder: Path, *, overwrite: bool) -> None:
    """Create the sweep folder; with ``overwrite``, remove a previous sweep there first."""
    if overwrite and folder.exists():
        if not (folder / "sweep.json").exists() and not (folder / "study.db").exists():
            raise ConfigError(
                f"{folder} is not a sweep folder (no sweep.json or study.db); overwrite=True "
                f"replaces only a sweep's folder. Choose another folder."
            )
        shutil.rmtree(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file; a sweep writes a folder. Choose another path.")
    folder.mkdir(parents=True, exist_ok=True)


def finished_results(folder: Path, trials: int) -> dict[str, Any] | None:
    """The results a finished sweep wrote in ``folder``, where they hold every one of the
    ``trials`` its study does (None: none, not finished, or written before trials since: a
    run killed between its last trial and its results)."""
    try:
        summary = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
        if summary.get("state") == "finished" and len(summary["trials"]) == trials:
            return dict(summary)
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        pass
    return None


def write_results(
    context: SweepContext,
    study: Any,
    projection: SweepProjection,
    default_score: float,
    started: float,
    stopped: str | None,
) -> dict[str, Any]:
    """Copy the best trial to ``best/``, and write ``sweep.json`` and the report."""
    from dialogsum.sweep.report import write_report
    from dialogsum.sweep.study import (
        HOURLY_COST,
        WALL_SECONDS,
        best_trial,
        importances,
        trial_records,
    )

    options = context.options
    folder = context.folder
    for checkpoints in (folder / "trials").glob("*/checkpoints"):
        if not any(checkpoints.iterdir()):  # a killed trial's, or one whose rung resumed
            checkpoints.rmdir()
    for trial_dir in (folder / "trials").glob("*"):
        if trial_dir.is_dir() and not any(trial_dir.iterdir()):  # killed before it wrote
            trial_dir.rmdir()
    best = best_trial(study)
    if best is not None:
        source = trial_folder(folder, best.number)
        with staged_folder(folder / "best", overwrite=True) as staging:
            shutil.copytree(source, staging, dirs_exist_ok=True)
        if not options.keep_models:
            for trial in (folder / "trials").iterdir():
                if trial.name != source.name:
                    shutil.rmtree(trial / "model", ignore_errors=True)
    # The sweep's wall time and cost over its runs (one stopped at its budget and run again
    # is one sweep), at the hourly cost given last. A shared database's runs may overlap on
    # several machines: there, this run's own.
    seconds = time.time() - started
    if options.storage is None:
        seconds += float(study.user_attrs.get(WALL_SECONDS, 0.0))
        study.set_user_attr(WALL_SECONDS, seconds)
    hourly_cost = options.hourly_cost
    if hourly_cost is None:
        hourly_cost = study.user_attrs.get(HOURLY_COST)
    else:
        study.set_user_attr(HOURLY_COST, hourly_cost)
    summary: dict[str, Any] = {
        "objective": {
            "metric": options.objective,
            "direction": "maximize" if options.maximize else "minimize",
        },
        "engine": options.engine,
        "method": context.method,
        "seed": options.seed,
        "trials_asked": options.trials,
        "state": "stopped" if stopped else "finished",
        "stop_reason": None if not stopped else budget_reason(options),
        "seconds": seconds,
        "cost": None if hourly_cost is None else seconds / 3600 * hourly_cost,
        "hourly_cost": hourly_cost,
        "default_score": default_score,
        "space": context.space.as_dict(),
        "rungs": [rung.steps for rung in projection.rungs],
        "trials": trial_records(study, context.space, hourly_cost),
        "best": None
        if best is None
        else {
            "number": best.number,
            "score": best.value,
            "params": {p.key: p.decode(best.params[p.key]) for p in context.space.parameters},
            "folder": "best",
        },
        "importances": importances(study),
        "projection": projection.as_dict(),
    }
    write_text(folder / "sweep.json", json.dumps(summary, indent=2, default=str) + "\n")
    write_report(folder, summary)
    return summary


def budget_reason(options: SweepOptions) -> str:
    """Why a sweep stopped at its budget, in words."""
    from dialogsum.training.estimates import format_duration

    parts = []
    if options.max_time is not None:
        parts.append(f"time budget of {format_duration(options.max_time)}")
    if options.max_cost is not None:
        parts.append(f"cost budget of {options.max_cost:g}")
    return f"the {' / '.join(parts)} was reached; run the sweep again to continue it"
