"""Planning a fine-tuning run (validation and preparation) and estimating its cost.

``finetune`` and ``estimate`` share :func:`plan_run`, so an estimate measures exactly the run
that ``finetune`` would start: same method, data, lengths and batch settings.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from dialogsum.data import DataOptions, DataSource, Example, load_examples
from dialogsum.errors import ConfigError, DialogsumError, PluginError
from dialogsum.features import TruncationReport
from dialogsum.interfaces import FinetuneMethod
from dialogsum.registry import get_registry, validate_options
from dialogsum.training import TrainingOptions

if TYPE_CHECKING:
    from dialogsum.summarizer import Summarizer


def parse_training(training: Mapping[str, Any] | TrainingOptions | None) -> TrainingOptions:
    """Validate training options, naming the bad field."""
    result = validate_options("training", TrainingOptions, training)
    assert isinstance(result, TrainingOptions)
    return result


def parse_data(data: Mapping[str, Any] | DataOptions | None) -> DataOptions:
    """Validate data options (prompt, lengths), naming the bad field."""
    result = validate_options("data", DataOptions, data)
    assert isinstance(result, DataOptions)
    return result


@dataclass
class RunPlan:
    """Everything a training run needs, validated and prepared."""

    method: str
    method_options: BaseModel
    training: TrainingOptions
    data: DataOptions
    module: Any
    tokenizer: Any
    is_peft: bool
    base_name: str | None
    learning_rate: float
    train_description: str
    eval_description: str | None
    train_features: list[dict[str, list[int]]]
    truncation: TruncationReport
    eval_examples: list[Example] | None
    eval_features: list[dict[str, list[int]]] | None

    def config(self) -> dict[str, Any]:
        """The validated configuration, as written to ``train_config.json``."""
        return {
            "method": self.method,
            "options": self.method_options.model_dump(),
            "training": self.training.model_dump(),
            "data": self.data.model_dump(),
            "base_model": self.base_name,
            "train_data": self.train_description,
            "learning_rate": self.learning_rate,
        }

    def total_steps(self) -> int:
        """Optimizer steps the run will take (what the Trainer will count)."""
        if self.training.max_steps:
            return self.training.max_steps
        world = int(os.environ.get("WORLD_SIZE", "1"))
        batches = math.ceil(len(self.train_features) / (self.training.batch_size * world))
        # The Trainer rounds a partial accumulation at the end of an epoch up to a step.
        per_epoch = max(1, math.ceil(batches / self.training.gradient_accumulation_steps))
        return math.ceil(self.training.epochs * per_epoch)


def describe_source(source: DataSource) -> str:
    """A short, human-readable name for a data source (for configs and model cards)."""
    if isinstance(source, (str, Path)):
        return str(source)
    return f"{len(source)} in-memory examples"


def plan_run(
    summarizer: Summarizer,
    train: DataSource,
    method: str,
    options: Mapping[str, Any] | BaseModel | None,
    eval_data: DataSource | None,
    training: Mapping[str, Any] | TrainingOptions | None,
    data: Mapping[str, Any] | DataOptions | None,
) -> RunPlan:
    """Validate every input, load and tokenize the data and prepare a copy of the model."""
    from dialogsum.features import tokenize_examples

    # Everything the user gave is validated before any work starts.
    registry = get_registry(summarizer._plugins)
    implementation = registry.method(method)
    method_options = registry.method_options(method, options)
    training_options = parse_training(training)
    data_options = parse_data(data) if data is not None else summarizer.manifest.data
    current = summarizer._torch("finetune")
    if summarizer.manifest.peft:
        raise ConfigError(
            f"This model is a '{summarizer.method}' adapter; fine-tuning an adapter again is not "
            f"supported. Fine-tune its base model ('{summarizer.manifest.base_model}') instead."
        )
    train_examples = load_examples(train, "train")
    eval_examples = load_examples(eval_data, "validation") if eval_data is not None else None

    model = copy.deepcopy(current.model)  # the original Summarizer stays as it was
    base_name = summarizer.source
    if base_name is not None:
        model.config._name_or_path = base_name  # what peft records as the adapter's base
    source = registry.methods[method].source
    module = _prepare(implementation, source, model, method_options, current.tokenizer)
    is_peft = hasattr(module, "peft_config")
    if is_peft and base_name is None:
        raise ConfigError(
            "This model exists only in memory, so an adapter trained on it could not record "
            "its base model. Save it first (save(dir)), load it with from_pretrained(dir), and "
            "fine-tune that."
        )
    train_features, truncation = tokenize_examples(train_examples, current.tokenizer, data_options)
    eval_features = (
        tokenize_examples(eval_examples, current.tokenizer, data_options)[0]
        if eval_examples
        else None
    )
    return RunPlan(
        method=method,
        method_options=method_options,
        training=training_options,
        data=data_options,
        module=module,
        tokenizer=current.tokenizer,
        is_peft=is_peft,
        base_name=base_name or summarizer.manifest.base_model,
        learning_rate=training_options.learning_rate or implementation.default_learning_rate,
        train_description=describe_source(train),
        eval_description=None if eval_data is None else describe_source(eval_data),
        train_features=train_features,
        truncation=truncation,
        eval_examples=eval_examples,
        eval_features=eval_features,
    )


def _prepare(
    method: FinetuneMethod, source: str, model: Any, options: BaseModel, tokenizer: Any
) -> Any:
    accepts_tokenizer = "tokenizer" in inspect.signature(method.prepare).parameters
    kwargs = {"tokenizer": tokenizer} if accepts_tokenizer else {}
    try:
        return method.prepare(model, options, **kwargs)
    except DialogsumError:
        raise
    except Exception as exc:
        raise PluginError(
            f"Method '{method.name}' ({source}) failed to prepare the model: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


@dataclass(frozen=True)
class Estimate:
    """A projection of a run's wall time (and price) from a few measured steps."""

    measured_steps: int
    seconds_per_step: float
    total_steps: int
    examples: int
    hardware: str
    hourly_cost: float | None = None
    #: 1-minute load average when measuring started (other work skews the projection).
    load_before: float | None = None

    @property
    def seconds(self) -> float:
        """Projected wall time of the training steps."""
        return self.seconds_per_step * self.total_steps

    @property
    def cost(self) -> float | None:
        """Projected price at ``hourly_cost`` per hour, if one was given."""
        return None if self.hourly_cost is None else self.seconds / 3600 * self.hourly_cost

    def as_dict(self) -> dict[str, Any]:
        """The estimate as plain values (for ``--json``)."""
        return {
            "measured_steps": self.measured_steps,
            "seconds_per_step": self.seconds_per_step,
            "total_steps": self.total_steps,
            "examples": self.examples,
            "projected_seconds": self.seconds,
            "hourly_cost": self.hourly_cost,
            "projected_cost": self.cost,
            "hardware": self.hardware,
            "load_before": self.load_before,
        }

    def message(self) -> str:
        """One paragraph for the user, before they spend the time."""
        text = (
            f"Measured {self.seconds_per_step:.2f} s per step over {self.measured_steps} steps on "
            f"{self.hardware}. The run is {self.total_steps:,} steps ({self.examples:,} training "
            f"pairs): about {format_duration(self.seconds)} of training"
        )
        if self.cost is not None:
            text += f", costing about {self.cost:,.2f} at {self.hourly_cost:,.2f} per hour"
        text += " (evaluation and saving not included)."
        cores = os.cpu_count() or 1
        if self.load_before is not None and self.load_before >= 0.5 * cores:
            text += (
                f" The machine was already busy when measuring (load average "
                f"{self.load_before:.1f} on {cores} cores): other work slows training steps, so "
                f"this projection is likely too long; measure again on an idle machine."
            )
        return text


def format_duration(seconds: float) -> str:
    """``5412`` -> ``1 h 30 min``; short durations in minutes or seconds."""
    if seconds >= 3600:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours} h {rest} min"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def estimate_run(plan: RunPlan, *, steps: int = 5) -> Estimate:
    """Train ``steps`` (+1 warm-up) real steps of ``plan`` and project the whole run."""
    from transformers import TrainerCallback

    from dialogsum.reports import hardware_description
    from dialogsum.training import train

    if steps < 1:
        raise ConfigError(f"An estimate needs at least one measured step, got steps={steps}.")
    durations: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            durations.append(time.perf_counter() - self.started)

    options = plan.training.model_copy(
        update={
            "max_steps": steps + 1,
            "save_strategy": "no",
            "eval_strategy": "no",
            "resume_from_checkpoint": False,
            "report_to": [],
        }
    )
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="dialogsum-estimate-") as scratch:
        train(
            plan.module,
            plan.tokenizer,
            plan.train_features,
            None,
            options,
            learning_rate=plan.learning_rate,
            checkpoint_dir=Path(scratch),
            max_target_length=plan.data.max_target_length,
            callbacks=[StepTimer()],
        )
    measured = durations[1:] or durations  # the first step pays for warm-up
    return Estimate(
        measured_steps=len(measured),
        seconds_per_step=statistics.median(measured),
        total_steps=plan.total_steps(),
        examples=len(plan.train_features),
        hardware=hardware_description(),
        hourly_cost=plan.training.hourly_cost,
        load_before=load_before,
    )
