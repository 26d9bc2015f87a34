"""A whole fine-tuning run: train the planned module, score it, and write the run folder.

The run folder (``output_dir``) holds ``checkpoints/``, the final ``model/``, ``metrics.json``,
``train_config.json``, the loss curve and the model card. The Summarizer delegates here and
owns none of these files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from dialogsum.errors import logger
from dialogsum.evaluate import evaluate_summaries
from dialogsum.files import temporary_folder, write_text
from dialogsum.generation import parse_generation
from dialogsum.interfaces import Predictor
from dialogsum.modeling import ModelManifest, TorchModel, save_model
from dialogsum.training.distributed import is_main_process
from dialogsum.training.planning import RunPlan
from dialogsum.training.trainer import TrainResult, train


def run_finetune(
    plan: RunPlan,
    *,
    output_dir: Path | None,
    generation: Mapping[str, Any],
    serve: Callable[[TorchModel], Predictor],
    callbacks: Sequence[Any] = (),
) -> tuple[Predictor, TrainResult]:
    """Train ``plan`` and return the tuned model as a predictor, with the run's metrics.

    ``generation`` is the base model's decoding defaults; the tuned model keeps them.
    ``serve`` makes the predictor of the tuned model (the registry's torch backend). With
    ``output_dir``, checkpoints go to ``output_dir/checkpoints`` and the model, metrics, config
    and report are written beside them. ``callbacks`` are more Trainer callbacks (a sweep's
    rung scores). In a distributed launch every process trains, and only
    rank 0 scores the model and writes the run folder.
    """
    from dialogsum.training.budget import record_budget, resumed_step, start_budget
    from dialogsum.training.callbacks import RecordRun
    from dialogsum.training.checkpoints import (
        check_resume_within,
        check_resumed_run,
        resume_point,
    )

    started = time.perf_counter()
    # A run without a run folder still needs a folder for the Trainer; a run with one has no
    # scratch to leave behind.
    with (
        temporary_folder("dialogsum-run-")
        if output_dir is None
        else nullcontext(output_dir / "checkpoints")
    ) as checkpoint_dir:
        options = plan.training
        if output_dir is None:
            options = options.model_copy(update={"save_strategy": "no"})
        resuming = options.resume_from_checkpoint is not False
        trained_with = plan.trained_with() if output_dir is not None else None
        if trained_with is not None and resuming:
            check_resumed_run(checkpoint_dir, trained_with)  # before any checkpoint is read
        # Resolved once (damaged checkpoints are checked by reading them whole): the budget's
        # projection and the Trainer continue from the same step.
        resume = resume_point(checkpoint_dir, options.resume_from_checkpoint)
        if resume is not None:
            check_resume_within(
                resume, resumed_step(resume), plan.total_steps(), epochs=not options.max_steps
            )
        budget = start_budget(plan, resume)  # refuses a run projected over its budget
        extra: list[Any] = [*callbacks, *([budget] if budget is not None else [])]
        if trained_with is not None and not resuming:
            # Written with the first checkpoint, not before: until then the run folder stays as
            # the other processes of a distributed launch expect to find it.
            extra.append(RecordRun(checkpoint_dir, trained_with))
        result = train(
            plan.module,
            plan.tokenizer,
            plan.train_features,
            plan.eval_features,
            options,
            learning_rate=plan.learning_rate,
            checkpoint_dir=checkpoint_dir,
            max_target_length=plan.data.max_target_length,
            callbacks=extra or None,
            resume=resume,
        )
    plan.module.eval()  # the Trainer leaves the model in training mode (dropout on)
    if budget is not None:
        record_budget(budget, result.metrics, checkpoint_dir if output_dir is not None else None)
    result.metrics["truncation"] = plan.truncation.as_dict()
    result.metrics["wall_seconds"] = time.perf_counter() - started
    manifest = ModelManifest(
        method=plan.method,
        base_model=plan.base_name,
        peft=plan.is_peft,
        data=plan.data,
        generation=dict(generation),
    )
    tuned = TorchModel(plan.module, plan.tokenizer, manifest)
    predictor = serve(tuned)
    if not is_main_process():
        # The other processes of a distributed launch hold the same weights; scoring and
        # saving once is enough. Generation on rank 0 calls no collective, so they need not
        # wait for it, and they return without ROUGE scores.
        return predictor, result
    # A run stopped by its budget is not scored: scoring would spend past the budget.
    stopped = "stopped" in result.metrics
    if plan.eval_examples and plan.training.eval_strategy != "no" and not stopped:
        generation_options = parse_generation({}, manifest.generation)
        scores = evaluate_summaries(
            lambda dialogues: predictor.summarize(dialogues, generation_options),
            plan.eval_examples,
        )
        result.metrics.update({f"eval_{key}": value for key, value in scores.items()})
    if output_dir is not None:
        write_run_folder(output_dir, plan, tuned, result)
    return predictor, result


def write_run_folder(
    output_dir: Path, plan: RunPlan, tuned: TorchModel, result: TrainResult
) -> None:
    """Save the tuned model into ``output_dir/model`` and the run's records beside it."""
    from dialogsum.training.reports import write_run_report

    save_model(
        tuned.model,
        tuned.tokenizer,
        tuned.manifest,
        output_dir / "model",
        overwrite=True,
    )
    write_json(output_dir / "metrics.json", {**result.metrics, "log_history": result.log_history})
    write_json(output_dir / "train_config.json", plan.config())
    write_run_report(output_dir, plan, result)


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as indented JSON (values JSON cannot hold become strings)."""
    write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
    logger.info("wrote %s", path)
