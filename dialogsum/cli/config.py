"""Command configurations: the pydantic models behind ``dialogsum train|evaluate|summarize``.

A YAML or JSON file given with ``--config`` mirrors the flags (``--max-steps 10`` is
``training: {max_steps: 10}`` in a file) and is validated by the same models; flags override
the file.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dialogsum.data import DataOptions
from dialogsum.errors import ConfigError
from dialogsum.generation import GenerationOptions
from dialogsum.modeling import DEFAULT_MODEL
from dialogsum.training.options import TrainingOptions
from dialogsum.validation import format_validation_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainConfig(_Strict):
    """``dialogsum train``: what to tune, on what, and where the run goes."""

    model: str = Field(DEFAULT_MODEL, description="Hub id or folder of the model to tune.")
    base_model: str | None = Field(None, description="Local copy of an adapter's base model.")
    train: str = Field(description="Training data: file, folder or hub id.")
    eval: str | None = Field(None, description="Validation data, scored with ROUGE after training.")
    method: str = "lora"
    options: dict[str, Any] = Field(default_factory=dict, description="The method's options.")
    output_dir: str = Field(description="Run folder: checkpoints/, model/, metrics.json.")
    overwrite: bool = False
    training: TrainingOptions = Field(default_factory=TrainingOptions)
    data: DataOptions | None = None


class EvaluateConfig(_Strict):
    """``dialogsum evaluate``: a model's ROUGE on a data set."""

    model: str = DEFAULT_MODEL
    base_model: str | None = None
    data: str = Field(description="Data with references: file, folder or hub id.")
    split: str = "test"
    backend: str = "torch"
    backend_options: dict[str, Any] = Field(default_factory=dict)
    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    predictions: str | None = Field(None, description="Write predictions (JSON lines) here.")


class SummarizeConfig(_Strict):
    """``dialogsum summarize``: JSON lines of dialogues in, JSON lines of summaries out."""

    model: str = DEFAULT_MODEL
    base_model: str | None = None
    input: str = "-"
    output: str = "-"
    backend: str = "torch"
    backend_options: dict[str, Any] = Field(default_factory=dict)
    generation: GenerationOptions = Field(default_factory=GenerationOptions)


def read_config_file(path: str) -> dict[str, Any]:
    """Parse a YAML or JSON config file into a mapping."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"Config file {file} does not exist.")
    text = file.read_text(encoding="utf-8")
    try:
        loaded = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if file.suffix == ".json" else "YAML"
        raise ConfigError(f"Config file {file} is not valid {kind}: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"Config file {file} must hold a mapping of settings, got {type(loaded).__name__}."
        )
    return loaded


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into ``base`` (nested mappings merge, other values replace)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_config(model: type[BaseModel], file: str | None, flags: Mapping[str, Any]) -> Any:
    """Validate file settings overridden by flags; errors name the field and the file."""
    settings = merge(read_config_file(file) if file else {}, flags)
    try:
        return model.model_validate(settings)
    except ValidationError as exc:
        where = f" (config file {file} and flags)" if file else ""
        raise ConfigError(f"Invalid settings{where}: {format_validation_error(exc)}.") from None


def parse_value(text: str) -> Any:
    """A flag value as YAML (``3``, ``0.5``, ``true``, ``[q, v]``), else the plain string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_key_values(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """``["r=16", "target_modules=[q,v]"]`` -> ``{"r": 16, "target_modules": ["q", "v"]}``."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} takes KEY=VALUE, got {pair!r}.")
        result[key.strip()] = parse_value(value)
    return result


def add_model_flags(parser: argparse.ArgumentParser, model: type[BaseModel], group: str) -> None:
    """Add a ``--field-name`` flag per field of ``model``, landing in ``dest=group.field``."""
    section = parser.add_argument_group(f"{group} options")
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            section.add_argument(
                flag,
                dest=f"{group}.{name}",
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=field.description,
            )
        else:
            # Text fields stay text: a prompt such as "{dialogue}" is not YAML to parse.
            textual = field.annotation in (str, str | None)
            section.add_argument(
                flag,
                dest=f"{group}.{name}",
                type=str if textual else parse_value,
                default=argparse.SUPPRESS,
                metavar=name.upper(),
                help=field.description,
            )


#: Flags that steer the command itself and are not settings of the config models.
COMMAND_ONLY_FLAGS = ("command", "handler", "config", "json", "estimate", "estimate_steps")


def flags_to_settings(namespace: argparse.Namespace) -> dict[str, Any]:
    """Turn parsed flags (``dest`` like ``training.max_steps``) into a nested mapping."""
    settings: dict[str, Any] = {}
    for dest, value in vars(namespace).items():
        if dest in COMMAND_ONLY_FLAGS or value is None:
            continue
        if dest == "option":
            settings["options"] = parse_key_values(value, "--option")
            continue
        if dest == "backend_option":
            settings["backend_options"] = parse_key_values(value, "--backend-option")
            continue
        parts = dest.split(".")
        node = settings
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return settings
