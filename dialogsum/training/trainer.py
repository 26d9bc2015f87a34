"""The generic training loop: transformers' Seq2SeqTrainer around whatever a method prepared.

Using the Trainer (rather than a loop of our own) gives users what that ecosystem expects:
checkpoints and resume, logging integrations, and multi-GPU launch with ``torchrun`` or
``accelerate launch``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from dialogsum.errors import ConfigError, MissingDependencyError, install_command, logger
from dialogsum.training.options import LOGGING_STEPS, TrainingOptions


@dataclass
class TrainResult:
    """What a training run produced, besides the trained module."""

    metrics: dict[str, Any]
    log_history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def losses(self) -> list[float]:
        """Training losses in logging order."""
        return [entry["loss"] for entry in self.log_history if "loss" in entry]


def use_bf16(precision: str) -> bool:
    """Whether to train in bf16 for ``precision``."""
    import torch

    if precision == "bf16":
        return True
    return bool(
        precision == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    )


def optimizer_override(options: TrainingOptions, learning_rate: float) -> Any:
    """The (class, kwargs) pair for an optimizer the Trainer's ``optim`` names cannot express.

    T5 folds attention's 1/sqrt(d_kv) into the initial query weights, so a from-scratch T5 has
    weights whose scales differ by 10x. An optimizer that moves every weight by about the learning
    rate (AdamW, plain Adafactor) rewrites the small ones first; scaling each update by the
    weight's RMS (``scale_parameter``) keeps the relative change even, as T5's pre-training did.
    """
    if options.optimizer != "adafactor_scaled":
        return None
    from transformers.optimization import Adafactor

    kwargs = {
        "lr": learning_rate,
        "scale_parameter": True,
        "relative_step": False,
        "warmup_init": False,
    }
    return Adafactor, kwargs


def train(
    module: Any,
    tokenizer: Any,
    train_features: list[dict[str, list[int]]],
    eval_features: list[dict[str, list[int]]] | None,
    options: TrainingOptions,
    *,
    learning_rate: float,
    checkpoint_dir: Path,
    max_target_length: int,
    callbacks: list[Any] | None = None,
    resume: Path | Literal["options"] | None = "options",
) -> TrainResult:
    """Train ``module`` with Seq2SeqTrainer; checkpoints go to ``checkpoint_dir``.

    ``resume`` is the checkpoint to continue from, when the caller has already resolved it
    (None: start fresh); by default it is resolved here from ``options``.
    """
    import torch
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from dialogsum.adapters import base_of
    from dialogsum.training.callbacks import LogToLogger, QuietProgress, RunTotals
    from dialogsum.training.checkpoints import resume_point
    from dialogsum.training.distributed import cpu_only, world_size
    from dialogsum.training.features import IGNORE_INDEX
    from dialogsum.training.global_batches import GlobalBatchTrainer, token_mean_loss

    check_reporting(options.report_to)
    if resume == "options":
        resume = resume_point(checkpoint_dir, options.resume_from_checkpoint)
    evaluating = bool(eval_features) and options.eval_strategy != "no"
    on_cpu = cpu_only()
    args = Seq2SeqTrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps or -1,
        learning_rate=learning_rate,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.eval_batch_size or options.batch_size,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        # adafactor_scaled is transformers' Adafactor with other settings, passed below.
        optim="adafactor" if options.optimizer == "adafactor_scaled" else options.optimizer,
        warmup_ratio=options.warmup_ratio,
        weight_decay=options.weight_decay,
        label_smoothing_factor=options.label_smoothing,
        lr_scheduler_type=options.lr_scheduler,
        bf16=use_bf16(options.precision),
        seed=options.seed,
        # plan_run resolves an unset interval from the run's length; a direct caller gets 10.
        logging_steps=options.logging_steps or LOGGING_STEPS,
        logging_first_step=True,
        save_strategy=options.save_strategy,
        save_steps=options.save_steps,
        save_total_limit=options.save_total_limit,
        eval_strategy=options.eval_strategy if evaluating else "no",
        eval_steps=options.eval_steps,
        gradient_checkpointing=options.gradient_checkpointing,
        report_to=options.report_to or "none",
        disable_tqdm=not options.progress,
        # Batches of similar length waste little padding; inputs are padded per batch only.
        # (Training batches are grouped by GlobalBatchTrainer; this groups evaluation's.)
        group_by_length=True,
        # Evaluation-time generation must not stop at transformers' default of 20 tokens.
        generation_max_length=max_target_length,
        generation_num_beams=1,
        predict_with_generate=False,
        # Our features are plain dicts; PEFT wrappers hide forward()'s signature from the Trainer.
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_pin_memory=torch.cuda.is_available(),
        # Without use_cpu, accelerate treats a torchrun launch on a machine without a GPU as
        # N unrelated processes, each training alone; gloo is torch's CPU collective backend.
        use_cpu=on_cpu,
        ddp_backend="gloo" if on_cpu and world_size() > 1 else None,
    )
    collator = DataCollatorForSeq2Seq(
        tokenizer, model=base_of(module), label_pad_token_id=IGNORE_INDEX, padding="longest"
    )
    trainer = GlobalBatchTrainer(
        model=module,
        args=args,
        train_dataset=train_features,
        eval_dataset=eval_features if evaluating else None,
        data_collator=collator,
        processing_class=tokenizer,
        # The same loss whether a global batch is trained by one process or several.
        compute_loss_func=partial(token_mean_loss, label_smoothing=options.label_smoothing),
    )
    # Seq2SeqTrainer does not take optimizer_cls_and_kwargs; Trainer.create_optimizer reads it.
    trainer.optimizer_cls_and_kwargs = optimizer_override(options, learning_rate)
    # Training logs go to the 'dialogsum' logger (stderr in the CLI), not to stdout, where
    # commands print their results.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if options.progress:
        trainer.add_callback(QuietProgress())
    trainer.add_callback(LogToLogger())
    totals = RunTotals(trainer, previous_loss_sum(resume))
    trainer.add_callback(totals)
    for callback in callbacks or []:
        trainer.add_callback(callback)
    try:
        with warnings.catch_warnings():
            # Rotating checkpoints, transformers warns that file times may be unreliable "on
            # this filesystem" and orders them by step, which is what it should do anyway:
            # nothing for the user to act on.
            warnings.filterwarnings("ignore", "mtime may not be reliable", UserWarning)
            output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except KeyboardInterrupt:
        interrupted(checkpoint_dir, trainer.state.global_step)
        raise
    metrics = dict(output.metrics)
    metrics["global_step"] = output.global_step
    if resume is not None and output.global_step:
        # The Trainer's own figure divides only the losses since the resume by every step.
        metrics["train_loss"] = totals.total() / output.global_step
    evaluations = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    if evaluations:
        metrics["eval_loss"] = evaluations[-1]["eval_loss"]
    return TrainResult(metrics=metrics, log_history=list(trainer.state.log_history))


def check_reporting(report_to: list[str]) -> None:
    """Fail before training when a ``report_to`` integration is unknown or not installed."""
    from transformers.integrations import integration_utils

    known = integration_utils.INTEGRATION_TO_CALLBACK
    for name in report_to:
        if name in ("none", "all"):
            continue
        if name not in known:
            raise ConfigError(
                f"Invalid options for training: report_to {name!r} is not an integration "
                f"transformers knows; use one of {', '.join(sorted(known))}, or 'none'."
            )
    if "tensorboard" in report_to and not integration_utils.is_tensorboard_available():
        raise MissingDependencyError(
            f"report_to tensorboard needs the tensorboard package: "
            f"{install_command('tensorboard')}.",
            extra="tensorboard",
            missing="tensorboard",
        )
    available = set(integration_utils.get_available_reporting_integrations())
    missing = sorted(set(report_to) - available - {"none", "all", "tensorboard"})
    if missing:
        raise MissingDependencyError(
            f"report_to {', '.join(missing)} needs that package installed: "
            f"pip install {' '.join(missing)}.",
            extra=None,
            missing=missing[0],
        )


def previous_loss_sum(checkpoint: Path | None) -> float:
    """The loss summed before ``checkpoint`` (0 when starting fresh or when it was not recorded)."""
    from dialogsum.training.checkpoints import STATE_FILE

    if checkpoint is None or not (checkpoint / STATE_FILE).is_file():
        return 0.0
    return float(json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))["loss_sum"])


def interrupted(checkpoint_dir: Path, step: int) -> None:
    """Tell the user, on Ctrl-C, where the run stopped and how to continue it."""
    from dialogsum.training.checkpoints import checkpoints

    saved = checkpoints(checkpoint_dir)
    if saved:
        logger.warning(
            "interrupted at step %d; the newest checkpoint is %s. Continue the run with "
            "resume_from_checkpoint=True (CLI: --resume-from-checkpoint).",
            step,
            saved[-1],
        )
    else:
        logger.warning("interrupted at step %d, before any checkpoint was saved.", step)
