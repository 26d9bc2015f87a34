"""The options of a fine-tuning run: the fields of ``finetune(training=...)`` and the flags of
``dialogsum train``. Only pydantic is imported here, so reading them costs nothing."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialogsum.validation import OTHER_NAMES, validate_options

FP16_REFUSAL = (
    "fp16 is refused for T5 models: T5's activations overflow float16's range, so training "
    "diverges to NaN. Use precision='bf16' on a GPU that supports it (Ampere or newer), or 'fp32'."
)

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
DURATION_FORMS = "a number of seconds (5400) or a duration such as 90s, 45m, 2h or 1h30m"


def parse_duration(value: Any) -> float:
    """``"1h30m"`` -> ``5400.0``; a number is seconds. Raises ValueError naming the forms."""
    if isinstance(value, bool):  # bool is an int to Python, never a duration
        raise ValueError(f"expected {DURATION_FORMS}, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"expected {DURATION_FORMS}, got {value!r}")
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def check_cost_budget(max_cost: float | None, hourly_cost: float | None) -> None:
    """A cost budget is hours times a price: refuse one without the price (a ValueError, for
    pydantic to report with the field)."""
    if max_cost is not None and hourly_cost is None:
        raise ValueError(
            "max_cost needs hourly_cost: a cost budget is counted as hours run times "
            "hourly_cost. Set hourly_cost (CLI: --hourly-cost) to this machine's price per "
            "hour, or use max_time (CLI: --max-time) instead"
        )


class TrainingOptions(BaseModel):
    """Hyper-parameters and run settings of ``finetune``; the flags of ``dialogsum train``."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(
        3.0,
        gt=0,
        description="Passes over the training data.",
        json_schema_extra={OTHER_NAMES: ["num_train_epochs", "num_epochs"]},
    )
    max_steps: int | None = Field(
        None, gt=0, description="Stop after this many steps (overrides epochs)."
    )
    learning_rate: float | None = Field(
        None,
        gt=0,
        description="Default: the method's own.",
        json_schema_extra={OTHER_NAMES: ["lr"]},
    )
    batch_size: int = Field(
        8,
        gt=0,
        description="Examples per device per step.",
        json_schema_extra={OTHER_NAMES: ["per_device_train_batch_size", "train_batch_size"]},
    )
    eval_batch_size: int | None = Field(
        None,
        gt=0,
        description="Examples per device per evaluation step (default: batch_size).",
        json_schema_extra={OTHER_NAMES: ["per_device_eval_batch_size"]},
    )
    gradient_accumulation_steps: int = Field(
        1,
        gt=0,
        description="Batches whose gradients add up to one optimizer step.",
        json_schema_extra={OTHER_NAMES: ["grad_accum", "accumulation_steps"]},
    )
    optimizer: Literal["adamw_torch", "adafactor", "adafactor_scaled", "sgd"] = Field(
        "adamw_torch",
        description=(
            "adafactor: updates of learning_rate's absolute size (fine-tuning). adafactor_scaled: "
            "updates scaled by each weight's RMS, as in T5's pre-training; use it to train a T5 "
            "from scratch, whose initial weights differ in scale by 10x."
        ),
        json_schema_extra={OTHER_NAMES: ["optim"]},
    )
    warmup_ratio: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Share of the steps over which the rate rises from 0.",
        json_schema_extra={OTHER_NAMES: ["warmup"]},
    )
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay (AdamW).")
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Share of target probability spread over the vocabulary.",
        json_schema_extra={OTHER_NAMES: ["label_smoothing_factor"]},
    )
    lr_scheduler: Literal[
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
    ] = Field("linear", description="How the learning rate changes over the run.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on a CUDA GPU that supports it, else fp32."
    )
    seed: int = Field(42, description="Seeds adapter initialisation, dropout and data order.")
    logging_steps: int | None = Field(
        None,
        gt=0,
        description=(
            "Log the loss every this many steps (default: every 10, more often in a run of "
            "under 200 steps, so its loss curve has at least 20 points)."
        ),
    )
    save_strategy: Literal["no", "epoch", "steps"] = Field(
        "epoch", description="When to save a checkpoint (resume needs one)."
    )
    save_steps: int = Field(500, gt=0, description="With save_strategy steps: every N steps.")
    save_total_limit: int | None = Field(
        2, gt=0, description="Keep at most this many checkpoints (the newest)."
    )
    eval_strategy: Literal["no", "epoch", "steps"] = Field(
        "epoch", description="When to compute validation loss (with --eval data)."
    )
    eval_steps: int | None = Field(
        None, gt=0, description="With eval_strategy steps: every N steps."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory, slower."
    )
    resume_from_checkpoint: bool | str = Field(
        False, description="True: the newest checkpoint in the output folder; or a checkpoint path."
    )
    report_to: list[str] = Field(default_factory=list, description="e.g. ['tensorboard'].")
    progress: bool = Field(True, description="Show progress bars.")
    hourly_cost: float | None = Field(
        None, ge=0, description="Price of this machine per hour: reports and estimates show cost."
    )
    max_time: float | None = Field(
        None,
        gt=0,
        description=(
            "Time budget of this invocation, in seconds or as 90s, 45m, 2h, 1h30m: refused "
            "beforehand if projected over, stopped with a checkpoint when reached."
        ),
    )
    max_cost: float | None = Field(
        None,
        gt=0,
        description=(
            "Cost budget of this invocation (needs hourly_cost): refused beforehand if projected "
            "over, stopped with a checkpoint when reached."
        ),
    )
    force: bool = Field(
        False,
        description="Train even when the projection exceeds max_time or max_cost; the budget "
        "still stops the run when reached.",
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        # `--report-to tensorboard` gives one string; a list is what the Trainer takes.
        return [value] if isinstance(value, str) else value

    @field_validator("max_time", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _cost_needs_price(self) -> TrainingOptions:
        check_cost_budget(self.max_cost, self.hourly_cost)
        return self

    @field_validator("precision")
    @classmethod
    def _no_fp16(cls, value: str) -> str:
        if value == "fp16":
            raise ValueError(FP16_REFUSAL)
        return value


#: The default logging interval of a long run, in steps.
LOGGING_STEPS = 10
#: The fewest points a run's loss curve should have when the logging interval is left default.
CURVE_POINTS = 20


def default_logging_steps(total_steps: int) -> int:
    """Log every :data:`LOGGING_STEPS` steps, or often enough for :data:`CURVE_POINTS` points:
    every 10 steps of a 30-step run would draw the loss as three points."""
    return max(1, min(LOGGING_STEPS, total_steps // CURVE_POINTS))


def parse_training(training: Mapping[str, Any] | BaseModel | None) -> TrainingOptions:
    """Validate training options, naming the bad field."""
    return validate_options("training", TrainingOptions, training)
