"""The sweep's Optuna study: opened in the sweep folder (or a shared database), sampled the
same way by both engines, and read back as trial records.

Reproducibility across a kill: the TPE sampler is re-seeded before each new trial from the
sweep's seed and the number of trials that count (every trial but the interrupted ones), so a
sweep killed and resumed samples exactly what an uninterrupted one would. A trial interrupted
by a kill or by the budget is marked failed and rerun from its start with the same settings
(the study enqueues them); failed trials are hidden from the pruner, whose decisions then
depend only on the trials that count.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dialogsum.errors import ConfigError, clause
from dialogsum.sweep.options import SweepOptions
from dialogsum.sweep.space import SearchSpace
from dialogsum.sweep.storage import redacted

STUDY_NAME = "dialogsum-sweep"
#: A trial's user attribute naming the process that runs it (host:pid).
OWNER = "owner"
#: A trial's user attribute: the seconds it spent training and scoring, over all its runs
#: (a trial that pauses at rungs runs several times).
TRAINED_SECONDS = "trained_seconds"
#: A trial's user attribute: the rung step it last waited at (sync schedule).
PAUSED_AT = "paused_at"
#: The study's user attributes: the wall time of the sweep's runs that wrote results, over
#: all of them (a sweep stopped at its budget and run again is one sweep), and the hourly
#: cost last given (a rerun without --hourly-cost still shows the cost).
WALL_SECONDS = "wall_seconds"
HOURLY_COST = "hourly_cost"


def storage_url(folder: Path, options: SweepOptions) -> str:
    """The study's database: ``--storage``, else SQLite in the sweep folder."""
    return options.storage or f"sqlite:///{(folder / 'study.db').resolve()}"


def open_study(
    folder: Path, options: SweepOptions, settings: Mapping[str, Any], first_rung: int
) -> Any:
    """Create the study, or open the one a previous run of this sweep left.

    ``settings`` is what decides the trials (space, method, data, seed, ...): a study holding
    another sweep's settings is refused, with the settings that differ.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            study_name=STUDY_NAME,
            storage=storage_url(folder, options),
            direction="maximize" if options.maximize else "minimize",
            load_if_exists=True,
            pruner=make_pruner(options, first_rung),
        )
    except Exception as exc:
        if options.storage is None:
            raise
        # A server down or a wrong password or database name: the URL's form was checked.
        # The driver's own words, without SQLAlchemy's wrapping and web links.
        cause = (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"Could not open the sweep's study in --storage {redacted(options.storage)}: "
            f"{clause(cause)}. {_check_what(options.storage)}"
        ) from exc
    recorded = study.user_attrs.get("settings")
    if recorded is None:
        study.set_user_attr("settings", dict(settings))
        return study
    recorded = {**EARLIER_DEFAULTS, **recorded}
    changed = sorted(
        key for key in set(recorded) | set(settings) if recorded.get(key) != settings.get(key)
    )
    # In the sweep folder's own study (one command at a time uses it; a shared database may
    # be opened by other machines at any moment, each of which must agree): nothing ran yet
    # (a run refused at its budget wrote only the study), so nothing to keep; or another
    # number of trials, asynchronously (each trial is asked as the one before ends, so a
    # finished sweep goes on to more; a sync sweep asks its whole bracket first).
    own = options.storage is None
    if (
        changed
        and own
        and (not study.trials or (changed == ["trials"] and settings.get("schedule") == "async"))
    ):
        study.set_user_attr("settings", dict(settings))
        return study
    if changed:
        shown = "; ".join(
            f"{key}: {_short(recorded.get(key))} there, {_short(settings.get(key))} here"
            for key in changed
        )
        raise ConfigError(
            f"{folder} holds a sweep with other settings ({shown}), so its trials cannot be "
            f"continued with these. Give the same settings, use another folder, or pass "
            f"overwrite=True (CLI: --overwrite) to start this sweep over."
        )
    return study


def _check_what(storage: str) -> str:
    """What to check when the study's database cannot be opened."""
    if storage.startswith("sqlite"):
        return "Check that the path names a file (or none yet) in a folder this process can write."
    return (
        "Check that the database is running and reachable from here, and its user, password "
        "and database name."
    )


#: Settings a sweep folder written by an earlier dialogsum does not record, with the value
#: that reproduces how that sweep ran (its rungs were scored with the model's own decoding,
#: and successive halving ran asynchronously).
EARLIER_DEFAULTS = {"rung_decoding": "model", "schedule": "async"}


def _short(value: Any) -> str:
    """A setting's value for an error message: long ones (data digests, spaces) cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def make_pruner(options: SweepOptions, first_rung: int) -> Any:
    """The pruner of ``options.pruner`` with its first rung at ``first_rung`` steps, blind to
    interrupted trials."""
    import optuna

    inner: Any
    if options.pruner == "none":
        inner = optuna.pruners.NopPruner()
    elif options.pruner == "hyperband":
        inner = optuna.pruners.HyperbandPruner(
            min_resource=first_rung, reduction_factor=options.reduction_factor
        )
    else:
        inner = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=first_rung, reduction_factor=options.reduction_factor
        )

    class CountedTrialsOnly(optuna.pruners.BasePruner):
        """Optuna's pruners compare a trial with every trial's rung scores, failed ones too;
        a trial killed and rerun would count twice."""

        def prune(self, study: Any, trial: Any) -> bool:
            return bool(inner.prune(_CountedStudy(study), trial))

    return CountedTrialsOnly()


class _CountedStudy:
    """A view of a study whose ``get_trials`` leaves out failed (interrupted) trials."""

    def __init__(self, study: Any) -> None:
        self._study = study

    def get_trials(self, *args: Any, **kwargs: Any) -> list[Any]:
        from optuna.trial import TrialState

        trials = self._study.get_trials(*args, **kwargs)
        return [trial for trial in trials if trial.state != TrialState.FAIL]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


def counted_trials(study: Any) -> int:
    """Trials that count toward the sweep's total: all but the interrupted (failed) ones and
    the reruns not started yet (each takes an interrupted trial's place when it starts; a
    rerun counted while waiting would fill the sweep's last place and never run)."""
    from optuna.trial import TrialState

    uncounted = (TrialState.FAIL, TrialState.WAITING)
    return sum(1 for trial in study.get_trials(deepcopy=False) if trial.state not in uncounted)


def ask(
    study: Any, space: SearchSpace, options: SweepOptions, owner: str | None = None
) -> Any | None:
    """A new trial of ``study`` to train (an enqueued rerun first), sampled by TPE seeded from
    the sweep's seed and the trial's place in the sweep; None once the sweep has its trials.

    Settings that a finished or pruned trial already had are not trained again: the trial gets
    that trial's scores, since training is deterministic (the same settings and seed train the
    same model), and counts as a trial. TPE proposes such repeats often in a space of a few
    choices, and each would cost a whole trial.
    """
    import optuna

    while (index := counted_trials(study)) < options.trials:
        study.sampler = optuna.samplers.TPESampler(
            seed=options.seed * 100_003 + index, n_startup_trials=options.startup_trials()
        )
        trial = study.ask(space.distributions())
        trial.set_user_attr(OWNER, owner or this_process())
        earlier = _tried(study, trial.params)
        if earlier is None:
            return trial
        end_as_repeat(study, trial, earlier)
    return None


def _tried(study: Any, params: Mapping[str, Any]) -> Any | None:
    from optuna.trial import TrialState

    ended = (TrialState.COMPLETE, TrialState.PRUNED)
    for trial in study.get_trials(deepcopy=False, states=ended):
        if trial.params == params and "repeat_of" not in trial.user_attrs:
            return trial
    return None


def end_as_repeat(study: Any, trial: Any, earlier: Any) -> None:
    """End ``trial`` as ``earlier`` ended, with its scores, without training."""
    from optuna.trial import TrialState

    for step, score in sorted(earlier.intermediate_values.items()):
        trial.report(score, step)
    trial.set_user_attr("repeat_of", earlier.number)
    trial.set_user_attr(TRAINED_SECONDS, 0.0)  # it trains nothing, however long it waited
    if "steps" in earlier.user_attrs:
        trial.set_user_attr("steps", earlier.user_attrs["steps"])
    if earlier.state == TrialState.COMPLETE:
        study.tell(trial, earlier.value)
    else:
        study.tell(trial, state=TrialState.PRUNED)


def this_process() -> str:
    """``host:pid``, recorded on the trials this process runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's trial: it may be running there
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return int(pid) == os.getpid()  # this process starts no trial before recovering


def recover_interrupted(study: Any) -> list[int]:
    """Mark trials whose process died (kill -9, power loss) as interrupted, and enqueue each
    for a rerun from its start with the same settings. Returns their numbers."""
    from optuna.trial import TrialState

    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _dead(str(trial.user_attrs.get(OWNER, ""))):
            continue
        interrupt(study, trial, "interrupted")
        recovered.append(trial.number)
    return recovered


def tell_finished(study: Any, trial: Any, score: float, steps: int) -> None:
    """Tell the study ``trial`` trained to its end (``steps``) and scored ``score``."""
    trial.set_user_attr("steps", steps)
    study.tell(trial, score)


def tell_pruned(study: Any, trial: Any, folder: Path) -> None:
    """Tell the study ``trial`` was pruned, and remove its unfinished run folder."""
    from optuna.trial import TrialState

    study.tell(trial, state=TrialState.PRUNED)
    shutil.rmtree(folder, ignore_errors=True)


def interrupt(study: Any, trial: Any, why: str) -> None:
    """Fail ``trial`` (``why``: interrupted or stopped) and enqueue its rerun."""
    from optuna.trial import TrialState

    study._storage.set_trial_user_attr(trial._trial_id, "ended", why)
    study.tell(trial.number, state=TrialState.FAIL)
    study.enqueue_trial(dict(trial.params), user_attrs={"rerun_of": trial.number})


def trial_records(
    study: Any, space: SearchSpace, hourly_cost: float | None
) -> list[dict[str, Any]]:
    """The study's trials as ``sweep.json`` records them."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    rerun_as = {
        int(trial.user_attrs["rerun_of"]): trial.number
        for trial in trials
        if "rerun_of" in trial.user_attrs
    }
    states = {
        TrialState.COMPLETE: "finished",
        TrialState.PRUNED: "pruned",
        TrialState.RUNNING: "running",
        TrialState.WAITING: "waiting",
    }
    records = []
    for trial in trials:
        if trial.state == TrialState.WAITING:
            continue  # a rerun not started yet: the interrupted trial's record says so
        state = states.get(trial.state) or str(trial.user_attrs.get("ended", "failed"))
        rungs = sorted(trial.intermediate_values.items())
        if state == "running" and rungs and trial.user_attrs.get(PAUSED_AT) == rungs[-1][0]:
            state = "paused"  # waiting at a rung when the sweep stopped (sync schedule)
        started = trial.datetime_start.timestamp() if trial.datetime_start else None
        finished = trial.datetime_complete.timestamp() if trial.datetime_complete else None
        seconds = finished - started if started is not None and finished is not None else None
        # A trial that waited at rungs (sync schedule) counts the time it trained, not waited.
        seconds = trial.user_attrs.get(TRAINED_SECONDS, seconds)
        records.append(
            {
                "number": trial.number,
                "params": {
                    parameter.key: parameter.decode(trial.params[parameter.key])
                    for parameter in space.parameters
                    if parameter.key in trial.params
                },
                "state": state,
                "rungs": [[int(step), float(score)] for step, score in rungs],
                "score": trial.value
                if trial.value is not None
                else (float(rungs[-1][1]) if rungs else None),
                "steps": int(trial.user_attrs.get("steps", rungs[-1][0] if rungs else 0)),
                "seconds": seconds,
                "cost": None
                if hourly_cost is None or seconds is None
                else seconds / 3600 * hourly_cost,
                "started": started,
                "finished": finished,
                "rerun_of": trial.user_attrs.get("rerun_of"),
                "repeat_of": trial.user_attrs.get("repeat_of"),
                "rerun_as": rerun_as.get(trial.number),
                # A rerun that continued from its predecessor's checkpoint (sync schedule).
                "resumed_from": trial.user_attrs.get("resumed_from"),
            }
        )
    return records


def best_trial(study: Any) -> Any | None:
    """The best finished trial, or None when none has finished."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def importances(study: Any) -> dict[str, float]:
    """Each parameter's importance to the score over the finished trials (Optuna's default
    evaluator, which needs no scikit-learn), or nothing when too few trials finished."""
    import warnings

    import optuna
    from optuna.trial import TrialState

    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "too few trials": an empty answer says it
            found = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):
        return {}
    return {key: float(value) for key, value in found.items()}
