"""One trial of a sweep: train with the trial's settings, score the model at each rung, stop
when told to (pruned, or the sweep's budget), and write the trial's run folder.

A trial is a normal fine-tuning run (:func:`dialogsum.training.run.run_finetune`) with one more
Trainer callback, which scores the model on the validation data at each rung's step and
reports the score. Scoring does not draw from the random generator (dropout is off, decoding is
greedy or beam search), so a scored trial trains exactly as an unscored one would.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dialogsum.data import DataOptions
from dialogsum.modeling import TorchModel
from dialogsum.sweep.job import SweepContext, past
from dialogsum.sweep.progress import Progress
from dialogsum.sweep.study import interrupt


class Pruned(Exception):
    """Raised inside a trial when its score at a rung is too poor to go on."""

    def __init__(self, step: int, score: float) -> None:
        super().__init__(f"pruned at step {step} with {score:.4f}")
        self.step = step
        self.score = score


class BudgetReached(Exception):
    """Raised inside a trial when the sweep's budget runs out."""


class Reporter(Protocol):
    """Where a trial's rung scores go: the engine's study or Ray Tune."""

    def report(self, step: int, score: float, *, final: bool) -> bool:
        """Record ``score`` at ``step``; True when the trial should stop (pruned)."""


def rung_steps(total: int, min_steps: int, factor: int) -> list[int]:
    """The steps at which a trial of ``total`` steps is scored: ``min_steps * factor**k``
    below ``total``, then ``total`` itself; a rung just short of the end is left out (54 of
    60 steps would cost a scoring and stop little)."""
    steps = []
    step = min_steps
    while step < total:
        steps.append(step)
        step *= factor
    if steps and total < steps[-1] * math.sqrt(factor):
        steps.pop()
    return [*steps, total]


@dataclass
class TrialOutcome:
    """A trial that finished, or paused at a rung (``paused``): its last score and what it
    cost; ``rungs`` are the scores reported at each rung of this run of it (greedy where the
    sweep's rungs decode greedily)."""

    score: float
    steps: int
    seconds: float
    rungs: list[tuple[int, float]] = field(default_factory=list)
    folder: Path | None = None
    paused: bool = False


def trial_folder(folder: Path, number: int) -> Path:
    """Where trial ``number`` writes its run folder."""
    return folder / "trials" / f"{number:04d}"


def plan_trial(context: SweepContext, params: dict[str, Any], *, resume: bool = False) -> Any:
    """The run plan of a trial with ``params`` (the study's values, by parameter key);
    ``resume`` continues it from the newest checkpoint in its folder (a paused trial)."""
    from dialogsum.training.planning import plan_run

    options, training = context.space.settings(params, context.method_options, context.training)
    training = training.model_copy(
        update={
            # The sweep scores the model itself, keeps no checkpoints but a paused trial's
            # (an interrupted trial is rerun from its start, or from where it paused) and owns
            # the budget.
            "save_strategy": "no",
            "eval_strategy": "no",
            "resume_from_checkpoint": resume,
            "progress": False,
            "max_time": None,
            "max_cost": None,
        }
    )
    return plan_run(
        model=context.model,
        tokenizer=context.tokenizer,
        manifest=context.manifest,
        source=context.source,
        registry=context.registry,
        train=list(context.train),
        method=context.method,
        method_options=context.registry.method_options(context.method, options),
        training_options=training,
        data_options=context.data,
    )


def run_trial(
    context: SweepContext,
    number: int,
    params: dict[str, Any],
    reporter: Reporter,
    *,
    until: int | None = None,
    resume: bool = False,
    reported: tuple[tuple[int, float], ...] = (),
) -> TrialOutcome:
    """Train trial ``number`` with ``params``, reporting its score at each rung.

    With ``until``, the trial pauses at its first rung at or past that step (unless that is
    its end): a checkpoint is saved there and the outcome says ``paused``. ``resume``
    continues it from its newest checkpoint; ``reported`` are the rung scores it reported
    before, which its ``trial.json`` lists with the new ones. Raises :class:`Pruned` when the
    reporter stops it and :class:`BudgetReached` at the sweep's deadline; the trial's run
    folder is ``trials/NNNN`` in the sweep folder.
    """
    from dialogsum.training.checkpoints import prepare_run_folder
    from dialogsum.training.run import run_finetune, write_json

    started = time.perf_counter()
    plan = plan_trial(context, params, resume=resume)
    total = plan.total_steps()
    steps = rung_steps(total, context.first_rung, context.options.reduction_factor)
    pause = next((step for step in steps if until is not None and step >= until), total)
    scorer = Scorer(context, plan.data)
    callback = rung_callback(steps, scorer, reporter, context.deadline, total, pause=pause)
    folder = trial_folder(context.folder, number)
    prepare_run_folder(folder, overwrite=not resume, resume=resume)
    _, result = run_finetune(
        plan,
        output_dir=folder,
        generation=context.manifest.generation,
        serve=context.serve,
        callbacks=[callback],
    )
    rungs = [*reported, *callback.scores]
    done = int(result.metrics.get("global_step", total))
    if pause < total and rungs and rungs[-1][0] == pause:
        # The model written at the pause is not the trial's: only the checkpoint goes on.
        shutil.rmtree(folder / "model", ignore_errors=True)
        seconds = time.perf_counter() - started
        return TrialOutcome(rungs[-1][1], pause, seconds, rungs, folder, paused=True)
    score = callback.score
    if score is None or rungs[-1][0] < done:
        # The Trainer ended on a step the plan did not count (it should not): score it anyway.
        compared, score = scorer.rung(plan.module, done, final=True)
        rungs.append((done, compared))
        reporter.report(done, compared, final=True)
    outcome = TrialOutcome(
        score=score,
        steps=done,
        seconds=time.perf_counter() - started,
        rungs=rungs,
        folder=folder,
    )
    record = {"number": number, "params": params, "score": outcome.score, "rungs": rungs}
    write_json(folder / "trial.json", record)
    return outcome


class Scorer:
    """The sweep's objective for a model being trained: ROUGE of its summaries of the
    validation dialogues, or its validation loss."""

    def __init__(self, context: SweepContext, data: DataOptions) -> None:
        self.context = context
        self.data = data
        limit = context.options.eval_limit
        self.examples = list(context.eval)[:limit] if limit else list(context.eval)
        #: The examples as model inputs, tokenized at the first loss scoring (not each rung).
        self._features: list[dict[str, list[int]]] | None = None

    def __call__(self, module: Any, *, greedy: bool = False) -> float:
        """Score ``module``, in evaluation mode, and leave it in the mode it was in; ``greedy``
        decodes with one beam instead of the model's own settings (ROUGE objectives)."""
        training = module.training
        module.eval()
        try:
            if self.context.options.objective == "loss":
                return self._loss(module)
            return self._rouge(module, {"num_beams": 1} if greedy else {})
        finally:
            module.train(training)

    def rung(self, module: Any, step: int, *, final: bool) -> tuple[float, float]:
        """Score ``module`` at rung ``step``: the score the pruner compares there, and the
        trial's own score (the same unless greedy rungs are on and this is the trial's end).

        Where trials are compared, summaries are decoded greedily when the sweep's
        ``rung_decoding`` says so: a rung only ranks trials against each other, every trial's
        rung is scored the same way, and one beam costs a fraction of the model's beam search.
        A trial's own score, at its last step, is decoded as the model decodes, so it is what
        ``evaluate`` gives the trial's model. A trial ending on a rung where others go on
        (a shorter one in a space over steps or epochs) is scored both ways.
        """
        greedy = self.context.options.greedy_rungs and (not final or self.context.compared_at(step))
        compared = self(module, greedy=greedy)
        return compared, self(module) if final and greedy else compared

    def _rouge(self, module: Any, decoding: dict[str, Any]) -> float:
        from dialogsum.evaluate import evaluate_summaries
        from dialogsum.generation import parse_generation

        manifest = self.context.manifest.model_copy(update={"data": self.data})
        predictor = self.context.serve(TorchModel(module, self.context.tokenizer, manifest))
        options = parse_generation(decoding, manifest.generation)
        scores = evaluate_summaries(
            lambda dialogues: predictor.summarize(dialogues, options), self.examples
        )
        return float(scores[self.context.options.objective])

    def _loss(self, module: Any) -> float:
        import torch
        from transformers import DataCollatorForSeq2Seq

        from dialogsum.adapters import base_of
        from dialogsum.training.features import IGNORE_INDEX, tokenize_examples
        from dialogsum.training.global_batches import token_mean_loss

        tokenizer = self.context.tokenizer
        if self._features is None:
            self._features = tokenize_examples(self.examples, tokenizer, self.data)[0]
        features = self._features
        collate = DataCollatorForSeq2Seq(
            tokenizer, model=base_of(module), label_pad_token_id=IGNORE_INDEX
        )
        # Training's loss, with the whole validation set as the global batch: each batch's
        # summed cross-entropy over the target tokens of all of them.
        targets = sum(token != IGNORE_INDEX for f in features for token in f["labels"])
        total = 0.0
        batch_size = self.context.training.eval_batch_size or self.context.training.batch_size
        device = next(module.parameters()).device
        with torch.no_grad():
            for start in range(0, len(features), batch_size):
                batch = collate(features[start : start + batch_size])
                batch = {key: value.to(device) for key, value in batch.items()}
                outputs = module(**batch)
                total += float(token_mean_loss(outputs, batch["labels"], targets))
        return total


def rung_callback(
    steps: list[int],
    scorer: Scorer,
    reporter: Reporter,
    deadline: float | None,
    total: int,
    *,
    pause: int | None = None,
) -> Any:
    """A Trainer callback that scores the model at ``steps``, reports each score, and stops
    the run when pruned (:class:`Pruned`) or at the deadline (:class:`BudgetReached`); at
    step ``pause`` (before ``total``) it saves a checkpoint and ends the run there."""
    from transformers import TrainerCallback

    class RungScores(TrainerCallback):
        def __init__(self) -> None:
            #: The score reported at each rung (what the pruner compares).
            self.scores: list[tuple[int, float]] = []
            #: The trial's own score at its last rung (its model's own decoding).
            self.score: float | None = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if past(deadline):
                raise BudgetReached
            step = state.global_step
            if step not in steps:
                return control
            final = step >= total
            score, self.score = scorer.rung(kwargs["model"], step, final=final)
            self.scores.append((step, score))
            if reporter.report(step, score, final=final):
                raise Pruned(step, score)
            if step == pause and not final:
                # As the budget guard stops a run: the Trainer saves this step's checkpoint
                # (weights, optimizer, scheduler, random states) and ends; a resumed run
                # continues from it exactly as if it had not stopped. It logs first, so the
                # loss summed into the checkpoint covers every step (RunTotals).
                control.should_save = True
                control.should_log = True
                control.should_training_stop = True
            return control

    return RungScores()


class StudyReporter:
    """Reports a trial's rung scores to its Optuna trial and asks the pruner (unless
    ``prune`` is False: whole rungs are decided once every trial has reached them)."""

    def __init__(self, trial: Any, progress: Progress | None, *, prune: bool = True) -> None:
        self.trial = trial
        self.progress = progress
        self.prune = prune

    def report(self, step: int, score: float, *, final: bool) -> bool:
        """Record the score; True when the pruner stops the trial."""
        self.trial.report(score, step)
        if self.progress is not None:
            self.progress(self.trial.number, step)
        return self.prune and not final and bool(self.trial.should_prune())


def attempt(
    context: SweepContext, study: Any, trial: Any, reporter: StudyReporter, **more: Any
) -> TrialOutcome | None:
    """Run ``trial`` (``more``: :func:`run_trial`'s keywords); None when the sweep's budget
    stopped it. A trial stopped, killed by Ctrl-C or failed is marked so in the study and
    reruns next time; :class:`Pruned` goes to the caller."""
    try:
        return run_trial(context, trial.number, dict(trial.params), reporter, **more)
    except Pruned:
        raise
    except BudgetReached:
        interrupt(study, trial, "stopped")
        return None
    except BaseException:
        interrupt(study, trial, "interrupted")
        raise
