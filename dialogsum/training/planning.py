"""Planning a fine-tuning run: every input validated, the data tokenized, the model prepared.

``finetune`` and ``estimate`` share :func:`plan_run`, so an estimate measures exactly the run
that ``finetune`` would start: same method, data, lengths and batch settings. The plan takes
explicit arguments (model, tokenizer, manifest, registry), never a Summarizer.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dialogsum.adapters import is_peft
from dialogsum.data import DataOptions, DataProvenance, DataSource, Example, load_examples
from dialogsum.errors import ConfigError, DialogsumError, PluginError
from dialogsum.interfaces import FinetuneMethod
from dialogsum.modeling import ModelManifest
from dialogsum.registry import Registry
from dialogsum.training.features import TruncationReport, tokenize_examples
from dialogsum.training.options import TrainingOptions, default_logging_steps, parse_training
from dialogsum.validation import validate_options


def parse_data(data: Mapping[str, Any] | BaseModel | None) -> DataOptions:
    """Validate data options (prompt, lengths), naming the bad field."""
    return validate_options("data", DataOptions, data)


@dataclass
class RunPlan:
    """Everything a training run needs, validated and prepared."""

    method: str
    method_options: BaseModel
    #: The run's hyper-parameters; ``learning_rate`` resolved (the user's, else the method's).
    training: TrainingOptions
    data: DataOptions
    module: Any
    tokenizer: Any
    is_peft: bool
    base_name: str | None
    #: Where the training data came from: path or hub id, split, rows and content hash.
    train_data: DataProvenance
    #: Where the validation data came from, when there is any.
    eval_data: DataProvenance | None
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
            "train_data": self.train_data.as_dict(),
            "eval_data": None if self.eval_data is None else self.eval_data.as_dict(),
        }

    @property
    def learning_rate(self) -> float:
        """The run's learning rate: the one in :attr:`training`, resolved when planned."""
        rate = self.training.learning_rate
        assert rate is not None, "plan_run resolves the learning rate"
        return rate

    def trained_with(self) -> dict[str, Any]:
        """What decides the weights this run trains: a resume must match it (see
        :func:`dialogsum.training.checkpoints.check_resumed_run`)."""
        from dialogsum.training.checkpoints import RESUMABLE_CHANGES

        config = self.config()
        # Where the data was read from may change (a moved file, a copy); the digest of the
        # tokenized data below says what it holds. Validation data does not decide the weights.
        del config["train_data"], config["eval_data"]
        config["training"] = {
            key: value for key, value in config["training"].items() if key not in RESUMABLE_CHANGES
        }
        hasher = hashlib.sha256()
        for feature in self.train_features:  # one at a time: no copy of the whole data set
            hasher.update(json.dumps(feature, separators=(",", ":")).encode())
        digest = hasher.hexdigest()
        config["train_examples"] = len(self.train_features)
        config["train_digest"] = digest[:16]
        return config

    def total_steps(self) -> int:
        """Optimizer steps the run will take (what the Trainer will count)."""
        return total_steps(self.training, len(self.train_features))


def total_steps(training: TrainingOptions, examples: int) -> int:
    """Optimizer steps a run with ``training`` takes over ``examples`` training examples."""
    if training.max_steps:
        return training.max_steps
    world = int(os.environ.get("WORLD_SIZE", "1"))
    batches = math.ceil(examples / (training.batch_size * world))
    # The Trainer rounds a partial accumulation at the end of an epoch up to a step.
    per_epoch = max(1, math.ceil(batches / training.gradient_accumulation_steps))
    return math.ceil(training.epochs * per_epoch)


def validate_run(
    registry: Registry,
    method: str,
    options: Mapping[str, Any] | BaseModel | None,
    training: Mapping[str, Any] | TrainingOptions | None,
    data: Mapping[str, Any] | DataOptions | None,
    model_data: Callable[[], DataOptions],
) -> tuple[BaseModel, TrainingOptions, DataOptions]:
    """The method's options, the training options and the data options, validated once.

    A bad method name or option fails here, before anything of the model is read. Each data
    option left out is the model's own (``model_data()``: its prompt and lengths, from its
    manifest), even when others are given.
    """
    method_options = registry.method_options(method, options)
    training_options = parse_training(training)
    own = model_data().model_dump()
    return (
        method_options,
        training_options,
        validate_options("data", DataOptions, data, defaults=own),
    )


def plan_run(
    *,
    model: Any,
    tokenizer: Any,
    manifest: ModelManifest,
    source: str | None,
    registry: Registry,
    train: DataSource,
    method: str,
    method_options: BaseModel,
    training_options: TrainingOptions,
    data_options: DataOptions,
    eval_data: DataSource | None = None,
) -> RunPlan:
    """Load and tokenize the data and prepare a copy of ``model`` for a validated run.

    The options arrive validated (:func:`validate_run`, at the edge); ``manifest`` is the
    model's own record (its prompt, lengths and, for an adapter, its base); ``source`` is where
    the model was loaded from (recorded as an adapter's base), or None for a model that exists
    only in memory. ``model`` itself is never changed.
    """
    from dialogsum.training.distributed import check_sharding

    implementation = registry.method(method)
    # A launch that shards the parameters could not save what it trains: refused before work.
    check_sharding()
    if manifest.peft or is_peft(model):
        raise ConfigError(
            f"This model is a '{manifest.method}' adapter; fine-tuning an adapter again is not "
            f"supported. Fine-tune its base model ('{manifest.base_model}') instead."
        )
    train_examples = load_examples(train, "train")
    eval_examples = load_examples(eval_data, "validation") if eval_data is not None else None

    # Seed before the method prepares the model: adapters draw their initial weights from the
    # global RNG, and the Trainer only seeds it later, in its own constructor.
    from transformers import set_seed

    set_seed(training_options.seed)
    copied = copy.deepcopy(model)  # the caller's model stays as it was
    if source is not None:
        copied.config._name_or_path = source  # what peft records as the adapter's base
    module = _prepare(
        implementation, registry.methods[method].source, copied, method_options, tokenizer
    )
    peft = is_peft(module)
    if peft and source is None:
        raise ConfigError(
            "This model exists only in memory, so an adapter trained on it could not record "
            "its base model. Save it first (save(dir)), load it with from_pretrained(dir), and "
            "fine-tune that."
        )
    train_features, truncation = tokenize_examples(train_examples, tokenizer, data_options)
    eval_features = (
        tokenize_examples(eval_examples, tokenizer, data_options, "validation")[0]
        if eval_examples
        else None
    )
    plan = RunPlan(
        method=method,
        method_options=method_options,
        training=training_options.model_copy(
            update={
                "learning_rate": training_options.learning_rate
                or implementation.default_learning_rate
            }
        ),
        data=data_options,
        module=module,
        tokenizer=tokenizer,
        is_peft=peft,
        base_name=source or manifest.base_model,
        train_data=train_examples.provenance,
        eval_data=None if eval_examples is None else eval_examples.provenance,
        train_features=train_features,
        truncation=truncation,
        eval_examples=eval_examples,
        eval_features=eval_features,
    )
    if plan.training.logging_steps is None:  # from the run's length: a curve, not two points
        steps = default_logging_steps(plan.total_steps())
        plan.training = plan.training.model_copy(update={"logging_steps": steps})
    return plan


def _prepare(
    method: FinetuneMethod, source: str, model: Any, options: BaseModel, tokenizer: Any
) -> Any:
    try:
        prepared = method.prepare(model, options, tokenizer=tokenizer)
    except DialogsumError:
        raise
    except Exception as exc:
        raise PluginError(
            f"Method '{method.name}' ({source}) failed to prepare the model: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    _check_prepared(prepared, method.name, source)
    return prepared


def _check_prepared(module: Any, name: str, source: str) -> None:
    """A method's ``prepare`` must return the module to train, with something to train: the
    Trainer's and autograd's own errors for the usual slips name neither the method nor the fix."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise PluginError(
            f"Method '{name}' ({source}): prepare() returned {type(module).__name__}, not the "
            f"torch.nn.Module to train. Return the model (or the peft model wrapping it)."
        )
    if not any(parameter.requires_grad for parameter in module.parameters()):
        raise PluginError(
            f"Method '{name}' ({source}): prepare() left no parameter trainable "
            f"(requires_grad is False everywhere); unfreeze what the method trains."
        )
