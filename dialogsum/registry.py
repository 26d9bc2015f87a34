"""The typed registry of fine-tuning methods and inference backends.

Plugins hand objects to the core through ``register(obj)``; this module validates each one, keeps
track of where it came from, rejects name clashes and answers look-ups with helpful errors.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from dialogsum.errors import PluginError
from dialogsum.interfaces import FALLBACK_LEARNING_RATE, FinetuneMethod, InferenceBackend
from dialogsum.plugins import DialogsumPluginManager, get_plugin_manager
from dialogsum.validation import format_validation_error, validate_options

__all__ = ["Registered", "Registry", "format_validation_error", "get_registry", "validate_options"]

Kind = Literal["method", "backend"]
T = TypeVar("T")

_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")

_CALLABLE: dict[Kind, str] = {"method": "prepare", "backend": "load"}


@dataclass(frozen=True)
class Registered(Generic[T]):
    """A registered method or backend and the plugin it came from."""

    name: str
    obj: T
    source: str


class Registry:
    """Methods and backends by name, built from a plugin manager's hooks."""

    def __init__(self) -> None:
        self.methods: dict[str, Registered[FinetuneMethod]] = {}
        self.backends: dict[str, Registered[InferenceBackend]] = {}

    @classmethod
    def from_plugin_manager(cls, manager: DialogsumPluginManager) -> Registry:
        """Call every plugin's hooks and collect what they register."""
        registry = cls()
        hooks: list[tuple[Kind, Any]] = [
            ("method", manager.hook.register_methods),
            ("backend", manager.hook.register_backends),
        ]
        for kind, hook in hooks:
            # Call implementations one by one (not through the hook relay) so each registration
            # is attributed to its plugin: clashes and errors then name both distributions.
            for impl in reversed(hook.get_hookimpls()):
                source = manager.source_of(impl.plugin_name)
                register = registry._registrar(kind, source)
                try:
                    returned = impl.function(**{arg: register for arg in impl.argnames})
                except PluginError:
                    raise
                except Exception as exc:
                    raise PluginError(
                        f"Plugin {source} raised in its register_{kind}s hook: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                if returned is not None:
                    raise PluginError(
                        f"Plugin {source}'s register_{kind}s hook returned "
                        f"{type(returned).__name__} instead of calling register(...) for each "
                        f"{kind}; nothing it returns is registered."
                    )
        return registry

    def _registrar(self, kind: Kind, source: str) -> Callable[[Any], None]:
        def register(obj: Any) -> None:
            self.add(kind, obj, source)

        return register

    def add(self, kind: Kind, obj: Any, source: str) -> None:
        """Validate ``obj`` as a ``kind`` and add it; clashes raise :class:`PluginError`."""
        _check_shape(kind, obj, source)
        table: dict[str, Registered[Any]] = self.methods if kind == "method" else self.backends
        name = obj.name
        if name in table and table[name].source == source:
            raise PluginError(
                f"Plugin {source} registers two {kind}s named '{name}'; give each its own name "
                f"(or register it once)."
            )
        if name in table:
            raise PluginError(
                f"Two plugins register a {kind} named '{name}': {table[name].source} and {source}. "
                f"Uninstall one of them, or choose which loads with DIALOGSUM_PLUGINS."
            )
        table[name] = Registered(name=name, obj=obj, source=source)

    def method(self, name: str) -> FinetuneMethod:
        """The method called ``name``, or a :class:`PluginError` listing the available ones."""
        return self._lookup("method", self.methods, name).obj

    def backend(self, name: str) -> InferenceBackend:
        """The backend called ``name``, or a :class:`PluginError` listing the available ones."""
        return self._lookup("backend", self.backends, name).obj

    def _lookup(self, kind: Kind, table: Mapping[str, Registered[T]], name: str) -> Registered[T]:
        if name in table:
            return table[name]
        available = ", ".join(sorted(table)) or "none"
        close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.75)
        if close:  # a typo: no advice to install a package of the misspelt name
            raise PluginError(
                f"Unknown {kind} '{name}'; did you mean '{close[0]}'? Available {kind}s: "
                f"{available}."
            )
        known = KNOWN_PLUGINS.get((kind, name))
        if known is not None:
            raise PluginError(
                f"Unknown {kind} '{name}'. Available {kind}s: {available}. '{name}' comes with "
                f"the {known} plugin in dialogsum's repository: pip install ./plugins/{known} "
                f"from a checkout (see docs/plugins.md)."
            )
        # Any other name: the core cannot know every third party's, and advising to install
        # a package of whatever name was typed would send users to typosquatters.
        raise PluginError(
            f"Unknown {kind} '{name}'. Available {kind}s: {available}. A {kind} from a plugin "
            f"appears once its distribution is installed: see docs/plugins.md for the known "
            f"plugins (check a package's author before installing it), and `dialogsum "
            f"plugins` lists what is loaded."
        )

    def method_options(self, name: str, options: Mapping[str, Any] | BaseModel | None) -> BaseModel:
        """Validate options for method ``name`` (unknown method or bad field: clear error)."""
        return validate_options(f"method '{name}'", self.method(name).Options, options)

    def backend_options(
        self, name: str, options: Mapping[str, Any] | BaseModel | None
    ) -> BaseModel:
        """Validate options for backend ``name`` (unknown backend or bad field: clear error)."""
        return validate_options(f"backend '{name}'", self.backend(name).Options, options)


#: The plugins dialogsum's own repository publishes, by what they register.
KNOWN_PLUGINS: dict[tuple[str, str], str] = {
    ("method", "ia3"): "dialogsum-ia3",
    ("backend", "ctranslate2"): "dialogsum-ctranslate2",
}


def _check_shape(kind: Kind, obj: Any, source: str) -> None:
    what = f"{kind} registered by {source}"
    if isinstance(obj, type):
        raise PluginError(
            f"A {what} is the class {obj.__name__}; "
            f"register an instance: register({obj.__name__}())."
        )
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(
            f"A {what} ({type(obj).__name__}) has name {name!r}; a name must be a lower-case "
            f"identifier such as 'lora' or 'my-backend'."
        )
    options = getattr(obj, "Options", None)
    if not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise PluginError(
            f"The {kind} '{name}' registered by {source} has no pydantic Options class; "
            f"subclass dialogsum.Options (or use dialogsum.NoOptions)."
        )
    if options.model_config.get("extra") != "forbid":
        raise PluginError(
            f"The {kind} '{name}' registered by {source} has Options that accept unknown fields; "
            f"set model_config = ConfigDict(extra='forbid') or subclass dialogsum.Options, "
            f"so that a misspelt option is an error rather than silently ignored."
        )
    method = _CALLABLE[kind]
    if not callable(getattr(obj, method, None)):
        other: Kind = "backend" if kind == "method" else "method"
        hint = (
            f" It has {_CALLABLE[other]}(): a {other}? Register it in register_{other}s."
            if callable(getattr(obj, _CALLABLE[other], None))
            else ""
        )
        raise PluginError(
            f"The {kind} '{name}' registered by {source} has no {method}() method.{hint}"
        )
    if kind == "method":
        if not hasattr(obj, "default_learning_rate"):
            # Documented fallback (docs/plugins.md): a duck-typed method need not declare one.
            # Set on the object, so every later look-up sees the same rate.
            try:
                obj.default_learning_rate = FALLBACK_LEARNING_RATE
            except AttributeError as exc:  # __slots__ or a read-only object
                raise PluginError(
                    f"The method '{name}' registered by {source} declares no "
                    f"default_learning_rate and cannot be given the fallback "
                    f"({FALLBACK_LEARNING_RATE:g}): {exc}. Declare default_learning_rate."
                ) from exc
        rate = getattr(obj, "default_learning_rate", None)
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float))
            or not math.isfinite(rate)
            or not rate > 0
        ):
            raise PluginError(
                f"The method '{name}' registered by {source} has default_learning_rate "
                f"{rate!r}; it must be a positive, finite number (the rate used when the user "
                f"gives none)."
            )


def get_registry(manager: DialogsumPluginManager | None = None) -> Registry:
    """The registry for ``manager`` (default: the process-wide one), built once and cached."""
    manager = manager or get_plugin_manager()
    # Rebuilt when plugins were added or removed since, so in-process registration is seen.
    key = tuple(sorted(name for name, _ in manager.list_name_plugin()))
    cached: tuple[tuple[str, ...], Registry] | None = getattr(manager, "_dialogsum_registry", None)
    if cached is None or cached[0] != key:
        cached = (key, Registry.from_plugin_manager(manager))
        manager._dialogsum_registry = cached  # type: ignore[attr-defined]
    return cached[1]
