"""One validator for every user-given options mapping: method and backend options, training,
data and generation options, command settings.

Each failure is a :class:`~dialogsum.errors.ConfigError` that names what the options are for,
the field at fault and the valid fields, so a misspelt key never passes silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dialogsum.errors import ConfigError, PluginError, clause

ModelT = TypeVar("ModelT", bound=BaseModel)


def format_validation_error(
    error: ValidationError,
    model: type[BaseModel] | None = None,
    *,
    listing: bool = True,
    flags: Mapping[str, str] | None = None,
) -> str:
    """One clause per pydantic error, ``field: message``, joined by semicolons; with the
    ``model`` validated, a key it does not know names the likeliest one meant (and, with
    ``listing``, the valid ones). ``flags`` (dotted field -> ``--flag``) names each field's
    flag beside it."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        message = error_message(item, model, listing=listing)
        if not field:  # the whole input (JSON that does not parse, a model's own check)
            lines.append(message)
            continue
        flag = None if flags is None else flags.get(field)
        lines.append(f"{field}{f' ({flag})' if flag else ''}: {message}")
    return "; ".join(lines)


def error_message(item: Any, model: type[BaseModel] | None, *, listing: bool = True) -> str:
    """One pydantic error's message; an unknown key's names the likeliest key meant and the
    valid keys there, which pydantic's "Extra inputs are not permitted" does not."""
    # A validator's own message, without pydantic's "Value error, " before it.
    # Without its closing period, too: the messages quoting it go on after it (". Valid ...").
    message = clause(str(item["msg"]).removeprefix("Value error, "))
    if item["type"] in ("literal_error", "enum"):  # a misspelt choice: show what was read
        message += f", got {item['input']!r}"
    if item["type"] != "extra_forbidden" or model is None:
        return message
    known = fields_at(model, item["loc"][:-1])
    if not known:
        return message
    key = str(item["loc"][-1])
    # At the top of a command's settings, a section's keys may also be given flat, unless two
    # sections have that key: then the section must be named.
    top = len(item["loc"]) == 1
    sections = [name for name in known if top and key in fields_at(model, [name])]
    if len(sections) > 1:
        written = " or ".join(f"{name}: {{{key}: ...}}" for name in sections)
        return f"more than one section has this setting; write it inside one: {written}"
    flat = [other for name in known for other in fields_at(model, [name]) if top]
    meant = likely_key(key, known + flat, _other_names_at(model, item["loc"][:-1], top))
    hint = f" (did you mean {meant!r}?)" if meant else ""
    valid = f"; valid here: {', '.join(known)}" if listing else ""
    nested = [name for name in known if top and fields_at(model, [name])]
    if valid and nested:  # their keys may be written at the top too
        valid += f", and the keys of {', '.join(nested)}"
    return f"not a setting here{hint}{valid}"


#: The key of a field's ``json_schema_extra`` listing the names other tools give that setting
#: (peft's ``lora_alpha`` for LoRA's ``alpha``, transformers' ``num_train_epochs`` for
#: ``epochs``): a key written with one of them is told the field's name. Plugins' option models
#: may list them too.
OTHER_NAMES = "other_names"


def other_names(model: type[BaseModel]) -> dict[str, str]:
    """``{other name: field name}`` for the fields of ``model`` that list :data:`OTHER_NAMES`."""
    found = {}
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        listed = extra.get(OTHER_NAMES) if isinstance(extra, dict) else None
        for other in listed if isinstance(listed, list) else []:
            found[str(other)] = name
    return found


def every_name(model: type[BaseModel]) -> dict[str, str]:
    """``{name: field name}`` for every name a key of ``model`` may be given: each field's own,
    and the names other tools give it (:data:`OTHER_NAMES`)."""
    return {**{name: name for name in model.model_fields}, **other_names(model)}


def likely_key(key: str, known: list[str], others: Mapping[str, str]) -> str | None:
    """The key most likely meant by an unknown ``key``: the field another tool's name
    (``others``) stands for, else the closest spelling of a ``known`` key or another name."""
    import difflib

    if key in others:
        return others[key]
    names = [*known, *others]
    # Two letters swapped (``lgo``) is as close to ``low`` as to ``log`` by spelling alone.
    swapped = [name for name in names if _swapped(key, name)]
    close = swapped or difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return None if not close else others.get(close[0], close[0])


def _swapped(first: str, second: str) -> bool:
    """Whether ``second`` is ``first`` with two of its letters swapped."""
    if len(first) != len(second):
        return False
    differ = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]
    if len(differ) != 2:
        return False
    i, j = differ
    return first[i] == second[j] and first[j] == second[i]


def _other_names_at(model: type[BaseModel], loc: Any, top: bool) -> dict[str, str]:
    """The other names of the fields at ``loc`` (and, at the top, of each section's)."""
    nested = _model_at(model, loc)
    if nested is None:
        return {}
    found = other_names(nested)
    if top:
        for name in nested.model_fields:
            section = _model_at(nested, [name])
            if section is not None:
                found = {**other_names(section), **found}
    return found


def fields_at(model: type[BaseModel], loc: Any) -> list[str]:
    """The field names of the model nested at ``loc`` in ``model`` (none where a part of the
    path is not a nested model)."""
    current = _model_at(model, loc)
    return list(current.model_fields) if current is not None else []


def _model_at(model: type[BaseModel], loc: Any) -> type[BaseModel] | None:
    """The model nested at ``loc`` in ``model`` (None where a part of the path is not one)."""
    import typing

    current: type[BaseModel] | None = model
    for part in loc:
        field = current.model_fields.get(str(part)) if current is not None else None
        if field is None:
            return None
        nested = [field.annotation, *typing.get_args(field.annotation)]
        current = next(
            (t for t in nested if isinstance(t, type) and issubclass(t, BaseModel)), None
        )
    return current


def options_error(
    label: str, options_cls: type[BaseModel], problems: str, unlisted: tuple[str, ...] = ()
) -> ConfigError:
    """The error for bad options of ``label``: the ``problems``, then the fields the caller may
    set (``options_cls``'s, less ``unlisted``)."""
    fields = ", ".join(f for f in options_cls.model_fields if f not in unlisted) or "none"
    return ConfigError(f"Invalid options for {label}: {problems}. Valid fields: {fields}.")


def validate_options(
    label: str,
    options_cls: type[ModelT],
    options: Mapping[str, Any] | BaseModel | None,
    *,
    defaults: Mapping[str, Any] | None = None,
    unlisted: tuple[str, ...] = (),
) -> ModelT:
    """Validate user-given ``options`` against the pydantic model ``options_cls``.

    ``label`` names what the options are for (``"method 'lora'"``, ``"training"``,
    ``"generation"``); ``defaults`` (a model's saved decoding settings, a config file) are
    overridden by ``options``. Raises :class:`ConfigError` naming the label, the bad field and
    the valid fields (less ``unlisted``: fields the caller may not set here).
    """
    if isinstance(options, options_cls) and not defaults:
        return options
    if isinstance(options, BaseModel):
        # With defaults underneath, only what the caller set may override them.
        options = options.model_dump(exclude_unset=bool(defaults))
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(
            f"Options for {label} must be a mapping of field names to values, "
            f"got {type(options).__name__}."
        )
    try:
        return options_cls.model_validate({**(defaults or {}), **(options or {})})
    except ValidationError as exc:
        problems = format_validation_error(exc, options_cls, listing=False)
        raise options_error(label, options_cls, problems, unlisted) from None
    except Exception as exc:  # a validator of a plugin's Options that raised something else
        raise PluginError(
            f"Checking the options of {label} ({options_cls.__name__}) failed inside its own "
            f"code: {type(exc).__name__}: {clause(exc)}. A validator should raise ValueError "
            f"for a bad value; report this to the plugin's author."
        ) from exc


def differences(
    before: object, after: object, prefix: str = ""
) -> list[tuple[str, object, object]]:
    """Dotted keys whose values differ between two JSON values, nested mappings walked."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[tuple[str, object, object]] = []
        for key in sorted(set(before) | set(after)):
            found += differences(before.get(key), after.get(key), f"{prefix}{key}.")
        return found
    return [] if before == after else [(prefix.rstrip("."), before, after)]


def changes_since(
    record: Path, now: object, upgrade: Callable[[Any], Any] | None = None
) -> list[str]:
    """``'key: before then, after now'`` for each setting that differs between the JSON file
    ``record`` (written by an earlier run) and ``now``, compared as ``now`` would read back
    from such a file; ``upgrade`` reads a record an older version wrote into today's shape.
    Raises ``OSError`` or ``ValueError`` when the file cannot be read."""
    earlier = json.loads(record.read_text(encoding="utf-8"))
    if upgrade is not None:
        earlier = upgrade(earlier)
    return changes_between(earlier, now)


def changes_between(earlier: object, now: object) -> list[str]:
    """``'key: before then, after now'`` for each setting that differs between ``earlier`` (a
    record as read back from JSON) and ``now``, compared as ``now`` would read back."""
    current = json.loads(json.dumps(now, default=str))
    return [
        f"{key}: {before!r} then, {after!r} now"
        for key, before, after in differences(earlier, current)
    ]
