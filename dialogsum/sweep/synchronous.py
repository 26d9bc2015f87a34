"""Synchronous successive halving (``schedule: sync``): whole rungs, compared at once.

Asynchronous successive halving decides each trial at its rung against the trials that reached
that rung before it; run one trial after another, the first trial meets no rival at any rung
and trains to its end, and the next few go on whenever they beat those before them. Here every
trial of the sweep trains to the first rung and pauses there (a checkpoint, see
:func:`~dialogsum.sweep.trials.run_trial`); once all have, the best ``1/reduction_factor`` of
them (at least one) resume from their checkpoints to the next rung, and so on. A resumed trial
trains exactly as an uninterrupted one, so its scores and model are those of the same trial
run straight through; only which trials go on differs.

Decisions are made from the study alone: at rung step ``s`` the trials ranked are every
counted trial that reported a score at ``s`` (ties go to the trial first asked, a rerun
ranking as the trial it reruns), so a sweep killed at any moment and run again decides the
same. A trial interrupted while paused, or
while training between rungs, is rerun as a new trial that takes over its folder and the
scores it had reported up to its newest checkpoint, and resumes from that checkpoint.
"""

from __future__ import annotations

import shutil
from typing import Any

from dialogsum.errors import ConfigError, logger
from dialogsum.sweep.job import SweepContext, SweepJob
from dialogsum.sweep.progress import Progress
from dialogsum.sweep.stages import Segment, Trainers
from dialogsum.sweep.study import (
    PAUSED_AT,
    TRAINED_SECONDS,
    ask,
    end_as_repeat,
    tell_finished,
    tell_pruned,
)
from dialogsum.sweep.trials import TrialOutcome, trial_folder


def run_synchronous(
    context: SweepContext,
    study: Any,
    progress: Progress | None = None,
    job: SweepJob | None = None,
) -> str | None:
    """Run the sweep's trials rung by rung (with ``--workers N``, N at a time: ``job`` is
    what the other processes rebuild the sweep from). Returns ``"budget"`` when the budget
    stopped it, else None."""
    options = context.options
    bracket, twins = _bracket(context, study)
    with Trainers(context, study, progress, job) as trainers:
        stage = 0
        alive = bracket
        while alive:
            until = context.first_rung * options.reduction_factor**stage
            paused: dict[int, int] = {}  # trial number -> the rung step it paused at
            segments = []
            for trial in alive:
                reported = _scores(study, trial.number)
                reached = [step for step, _ in reported if step >= until]
                if reached:  # reached in an earlier run of the sweep
                    paused[trial.number] = reached[0]
                else:
                    segments.append(Segment(trial, until, reported))
            for trial, outcome in trainers.train(segments):
                if _ended(context, study, trial, outcome, progress):
                    paused[trial.number] = outcome.steps
            if trainers.stopped:
                return "budget"
            alive = _decide(context, study, alive, paused, progress)
            stage += 1
    _end_twins(study, twins)
    return None


def _ended(
    context: SweepContext,
    study: Any,
    trial: Any,
    outcome: TrialOutcome,
    progress: Progress | None,
) -> bool:
    """Record a trial's run to this stage's rung; True when it paused there (False: its end
    came first, a shorter trial, and it is told finished)."""
    spent = float(trial.user_attrs.get(TRAINED_SECONDS, 0.0)) + outcome.seconds
    trial.set_user_attr(TRAINED_SECONDS, spent)
    if outcome.paused:
        trial.set_user_attr(PAUSED_AT, outcome.steps)
        return True
    # Told first: a kill while the checkpoints go must not leave a half-removed one for a
    # rerun to resume from.
    tell_finished(study, trial, outcome.score, outcome.steps)
    shutil.rmtree(trial_folder(context.folder, trial.number) / "checkpoints", True)
    if progress is not None:
        progress(trial.number, None)
    return False


def _decide(
    context: SweepContext,
    study: Any,
    alive: list[Any],
    paused: dict[int, int],
    progress: Progress | None,
) -> list[Any]:
    """The trials that go on from this stage's rung; the others are told pruned."""
    going_on = []
    for trial in alive:
        if trial.number not in paused:
            continue
        if trial.number in _promoted(study, paused[trial.number], context.options):
            going_on.append(trial)
            continue
        tell_pruned(study, trial, trial_folder(context.folder, trial.number))
        if progress is not None:
            progress(trial.number, None)
    return going_on


def _bracket(context: SweepContext, study: Any) -> tuple[list[Any], list[tuple[Any, int]]]:
    """The trials to train: every trial the sweep still lacks, asked now (reruns of
    interrupted ones first, each taking over its predecessor's checkpoint and scores).
    Settings asked twice train once: the second trial is a twin, ended as the first ends."""
    bracket: list[Any] = []
    twins: list[tuple[Any, int]] = []
    while (trial := ask(study, context.space, context.options)) is not None:
        twin = next((other for other in bracket if other.params == trial.params), None)
        if twin is not None:
            twins.append((trial, twin.number))
            continue
        rerun_of = trial.user_attrs.get("rerun_of")
        if rerun_of is not None:
            _take_over(context, study, trial, int(rerun_of))
        bracket.append(trial)
    return bracket, twins


def _take_over(context: SweepContext, study: Any, trial: Any, earlier: int) -> None:
    """Give rerun ``trial`` the newest whole checkpoint its interrupted predecessors left, and
    the scores reported up to it, from which the rerun resumes.

    The predecessors are ``earlier`` and, back along their reruns, the trials before it: a
    rerun killed before it took a folder over leaves it with the trial before. The scores are
    reported before the folder moves, so a kill in between leaves the folder where the next
    rerun looks for it (with its owner's scores)."""
    from dialogsum.training.budget import resumed_step
    from dialogsum.training.checkpoints import resume_point

    trials = study.get_trials(deepcopy=False)
    for owner in _lineage(trials, earlier):
        source = trial_folder(context.folder, owner)
        try:
            checkpoint = resume_point(source / "checkpoints", True)
        except ConfigError:  # no checkpoint there, or every one damaged
            continue
        step = resumed_step(checkpoint)
        for reported, score in sorted(trials[owner].intermediate_values.items()):
            if reported <= step:
                trial.report(score, reported)
        spent = trials[owner].user_attrs.get(TRAINED_SECONDS)
        if spent is not None:
            trial.set_user_attr(TRAINED_SECONDS, spent)
        target = trial_folder(context.folder, trial.number)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(source), str(target))
        trial.set_user_attr("resumed_from", step)
        logger.info("trial %d resumes trial %d from step %d", trial.number, owner, step)
        return
    # Nothing to resume from: the rerun starts from the beginning.


def _lineage(trials: list[Any], number: int) -> list[int]:
    """Trial ``number`` and the trials it reruns, back to the first (newest first)."""
    chain = [number]
    while (before := trials[chain[-1]].user_attrs.get("rerun_of")) is not None:
        chain.append(int(before))
    return chain


def _scores(study: Any, number: int) -> tuple[tuple[int, float], ...]:
    """The (rung step, score) pairs trial ``number`` has reported, in step order."""
    trial = study.get_trials(deepcopy=False)[number]
    scores = sorted(trial.intermediate_values.items())
    return tuple((int(step), float(score)) for step, score in scores)


def _promoted(study: Any, step: int, options: Any) -> set[int]:
    """The trials that go on from rung ``step``: the best ``1/reduction_factor`` (at least
    one) of the counted trials that reported a score there. Ties go to the trial first asked
    (a rerun ranks as the trial it reruns, whose number it does not keep), so a sweep rerun
    after a kill decides as before. Repeats of another trial's settings are left out: they
    would take a place twice."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    ranked = [
        trial
        for trial in trials
        if trial.state != TrialState.FAIL
        and step in trial.intermediate_values
        and "repeat_of" not in trial.user_attrs
    ]
    sign = -1.0 if options.maximize else 1.0
    ranked.sort(
        key=lambda trial: (
            sign * trial.intermediate_values[step],
            _lineage(trials, trial.number)[-1],
        )
    )
    keep = max(1, len(ranked) // options.reduction_factor)
    return {trial.number for trial in ranked[:keep]}


def _end_twins(study: Any, twins: list[tuple[Any, int]]) -> None:
    """End each twin as the trial with its settings ended (the scores, without training)."""
    trials = study.get_trials(deepcopy=False)
    for trial, number in twins:
        end_as_repeat(study, trial, trials[number])
