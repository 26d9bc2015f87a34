"""Command configurations: the pydantic models behind every ``dialogsum`` command.

Every command takes its settings the same way: a YAML or JSON file given with ``--config``
mirrors the flags (``--max-steps 10`` is ``training: {max_steps: 10}`` in a file), flags
override the file, and one model per command validates the result, so a bad setting gets the
same error whichever way it came.
"""

from __future__ import annotations

import argparse
import json
import weakref
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dialogsum.data import DataOptions
from dialogsum.errors import ConfigError, ModelError
from dialogsum.generation import SAMPLING_CHECKED_WITH_BACKEND, GenerationOptions
from dialogsum.modeling import DEFAULT_MODEL
from dialogsum.sweep.options import SweepOptions
from dialogsum.training.options import TrainingOptions
from dialogsum.validation import format_validation_error, other_names

ConfigT = TypeVar("ConfigT", bound=BaseModel)

#: The exit status of a run or sweep its budget (--max-time, --max-cost) stopped: not an error,
#: not a finished run either, so ``dialogsum train ... && dialogsum export ...`` does not go on.
BUDGET_STOPPED = 3


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Serving(_Strict):
    """What serves a command's model: the settings behind :func:`add_serving_flags`."""

    model: str = DEFAULT_MODEL
    base_model: str | None = None
    backend: str | None = Field(None, description="Default: the one the model's manifest names.")
    backend_options: dict[str, Any] = Field(default_factory=dict)


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


class SweepConfig(_Strict):
    """``dialogsum sweep``: what to tune, the space to search, and how."""

    model: str = Field(DEFAULT_MODEL, description="Hub id or folder of the model to tune.")
    base_model: str | None = Field(None, description="Local copy of an adapter's base model.")
    train: str = Field(description="Training data: file, folder or hub id.")
    eval: str = Field(description="Validation data: trials are scored on it.")
    method: str = "lora"
    options: dict[str, Any] = Field(default_factory=dict, description="Fixed method options.")
    space: dict[str, Any] = Field(
        default_factory=dict, description="Settings to search: ranges or lists of choices."
    )
    output_dir: str = Field(description="Sweep folder: study, sweep.json, report, best/.")
    overwrite: bool = False
    training: TrainingOptions = Field(default_factory=TrainingOptions)
    data: DataOptions | None = None
    sweep: SweepOptions = Field(default_factory=SweepOptions)


class EvaluateConfig(_Serving):
    """``dialogsum evaluate``: a model's ROUGE on a data set."""

    data: str = Field(description="Data with references: file, folder or hub id.")
    split: str = "test"
    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    predictions: str | None = Field(None, description="Write predictions (JSON lines) here.")
    overwrite: bool = Field(False, description="Replace an existing predictions file.")
    progress: bool = Field(True, description="Show progress bars.")
    limit: int | None = Field(None, gt=0, description="Score only the first N dialogues.")


class SummarizeConfig(_Serving):
    """``dialogsum summarize``: JSON lines of dialogues in, JSON lines of summaries out."""

    input: str = "-"
    output: str = "-"
    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    overwrite: bool = Field(False, description="Replace an existing output file.")
    progress: bool = Field(True, description="Show progress bars.")


class ExportConfig(_Strict):
    """``dialogsum export``: a saved or tuned model to a self-contained folder a backend serves."""

    model: str = Field(description="Folder save() or train wrote (or a hub id).")
    base_model: str | None = Field(None, description="Local copy of an adapter's base model.")
    output: str = Field(description="Export folder to create.")
    backend: str = Field("onnxruntime", description="The backend that exports and serves it.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The backend's export options (--option KEY=VALUE)."
    )
    quantize: Literal["int8"] | None = Field(
        None, description="Shorthand for --option quantize=int8 (onnxruntime, ctranslate2)."
    )
    adapters: dict[str, str] = Field(
        default_factory=dict,
        description="Adapters served unmerged beside the model: name -> LoRA or prompt-tuning run.",
    )
    overwrite: bool = False
    progress: bool = Field(True, description="Show a progress bar over the export's stages.")

    def export_options(self) -> dict[str, Any]:
        """The backend's export options, ``--quantize`` included."""
        if self.quantize is None:
            return dict(self.options)
        if self.options.get("quantize", self.quantize) != self.quantize:
            raise ConfigError(
                f"--quantize {self.quantize} and --option quantize={self.options['quantize']} "
                f"disagree; give one of them."
            )
        return {**self.options, "quantize": self.quantize}


class CompareConfig(_Strict):
    """``dialogsum compare``: models side by side, with ROUGE each."""

    model: list[str] = Field(min_length=1, description="The models to compare.")
    base_model: str | None = Field(None, description="Local copy of adapters' base model.")
    data: str = Field(description="Data with references: file, folder or hub id.")
    split: str = "test"
    limit: int | None = Field(None, gt=0, description="Score only the first N dialogues.")
    show: int = Field(3, ge=0, description="Dialogues shown side by side.")
    output: str = Field("comparison", description="Writes OUTPUT.md and OUTPUT.html.")
    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    overwrite: bool = Field(False, description="Replace existing OUTPUT.md and OUTPUT.html.")
    progress: bool = Field(True, description="Show progress bars.")


class QuickstartConfig(_Strict):
    """``dialogsum quickstart``: the offline demo, end to end."""

    model: str = Field("dialogsum-tiny", description="Bundled name, folder or hub id.")
    data: str | None = Field(None, description="DialogSum folder or hub id (default: the sample).")
    output: str = Field("dialogsum-quickstart", description="Folder for the run.")
    overwrite: bool = False
    train_samples: int | None = Field(
        None, gt=0, description="Train dialogues for the LoRA tune (default: up to 400)."
    )
    test_samples: int | None = Field(
        None, gt=0, description="Test dialogues scored before and after (default: up to 40)."
    )
    epochs: float = Field(2.0, gt=0, description="Epochs of the LoRA tune.")
    show: int = Field(3, ge=0, description="Dialogues shown side by side.")


def read_config_file(path: str) -> dict[str, Any]:
    """Parse a YAML or JSON config file into a mapping."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise ConfigError(f"Config file {file} is a folder; give a YAML or JSON file.")
    if not file.is_file():
        raise ConfigError(f"Config file {file} does not exist.")
    try:
        text = file.read_text(encoding="utf-8-sig")  # a byte-order mark is fine
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Config file {file} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it "
            f"as UTF-8 (Windows PowerShell's '>' writes UTF-16)."
        ) from None
    try:
        loaded = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if file.suffix == ".json" else "YAML"
        raise ConfigError(f"Config file {file} is not valid {kind}: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"Config file {file} must hold a mapping of settings (YAML 'key: value' lines or a "
            f"JSON object), got {type(loaded).__name__}."
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


def _groups(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The nested option groups of a settings model: ``{"training": TrainingOptions, ...}``."""
    groups = {}
    for name, field in model.model_fields.items():
        for candidate in (field.annotation, *get_args(field.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                groups[name] = candidate
    return groups


def nest_flat_keys(model: type[BaseModel], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Accept a config file written like the flags: ``max_steps: 10`` (or ``max-steps``)
    goes where ``--max-steps`` goes, ``training: {max_steps: 10}``.

    A key that is neither a setting of ``model`` nor a field of exactly one of its groups is
    left where it is, for validation to report.
    """
    groups = _groups(model)
    nested: dict[str, Any] = {}
    for raw_key, value in settings.items():
        key = raw_key.replace("-", "_") if isinstance(raw_key, str) else raw_key
        if key in groups and isinstance(value, Mapping):
            continue  # a nested section: merged over the flat keys below
        if key in model.model_fields:
            nested[key] = value
            continue
        owners = [group for group, options in groups.items() if key in options.model_fields]
        if len(owners) == 1:
            section = nested.setdefault(owners[0], {})
            if isinstance(section, dict):
                section.setdefault(key, value)
                continue
        nested[raw_key] = value
    # A nested section in the file wins over a flat key for the same setting.
    for group in groups:
        if isinstance(settings.get(group), Mapping):
            nested[group] = merge(nested.get(group) or {}, settings[group])
    return nested


def _is_export(model: Any) -> bool:
    """Whether ``model`` names a local export folder (its manifest records an export)."""
    from dialogsum.modeling import local_manifest

    if not isinstance(model, str):
        return False
    try:
        manifest = local_manifest(model)
    except ModelError:  # a missing folder or broken manifest is reported when it loads
        return False
    return manifest is not None and manifest.export is not None


def build_config(
    model: type[ConfigT],
    file: str | None,
    flags: Mapping[str, Any],
    flag_names: Mapping[str, str] | None = None,
) -> ConfigT:
    """Validate file settings overridden by flags; errors name the field (with its flag, from
    ``flag_names``: dotted field -> ``--flag``) and the file."""
    from_file = nest_flat_keys(model, read_config_file(file)) if file else {}
    settings = merge(from_file, flags)
    # Sampling options given for an export are checked when its backend is loaded: "add
    # --do-sample" would be followed by "this backend cannot sample".
    context = {SAMPLING_CHECKED_WITH_BACKEND: True} if _is_export(settings.get("model")) else None
    try:
        return model.model_validate(settings, context=context)
    except ValidationError as exc:
        where = f" (config file {file} and flags)" if file else ""
        problems = format_validation_error(exc, model, flags=flag_names or None)
        raise ConfigError(f"Invalid settings{where}: {problems}.") from None


def load_settings(model: type[ConfigT], namespace: argparse.Namespace) -> ConfigT:
    """The command's settings: its ``--config`` file (if any) overridden by its flags."""
    parser = getattr(namespace, "command_parser", None)
    flag_names = {
        action.dest: action.option_strings[-1]
        for action in (parser._actions if parser is not None else [])
        if action.option_strings and action.dest not in ("help", "config")
    }
    return build_config(
        model, getattr(namespace, "config", None), flags_to_settings(namespace), flag_names
    )


def backend_options(config: Any, backend: str = "torch") -> dict[str, Any]:
    """A command's options for ``backend``: ``--backend-option`` values, plus ``--base-model``
    and ``--no-progress`` where that backend takes them (an export needs no base model)."""
    from dialogsum.registry import get_registry

    result = dict(getattr(config, "backend_options", None) or {})
    fields = get_registry().backend(backend).Options.model_fields
    if getattr(config, "base_model", None) is not None and "base_model" in fields:
        result.setdefault("base_model", config.base_model)
    if getattr(config, "progress", True) is False and "progress" in fields:
        result.setdefault("progress", False)
    return result


def load_summarizer(config: Any, model: str) -> Any:
    """Load ``model`` for a serving command: ``--backend``, else the one its manifest names,
    with that backend's options from the command (see :func:`backend_options`)."""
    from dialogsum.modeling import default_backend
    from dialogsum.summarizer import Summarizer

    given = getattr(config, "backend", None)
    backend = given or default_backend(model)
    # Only a backend asked for is passed: one chosen from the folder is from_pretrained's to
    # choose, and to explain when its options do not fit (a mistyped export folder).
    return Summarizer.from_pretrained(
        model, backend=given, backend_options=backend_options(config, backend)
    )


def add_output_flags(parser: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite`` (for ``what``) and ``--progress/--no-progress``."""
    keep = argparse.SUPPRESS
    parser.add_argument("--overwrite", action="store_true", default=keep, help=f"Replace {what}.")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=keep,
        help="Show progress bars (--no-progress: none).",
    )


def add_serving_flags(
    parser: argparse.ArgumentParser, config: type[BaseModel] | None = None
) -> None:
    """``--model``, ``--base-model``, ``--backend`` and ``--backend-option``: what serves
    (``config``, the command's settings model, gives ``--model`` its default in the help)."""
    keep = argparse.SUPPRESS  # unset flags must not override the config file
    field = config.model_fields.get("model") if config is not None else None
    default = f" Default: {field.default}." if field is not None and field.default else ""
    parser.add_argument(
        "--model",
        default=keep,
        help=f"Hub id, bundled name, saved folder or export folder.{default}",
    )
    parser.add_argument(
        "--base-model", dest="base_model", default=keep, help="Local copy of an adapter's base."
    )
    parser.add_argument(
        "--backend",
        default=keep,
        help="torch, onnxruntime or a plugin's; default: the one the model's manifest names.",
    )
    parser.add_argument(
        "--backend-option",
        dest="backend_option",
        action="append",
        metavar="KEY=VALUE",
        help="A backend option, e.g. threads=2.",
    )


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """``--config FILE``: the settings file every command takes."""
    parser.add_argument(
        "--config", help="YAML or JSON file mirroring these flags; flags override it."
    )


def parse_search(values: Sequence[str]) -> dict[str, Any]:
    """``--search KEY=SPEC`` flags -> ``{KEY: Dimension}`` (see :func:`parse_spec`)."""
    from dialogsum.sweep.space import parse_spec

    space: dict[str, Any] = {}
    for item in values:
        key, equals, spec = item.partition("=")
        if not equals or not key.strip() or not spec.strip():
            raise ConfigError(
                f"--search {item}: expected KEY=SPEC, e.g. --search learning_rate=1e-5..1e-2:log "
                f"or --search r=4,8,16."
            )
        space[key.strip()] = parse_spec(key.strip(), spec)
    return space


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


def parse_name_paths(pairs: Sequence[str], flag: str) -> dict[str, str]:
    """``["support=runs/support"]`` -> ``{"support": "runs/support"}``; a name given twice fails."""
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"{flag} takes NAME=PATH (e.g. support=runs/support), got {pair!r}.")
        if name.strip() in result:
            raise ConfigError(f"{flag} names {name.strip()!r} twice; give each adapter once.")
        result[name.strip()] = path.strip()
    return result


#: Per parser, ``{other name: flag}`` for the fields :func:`add_model_flags` added whose
#: ``OTHER_NAMES`` list the names other tools give them (``lr`` for ``--learning-rate``).
_OTHER_FLAGS: weakref.WeakKeyDictionary[argparse.ArgumentParser, dict[str, str]] = (
    weakref.WeakKeyDictionary()
)


def other_flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``{other name: flag}`` for ``parser``'s flags (see :data:`_OTHER_FLAGS`)."""
    return dict(_OTHER_FLAGS.get(parser, {}))


def add_model_flags(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    group: str,
    skip: Collection[str] = (),
) -> None:
    """Add a ``--field-name`` flag per field of ``model`` (but ``skip``), landing in
    ``dest=group.field``."""
    others = _OTHER_FLAGS.setdefault(parser, {})
    for other, name in other_names(model).items():
        if name not in skip:
            others.setdefault(other, "--" + name.replace("_", "-"))
    section = parser.add_argument_group(f"{group} options")
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        if field.annotation == (bool | str):
            # --resume-from-checkpoint alone means True; with a value, a checkpoint path.
            section.add_argument(
                flag,
                dest=f"{group}.{name}",
                nargs="?",
                const=True,
                type=parse_value,
                default=argparse.SUPPRESS,
                metavar="CHECKPOINT",
                help=field.description,
            )
        elif field.annotation is bool:
            section.add_argument(
                flag,
                dest=f"{group}.{name}",
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=field.description,
            )
        else:
            # Text fields stay text: a prompt such as "{dialogue}" is not YAML to parse.
            textual = field.annotation in (str, str | None) or _string_choices(field.annotation)
            section.add_argument(
                flag,
                dest=f"{group}.{name}",
                type=str if textual else parse_value,
                default=argparse.SUPPRESS,
                metavar=name.upper(),
                help=field.description,
            )


def _string_choices(annotation: Any) -> bool:
    # Literal["no", "epoch", "steps"]: the value stays text (YAML would read "no" as False).
    return get_origin(annotation) is Literal and all(
        isinstance(choice, str) for choice in get_args(annotation)
    )


#: Flags that steer the command itself and are not settings of the config models.
COMMAND_ONLY_FLAGS = (
    "command",
    "handler",
    "command_parser",
    "config",
    "json",
    "estimate",
    "estimate_steps",
)


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
        if dest == "search":  # sweep's --search KEY=SPEC, one per searched setting
            settings["space"] = parse_search(value)
            continue
        if dest == "adapter_pairs":  # export's --adapter NAME=PATH: paths stay text
            settings["adapters"] = parse_name_paths(value, "--adapter")
            continue
        parts = dest.split(".")
        node = settings
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return settings
