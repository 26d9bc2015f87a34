"""The search space of a sweep: which settings vary, over what ranges or choices.

A space names training settings (``learning_rate``, ``max_steps``, ``batch_size``,
``warmup_ratio``, ...) and the method's own options (LoRA's ``r``, prompt tuning's
``num_virtual_tokens``, a plugin method's fields), each as a range or a list of choices. A
name may be written plainly or as ``training.NAME`` / ``options.NAME`` when a method option
shares its name with a training setting. The space is checked against the method's ``Options``
model and :class:`~dialogsum.training.options.TrainingOptions` before anything trains: every
bound and every choice must be a valid value of its field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from dialogsum.errors import ConfigError
from dialogsum.training.options import TrainingOptions
from dialogsum.validation import format_validation_error, likely_key, other_names

Section = Literal["training", "options"]

#: Training settings that steer the run rather than decide its weights, or that the sweep owns
#: (its budget, checkpoints and evaluation): searching them would mean nothing.
NOT_SEARCHABLE = frozenset(
    {
        "resume_from_checkpoint",
        "report_to",
        "progress",
        "hourly_cost",
        "max_time",
        "max_cost",
        "force",
        "save_strategy",
        "save_steps",
        "save_total_limit",
        "eval_strategy",
        "eval_steps",
        "eval_batch_size",
        "logging_steps",
        "seed",
    }
)

SPEC_FORMS = (
    "a range LOW..HIGH (add :log for a log scale, e.g. 1e-5..1e-2:log) or choices "
    "A,B,C (or a YAML list such as [[q, v], [q, k, v, o]])"
)


class Dimension(BaseModel):
    """One searched setting: a range ``low``..``high`` (``log`` for a log scale, ``step`` for a
    grid) or a list of ``choices``. Whole-number fields (``r``, ``max_steps``) are searched
    as integers."""

    model_config = ConfigDict(extra="forbid")

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        ranged = self.low is not None or self.high is not None
        if self.choices is not None:
            if ranged or self.log or self.step is not None:
                raise ValueError("give either choices or a range (low, high), not both")
            if not self.choices:
                raise ValueError("choices is empty: list at least two values")
            if len({json.dumps(c, sort_keys=True, default=str) for c in self.choices}) < 2:
                raise ValueError(
                    f"{self.choices} holds one value: a single value is not a search; set it "
                    f"as a fixed option instead, or list another value to try"
                )
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a range needs both low and high; expected {SPEC_FORMS}")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("the bounds must be finite numbers")
        if self.low > self.high:
            raise ValueError(
                f"the lower bound {self.low:g} is above the upper bound {self.high:g}; swap them"
            )
        if self.low == self.high:
            raise ValueError(
                f"the range {self.low:g}..{self.high:g} is a single value: a single value is "
                f"not a search; set it as a fixed option instead, or widen the range"
            )
        if self.log and self.low <= 0:
            raise ValueError(
                f"a log scale needs a lower bound above zero, got {self.low:g}: use a small "
                f"positive value such as 1e-6, or drop :log"
            )
        if self.step is not None and (self.step <= 0 or self.log):
            raise ValueError("step must be positive, and cannot be combined with a log scale")
        return self


@dataclass(frozen=True)
class SearchParameter:
    """A dimension bound to the field it searches."""

    section: Section
    name: str
    dimension: Dimension
    #: Whether the field takes whole numbers (searched as integers).
    integer: bool

    @property
    def key(self) -> str:
        """``training.NAME`` or ``options.NAME``: the parameter's name in the study."""
        return f"{self.section}.{self.name}"

    def distribution(self) -> Any:
        """The Optuna distribution of this parameter."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        dimension = self.dimension
        if dimension.choices is not None:
            return CategoricalDistribution([_encode(choice) for choice in dimension.choices])
        assert dimension.low is not None and dimension.high is not None
        if self.integer:
            return IntDistribution(
                int(dimension.low),
                int(dimension.high),
                log=dimension.log,
                step=int(dimension.step or 1),
            )
        return FloatDistribution(
            dimension.low, dimension.high, log=dimension.log, step=dimension.step
        )

    def decode(self, value: Any) -> Any:
        """A value as the study stores it -> the field's value (lists are stored as JSON)."""
        if self.dimension.choices is not None and isinstance(value, str):
            for choice in self.dimension.choices:
                if _encode(choice) == value:
                    return choice
        return value


def _encode(choice: Any) -> Any:
    # Optuna's categorical choices are scalars; a choice such as ['q', 'v'] is stored as JSON.
    if choice is None or isinstance(choice, (bool, int, float, str)):
        return choice
    return json.dumps(choice, sort_keys=True)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space for one method."""

    method: str
    parameters: tuple[SearchParameter, ...]

    def distributions(self) -> dict[str, Any]:
        """``{key: Optuna distribution}``, in the space's order."""
        return {parameter.key: parameter.distribution() for parameter in self.parameters}

    def as_dict(self) -> dict[str, Any]:
        """The space as ``sweep.json`` records it."""
        return {
            parameter.key: parameter.dimension.model_dump(exclude_defaults=True)
            for parameter in self.parameters
        }

    def settings(
        self,
        params: Mapping[str, Any],
        method_options: BaseModel,
        training: TrainingOptions,
    ) -> tuple[dict[str, Any], TrainingOptions]:
        """One trial's method options (a mapping, for the registry to validate) and training
        options: the fixed settings with the trial's values put in."""
        options = method_options.model_dump()
        training_values = training.model_dump()
        for parameter in self.parameters:
            value = parameter.decode(params[parameter.key])
            target = training_values if parameter.section == "training" else options
            target[parameter.name] = value
        if any(p.key == "training.epochs" for p in self.parameters):
            training_values["max_steps"] = None  # a searched epoch count is not overridden
        return options, TrainingOptions.model_validate(training_values)


def parse_spec(key: str, text: str) -> Dimension:
    """``--search KEY=SPEC``'s SPEC -> a :class:`Dimension` (``1e-5..1e-2:log``, ``4,8,16``,
    ``[[q, v], [q, k, v, o]]``)."""
    import yaml

    where = f"--search {key}={text}"
    spec = text.strip()
    if ".." in spec and not spec.startswith("["):
        bounds, _, flags = spec.partition(":")
        low, _, high = bounds.partition("..")
        log = flags.strip().lower() == "log"
        if flags and not log:
            raise ConfigError(f"{where}: unknown range flag '{flags}'; expected {SPEC_FORMS}.")
        for bound in (low, high):
            try:
                float(bound)
            except ValueError:
                raise ConfigError(
                    f"{where}: the bound {bound.strip()!r} is not a number; a range is written "
                    f"LOW..HIGH with numbers, e.g. 1e-5..1e-2:log."
                ) from None
        try:
            return Dimension(low=float(low), high=float(high), log=log)
        except ValueError as exc:
            raise ConfigError(f"{where}: {_reason(exc)}.") from None
    dashed = _dashed_range(spec)
    if dashed is not None:  # 1e-5-1e-2 or 4-16: one value to YAML, a range to whoever wrote it
        raise ConfigError(
            f"{where}: a range is written LOW..HIGH: --search {key}={dashed[0]}..{dashed[1]} "
            f"(add :log for a log scale); choices are written A,B,C."
        )
    if not spec.startswith("["):
        spec = f"[{spec}]"
    try:
        choices = yaml.safe_load(spec)
    except yaml.YAMLError:
        raise ConfigError(f"{where}: cannot read the choices; expected {SPEC_FORMS}.") from None
    if not isinstance(choices, list):
        raise ConfigError(f"{where}: expected {SPEC_FORMS}.")
    try:
        return Dimension(choices=choices)
    except ValueError as exc:
        fixed = f" (a method option as --option {key}={text}, a training setting by its flag)"
        single = len(choices) == 1 and "holds one value" in str(exc)
        raise ConfigError(f"{where}: {_reason(exc)}{fixed if single else ''}.") from None


def _dashed_range(spec: str) -> tuple[str, str] | None:
    """``(low, high)`` where ``spec`` is two numbers joined by a dash (``1e-5-1e-2``, ``4-16``),
    a dash that is no exponent's sign; else None."""
    for index, char in enumerate(spec):
        if char != "-" or index == 0 or spec[index - 1] in "eE-":
            continue
        low, high = spec[:index], spec[index + 1 :]
        try:
            float(low), float(high)
        except ValueError:
            continue
        return low, high
    return None


def _reason(exc: Exception) -> str:
    """A dimension's problems; a misspelt key (``lgo``) named, with the likeliest meant and the
    valid ones."""
    from dialogsum.validation import format_validation_error

    return format_validation_error(exc, Dimension) if isinstance(exc, ValidationError) else str(exc)


def resolve_space(
    space: Mapping[str, Any],
    *,
    method: str,
    method_options: BaseModel,
    training: TrainingOptions,
    validate_method: Any,
) -> SearchSpace:
    """Check ``space`` (``{name: Dimension or its mapping, or a list of choices}``) against the
    method's options and the training options, and bind each name to its field.

    ``validate_method(mapping)`` validates the method's options (the registry's
    ``method_options``). Every failure is a :class:`ConfigError` naming the parameter.
    """
    if not space:
        raise ConfigError(
            "The search space is empty: give at least one setting to search, e.g. "
            "--search learning_rate=1e-5..1e-2:log (or a 'space' section in --config)."
        )
    option_fields = type(method_options).model_fields
    searchable = [name for name in TrainingOptions.model_fields if name not in NOT_SEARCHABLE]
    others = {**other_names(TrainingOptions), **other_names(type(method_options))}
    parameters = []
    for raw_key, raw in space.items():
        section, name = _bind(str(raw_key), method, searchable, list(option_fields), others)
        dimension = _dimension(str(raw_key), raw)
        field = (TrainingOptions.model_fields if section == "training" else option_fields)[name]
        integer = _whole_number(field.annotation)
        parameter = SearchParameter(section, name, dimension, integer)
        read = _check_values(parameter, raw_key, method_options, training, validate_method)
        if dimension.choices is not None:
            # Each choice as the field reads it: YAML reads 1e-5 (no dot) as text, which would
            # be searched, stored and plotted as a word.
            parameter = SearchParameter(section, name, Dimension(choices=read), integer)
        parameters.append(parameter)
    keys = {parameter.key for parameter in parameters}
    if len(keys) < len(parameters):
        raise ConfigError("The search space names a setting twice; list each setting once.")
    if {"training.epochs", "training.max_steps"} <= keys:
        raise ConfigError(
            "The search space has both epochs and max_steps: max_steps overrides epochs, so "
            "search one of them."
        )
    if "training.epochs" in keys and training.max_steps is not None:
        raise ConfigError(
            f"The search space has epochs, but max_steps is fixed at {training.max_steps} "
            f"(--max-steps, or training.max_steps), which would override every trial's epochs: "
            f"drop the fixed max_steps, or search max_steps instead of epochs."
        )
    return SearchSpace(method=method, parameters=tuple(parameters))


def _bind(
    key: str, method: str, training: list[str], options: list[str], others: Mapping[str, str]
) -> tuple[Section, str]:
    """The section and field ``key`` names; an unknown key is an error naming the likeliest
    field meant (``others``: the names other tools give fields, see validation.other_names)."""
    section, dot, name = key.partition(".")
    if dot:
        if section == "training" and name in training:
            return "training", name
        if section == "options" and name in options:
            return "options", name
        if section not in ("training", "options"):
            name = key  # not a prefix: fall through to the unknown-name error
    else:
        name = key
        in_training, in_options = name in training, name in options
        if in_training and in_options:
            raise ConfigError(
                f"Search space: '{name}' is both a training setting and an option of method "
                f"'{method}'; write training.{name} or options.{name}."
            )
        if in_training:
            return "training", name
        if in_options:
            return "options", name
    meant = likely_key(name, [*training, *options], others)
    hint = f" Did you mean {meant}?" if meant else ""
    raise ConfigError(
        f"Search space: unknown setting '{key}'.{hint} Searchable training settings: "
        f"{', '.join(training)}. Options of method '{method}': {', '.join(options) or 'none'}."
    )


def _dimension(key: str, raw: Any) -> Dimension:
    if isinstance(raw, Dimension):
        return raw
    try:
        if isinstance(raw, list):
            return Dimension(choices=raw)
        if isinstance(raw, Mapping):
            return Dimension.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(f"Search space, '{key}': {_reason(exc)}.") from None
    raise ConfigError(
        f"Search space, '{key}': got {raw!r}; expected {{low: ..., high: ..., log: true}} or a "
        f"list of choices. A single value is not a search: set it as a fixed option instead."
    )


def _whole_number(annotation: Any) -> bool:
    return annotation in (int, int | None)


def _check_values(
    parameter: SearchParameter,
    raw_key: object,
    method_options: BaseModel,
    training: TrainingOptions,
    validate_method: Any,
) -> list[Any]:
    """Every bound and choice must be a valid value of the field: refused now, not in trial 7.
    Returns each value as the field reads it."""
    dimension = parameter.dimension
    if dimension.choices is not None:
        values = list(dimension.choices)
    else:
        assert dimension.low is not None and dimension.high is not None
        values = [dimension.low, dimension.high]
        if parameter.integer and not all(float(v).is_integer() for v in values):
            raise ConfigError(
                f"Search space, '{raw_key}': {parameter.name} takes whole numbers; the bounds "
                f"{dimension.low:g}..{dimension.high:g} are not."
            )
        values = [int(v) for v in values] if parameter.integer else values
    read = set()  # each choice as the field reads it
    typed = []
    for value in values:
        try:
            if parameter.section == "training":
                parsed: Any = TrainingOptions.model_validate(
                    {**training.model_dump(), parameter.name: value}
                )
            else:
                parsed = validate_method({**method_options.model_dump(), parameter.name: value})
            typed.append(getattr(parsed, parameter.name))
            read.add(json.dumps(typed[-1], sort_keys=True, default=str))
        except ValidationError as exc:
            raise ConfigError(
                f"Search space, '{raw_key}': {value!r} is not a valid {parameter.name}: "
                f"{format_validation_error(exc)}."
            ) from None
        except ConfigError as exc:
            raise ConfigError(
                f"Search space, '{raw_key}': {value!r} is not a valid {parameter.name}: {exc}"
            ) from None
    if dimension.choices is not None and len(read) < 2:
        raise ConfigError(
            f"Search space, '{raw_key}': the choices {dimension.choices} are one value once "
            f"read as {parameter.name} ({next(iter(read))}): a single value is not a search; "
            f"set it as a fixed option instead, or list another value to try."
        )
    return typed
