"""The generic training loop: transformers' Seq2SeqTrainer around whatever a method prepared.

Using the Trainer (rather than a loop of our own) gives users what that ecosystem expects:
checkpoints and resume, logging integrations, and multi-GPU launch with ``torchrun`` or
``accelerate launch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dialogsum.errors import ConfigError

FP16_REFUSAL = (
    "fp16 is refused for T5 models: T5's activations overflow float16's range, so training "
    "diverges to NaN. Use precision='bf16' on a GPU that supports it (Ampere or newer), or 'fp32'."
)


class TrainingOptions(BaseModel):
    """Hyper-parameters and run settings of ``finetune``; the flags of ``dialogsum train``."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(3.0, gt=0, description="Passes over the training data.")
    max_steps: int | None = Field(
        None, gt=0, description="Stop after this many steps (overrides epochs)."
    )
    learning_rate: float | None = Field(None, gt=0, description="Default: the method's own.")
    batch_size: int = Field(8, gt=0, description="Examples per device per step.")
    eval_batch_size: int | None = Field(None, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    optimizer: Literal["adamw_torch", "adafactor", "adafactor_scaled", "sgd"] = Field(
        "adamw_torch",
        description=(
            "adafactor: updates of learning_rate's absolute size (fine-tuning). adafactor_scaled: "
            "updates scaled by each weight's RMS, as in T5's pre-training; use it to train a T5 "
            "from scratch, whose initial weights differ in scale by 10x."
        ),
    )
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    lr_scheduler: Literal[
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
    ] = "linear"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on a CUDA GPU that supports it, else fp32."
    )
    seed: int = 42
    logging_steps: int = Field(10, gt=0)
    save_strategy: Literal["no", "epoch", "steps"] = "epoch"
    save_steps: int = Field(500, gt=0)
    save_total_limit: int | None = Field(2, gt=0)
    eval_strategy: Literal["no", "epoch", "steps"] = "epoch"
    eval_steps: int | None = Field(None, gt=0)
    gradient_checkpointing: bool = False
    resume_from_checkpoint: bool | str = Field(
        False, description="True: the newest checkpoint in the output folder; or a checkpoint path."
    )
    report_to: list[str] = Field(default_factory=list, description="e.g. ['tensorboard'].")
    progress: bool = Field(True, description="Show progress bars.")
    hourly_cost: float | None = Field(
        None, ge=0, description="Price of this machine per hour: reports and estimates show cost."
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        # `--report-to tensorboard` gives one string; a list is what the Trainer takes.
        return [value] if isinstance(value, str) else value

    @field_validator("precision")
    @classmethod
    def _no_fp16(cls, value: str) -> str:
        if value == "fp16":
            raise ValueError(FP16_REFUSAL)
        return value


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
) -> TrainResult:
    """Train ``module`` with Seq2SeqTrainer; checkpoints go to ``checkpoint_dir``."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from dialogsum.callbacks import LogToLogger, QuietProgress
    from dialogsum.features import IGNORE_INDEX

    evaluating = bool(eval_features) and options.eval_strategy != "no"
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
        logging_steps=options.logging_steps,
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
        group_by_length=True,
        # Evaluation-time generation must not stop at transformers' default of 20 tokens.
        generation_max_length=max_target_length,
        generation_num_beams=1,
        predict_with_generate=False,
        # Our features are plain dicts; PEFT wrappers hide forward()'s signature from the Trainer.
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    base = module.get_base_model() if hasattr(module, "get_base_model") else module
    collator = DataCollatorForSeq2Seq(
        tokenizer, model=base, label_pad_token_id=IGNORE_INDEX, padding="longest"
    )
    trainer = Seq2SeqTrainer(
        model=module,
        args=args,
        train_dataset=train_features,
        eval_dataset=eval_features if evaluating else None,
        data_collator=collator,
        processing_class=tokenizer,
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
    for callback in callbacks or []:
        trainer.add_callback(callback)
    try:
        output = trainer.train(resume_from_checkpoint=options.resume_from_checkpoint or None)
    except ValueError as exc:
        if "checkpoint" in str(exc).lower():
            raise ConfigError(
                f"Cannot resume: {exc}. Checkpoints are looked for in {checkpoint_dir}; pass a "
                f"checkpoint folder as resume_from_checkpoint, or start without resuming."
            ) from exc
        raise
    metrics = dict(output.metrics)
    evaluations = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    if evaluations:
        metrics["eval_loss"] = evaluations[-1]["eval_loss"]
    return TrainResult(metrics=metrics, log_history=list(trainer.state.log_history))


def is_main_process() -> bool:
    """False on every process but rank 0 of a distributed launch."""
    import os

    return os.environ.get("RANK", "0") == "0"
