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
from dialogsum.interfaces import FinetuneMethod, InferenceBackend
from dialogsum.plugins import (
    ENV_ALLOWLIST,
    ENV_DISABLE_AUTOLOAD,
    DialogsumPluginManager,
    get_plugin_manager,
    is_core_source,
)
from dialogsum.validation import format_validation_error, validate_options

__all__ = ["Registered", "Registry", "format_validation_error", "get_registry", "validate_options"]

Kind = Literal["method", "backend"]
T = TypeVar("T")

_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


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
                except PluginError as exc:
                    raise PluginError(f"{exc}{_way_around(source, str(exc))}") from exc
                except Exception as exc:
                    message = (
                        f"Plugin {source} raised in its register_{kind}s hook: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    raise PluginError(f"{message}{_way_around(source, message)}") from exc
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
            earlier = table[name].source
            if is_core_source(earlier) or is_core_source(source):
                plugin = source if is_core_source(earlier) else earlier
                raise PluginError(
                    f"Plugin {plugin} registers a {kind} named '{name}', the name of one built "
                    f"into dialogsum (built-ins always load): give yours another name (its "
                    f"name attribute)."
                )
            raise PluginError(
                f"Two plugins register a {kind} named '{name}': {earlier} and {source}. "
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
        # What the field calls them ("onnx", "pytorch", "ct2"), told, never taken silently.
        meant = OTHER_NAMES.get((kind, name.lower()), name)
        close = difflib.get_close_matches(meant, list(table), n=1, cutoff=0.75)
        if close:  # a typo: no advice to install a package of the misspelt name
            raise PluginError(
                f"Unknown {kind} '{name}'; did you mean '{close[0]}'? Available {kind}s: "
                f"{available}."
            )
        known = KNOWN_PLUGINS.get((kind, meant))
        if known is not None:
            called = f"'{meant}' ('{name}' here)" if meant != name else f"'{name}'"
            raise PluginError(
                f"Unknown {kind} '{name}'. Available {kind}s: {available}. {called} comes "
                f"with the {known} plugin in dialogsum's source repository: pip install "
                f"./plugins/{known} from a checkout of it."
            )
        sources = [entry.source for entry in self.methods.values()] + [
            entry.source for entry in self.backends.values()
        ]
        if not any(is_core_source(source) for source in sources):
            # A manager made without entry points (tests, applications) has no built-ins.
            raise PluginError(
                f"Unknown {kind} '{name}'. Available {kind}s: {available}. This plugin manager "
                f"loaded no entry points, so it has none of dialogsum's built-ins either: make "
                f"it with make_plugin_manager() (load_entry_points=True), or register what you "
                f"need with manager.register(plugin)."
            )
        # Any other name: the core cannot know every third party's, and advising to install
        # a package of whatever name was typed would send users to typosquatters.
        raise PluginError(
            f"Unknown {kind} '{name}'. Available {kind}s: {available}. A {kind} from a plugin "
            f"appears once its distribution is installed ({_known_plugins()}; check any other "
            f"package's author before installing it), and `dialogsum plugins` lists what is "
            f"loaded."
        )

    def method_options(self, name: str, options: Mapping[str, Any] | BaseModel | None) -> BaseModel:
        """Validate options for method ``name`` (unknown method or bad field: clear error)."""
        return validate_options(f"method '{name}'", self.method(name).Options, options)

    def backend_options(
        self, name: str, options: Mapping[str, Any] | BaseModel | None
    ) -> BaseModel:
        """Validate options for backend ``name`` (unknown backend or bad field: clear error)."""
        return validate_options(f"backend '{name}'", self.backend(name).Options, options)

    def export_options(self, name: str, options: Mapping[str, Any] | BaseModel | None) -> BaseModel:
        """Validate export options for backend ``name``; a backend that cannot export is named."""
        backend = self.backend(name)
        if backend.ExportOptions is None:
            exporters = ", ".join(sorted(self.exporters())) or "none"
            raise PluginError(
                f"Backend '{name}' ({self.backends[name].source}) cannot export. Backends that "
                f"can: {exporters} (dialogsum plugins shows them)."
            )
        return validate_options(f"export with backend '{name}'", backend.ExportOptions, options)

    def exporters(self) -> list[str]:
        """The backends that can export, by name."""
        return [n for n, e in self.backends.items() if e.obj.ExportOptions is not None]


#: The plugins dialogsum's own repository publishes, by what they register.
KNOWN_PLUGINS: dict[tuple[str, str], str] = {
    ("method", "ia3"): "dialogsum-ia3",
    ("backend", "ctranslate2"): "dialogsum-ctranslate2",
}


def _known_plugins() -> str:
    """The plugins dialogsum's repository publishes, for a message: an installed dialogsum
    ships no docs to point at."""
    listed = [f"{dist} ({kind} {name})" for (kind, name), dist in sorted(KNOWN_PLUGINS.items())]
    return f"dialogsum's source repository publishes {' and '.join(listed)}"


#: The names other tools and tutorials give dialogsum's methods and backends: an unknown name
#: that is one of them is told ours (or, for a known plugin's, where it comes from).
OTHER_NAMES: dict[tuple[str, str], str] = {
    ("backend", "onnx"): "onnxruntime",
    ("backend", "ort"): "onnxruntime",
    ("backend", "optimum"): "onnxruntime",
    ("backend", "pytorch"): "torch",
    ("backend", "pt"): "torch",
    ("backend", "transformers"): "torch",
    ("backend", "ct2"): "ctranslate2",
    ("method", "peft"): "lora",
    ("method", "prompt"): "prompt_tuning",
    ("method", "full_finetuning"): "full",
    ("method", "fine_tuning"): "full",
    ("method", "ia³"): "ia3",
}


_CONTRACT: dict[Kind, type[FinetuneMethod] | type[InferenceBackend]] = {
    "method": FinetuneMethod,
    "backend": InferenceBackend,
}


def _way_around(source: str, message: str) -> str:
    """How a user runs dialogsum meanwhile, when an installed plugin's registration fails:
    every command builds the registry, so one broken plugin stops them all."""
    distribution = source.split(" ")[0]
    if is_core_source(source) or source.startswith("in-process") or ENV_ALLOWLIST in message:
        return ""
    return (
        f" Until it is fixed, run without it: uninstall it (pip uninstall {distribution}), or "
        f"load only the other plugins with {ENV_ALLOWLIST}=<their distributions> (or none with "
        f"{ENV_DISABLE_AUTOLOAD}=1)."
    )


def _check_shape(kind: Kind, obj: Any, source: str) -> None:
    """Check ``obj`` against the contract its base class declares (dialogsum.interfaces)."""
    what = f"{kind} registered by {source}"
    base: type[FinetuneMethod] | type[InferenceBackend] = _CONTRACT[kind]
    if isinstance(obj, type):
        raise PluginError(
            f"A {what} is the class {obj.__name__}; "
            f"register an instance: register({obj.__name__}())."
        )
    if not isinstance(obj, base):
        other: Kind = "backend" if kind == "method" else "method"
        hint = (
            f" It is a {other}: register it in register_{other}s."
            if isinstance(obj, _CONTRACT[other])
            else ""
        )
        raise PluginError(
            f"A {what} ({type(obj).__name__}) does not subclass "
            f"dialogsum.plugin_api.{base.__name__}, which declares what a {kind} provides "
            f"(python -m pydoc dialogsum.plugin_api.{base.__name__}).{hint}"
        )
    name = getattr(obj, "name", None)  # declared without a default: a subclass must set it
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(
            f"A {what} ({type(obj).__name__}) has name {name!r}; a name must be a lower-case "
            f"identifier such as 'lora' or 'my-backend'."
        )
    _check_options(kind, name, source, "Options", obj.Options)
    if isinstance(obj, FinetuneMethod):
        rate = obj.default_learning_rate
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
    if isinstance(obj, InferenceBackend) and hasattr(obj, "samples"):
        # Read from the predictor: set here it would be ignored, and sampling would reach a
        # backend that cannot do it.
        raise PluginError(
            f"The backend '{name}' registered by {source} sets samples on its "
            f"InferenceBackend; it belongs on the Predictor its load() returns (class "
            f"attribute samples = False there)."
        )
    if isinstance(obj, InferenceBackend) and obj.ExportOptions is not None:
        _check_options(kind, name, source, "ExportOptions", obj.ExportOptions)
        if type(obj).export is InferenceBackend.export:
            raise PluginError(
                f"The backend '{name}' registered by {source} declares ExportOptions but does "
                f"not implement export(job, options); implement it, or set ExportOptions = None."
            )
    if (
        isinstance(obj, InferenceBackend)
        and obj.serves_torch_models
        and type(obj).from_torch_model is InferenceBackend.from_torch_model
    ):
        raise PluginError(
            f"The backend '{name}' registered by {source} sets serves_torch_models but does "
            f"not implement from_torch_model(model, options)."
        )


def _check_options(kind: Kind, name: str, source: str, attribute: str, options: Any) -> None:
    if not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise PluginError(
            f"The {kind} '{name}' registered by {source} has no pydantic {attribute} class; "
            f"subclass dialogsum.plugin_api.Options (or use NoOptions)."
        )
    if options.model_config.get("extra") != "forbid":
        raise PluginError(
            f"The {kind} '{name}' registered by {source} has {attribute} that accept unknown "
            f"fields; set model_config = ConfigDict(extra='forbid') or subclass "
            f"dialogsum.plugin_api.Options, so that a misspelt option is an error rather than "
            f"silently ignored."
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
