"""The Ray Tune engine: the same trials, on a local Ray started for the sweep or on the cluster
``ray_address`` / ``RAY_ADDRESS`` names, one trial per worker with the CPUs and GPUs asked for.

Ray Tune runs the trials and its ASHA scheduler stops poor ones at the same rungs; the search
is Optuna's, through :class:`StudySearcher`: the sweep's own study, sampled exactly as the
Optuna engine samples it. So both engines propose the same trials from the same seed, a
killed sweep resumes from its study on either engine, and ``sweep.json`` and the report are
written the same way. Trials on other machines write their run folders under the sweep folder:
on a multi-machine cluster it must be on a file system every machine shares.

Ray is imported with this module, which only ``engine="ray"`` imports.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from ray.tune.search import Searcher
from ray.tune.stopper import Stopper

from dialogsum.sweep.job import SweepContext, past
from dialogsum.sweep.progress import Progress
from dialogsum.sweep.study import ask, counted_trials, interrupt, tell_finished, tell_pruned
from dialogsum.sweep.trials import trial_folder


def run_ray(job: Any, context: SweepContext, study: Any, progress: Progress | None) -> str | None:
    """Run the sweep's remaining trials on Ray Tune; ``"budget"`` when its budget stopped it."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    import dialogsum.ray_cluster as ray_cluster

    options = context.options
    started_ray = ray_cluster.connect(
        options.ray_address, num_cpus=max(options.workers * options.cpus_per_trial, 1)
    )
    mode = "max" if options.maximize else "min"
    searcher = StudySearcher(study, context, progress, metric="score", mode=mode)
    scheduler: Any = FIFOScheduler()
    if options.pruner != "none":
        scheduler = ASHAScheduler(
            time_attr="step",
            grace_period=context.first_rung,
            reduction_factor=options.reduction_factor,
            max_t=context.longest_steps,
        )
    trainable = tune.with_resources(
        tune.with_parameters(_ray_trial, job=job),
        {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric="score",
            mode=mode,
            search_alg=searcher,
            scheduler=scheduler,
            # The trials left to run, at most (repeats end without a Ray trial, and the
            # searcher says when the sweep has its trials): Ray's table shows this number.
            num_samples=max(options.trials - counted_trials(study), 1),
            max_concurrent_trials=options.workers,
        ),
        run_config=tune.RunConfig(
            name="ray",
            storage_path=str(context.folder.resolve()),
            stop=DeadlineStop(context.deadline),
            verbose=0,
        ),
    )
    try:
        # Ray Tune prints its tables on stdout, where the command prints its result (--json).
        with contextlib.redirect_stdout(sys.stderr):
            tuner.fit()
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    if searcher.errors:
        from dialogsum.errors import ConfigError

        raise ConfigError(
            f"{len(searcher.errors)} trial(s) failed on Ray ({', '.join(searcher.errors)}); "
            f"they rerun when the sweep is run again. Ray's logs are under "
            f"{context.folder / 'ray'}."
        )
    return "budget" if searcher.stopped else None


def _ray_trial(config: dict[str, Any], job: Any) -> None:
    """One trial in a Ray worker: load the model, train, report each rung to Ray Tune."""
    import torch
    from ray import tune

    from dialogsum.sweep.job import load_context
    from dialogsum.sweep.trials import run_trial

    context = load_context(job)
    torch.set_num_threads(max(1, int(context.options.cpus_per_trial)))

    class RayReporter:
        def report(self, step: int, score: float, *, final: bool) -> bool:
            if not final:  # the last score is reported once the run folder is written
                tune.report({"score": score, "step": step, "final": False})
            return False  # ASHA stops the trial itself

    outcome = run_trial(context, int(config["number"]), dict(config["params"]), RayReporter())
    # Reported after the trial's model is saved: at its last rung ASHA stops the trial at once.
    # "score" is what ASHA compares at a rung; "objective" is the trial's own score (they
    # differ where the trial ends on a rung scored greedily, see Scorer.rung).
    tune.report(
        {
            "score": outcome.rungs[-1][1],
            "objective": outcome.score,
            "step": outcome.steps,
            "final": True,
        }
    )


class StudySearcher(Searcher):
    """Ray Tune's searcher over the sweep's Optuna study: asks it for each trial's settings and
    tells it each rung score and each ending (finished, stopped by ASHA, interrupted)."""

    def __init__(
        self,
        study: Any,
        context: SweepContext,
        progress: Progress | None,
        *,
        metric: str,
        mode: str,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.study = study
        self.context = context
        self.progress = progress
        self.trials: dict[str, Any] = {}
        self.errors: list[str] = []
        self.stopped = False

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The next trial's settings, or FINISHED when the sweep has its trials."""
        if self.context.out_of_time:
            self.stopped = True
            return self.FINISHED  # type: ignore[return-value]
        if self.errors:
            # A failed trial's rerun waits for the next run of the sweep: asked now, a trial
            # that fails every time (out of memory, say) would be retried without end.
            return self.FINISHED  # type: ignore[return-value]
        trial = ask(self.study, self.context.space, self.context.options)
        if trial is None:
            return self.FINISHED  # type: ignore[return-value]
        self.trials[trial_id] = trial
        return {"number": trial.number, "params": dict(trial.params)}

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study in the sweep folder is the searcher's state."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore: see :meth:`save`."""

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Record a rung's score in the study."""
        trial = self.trials[trial_id]
        trial.report(float(result["score"]), int(result["step"]))
        if self.progress is not None:
            self.progress(trial.number, int(result["step"]))

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Tell the study how the trial ended."""
        trial = self.trials.pop(trial_id)
        if error:
            self.errors.append(f"trial {trial.number}")
            interrupt(self.study, trial, "interrupted")
        elif result is not None and result.get("final"):
            tell_finished(self.study, trial, float(result["objective"]), int(result["step"]))
        elif self.context.out_of_time:
            self.stopped = True
            interrupt(self.study, trial, "stopped")
        else:  # stopped by ASHA at a rung
            tell_pruned(self.study, trial, trial_folder(self.context.folder, trial.number))
        if self.progress is not None:
            self.progress(trial.number, None)


class DeadlineStop(Stopper):
    """Ray Tune's stopper for the sweep's budget: stops every trial when time is up."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.stop_all()

    def stop_all(self) -> bool:
        """True once the budget is spent."""
        return past(self.deadline)
