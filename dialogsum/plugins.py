"""Plugin discovery: the plugin manager and entry-point loading.

Built-in methods and backends are entry points of the ``dialogsum`` distribution itself, in the
same ``dialogsum`` group third parties use, so the core holds no list of built-ins. Two
environment switches narrow which *other* distributions are loaded:

``DIALOGSUM_PLUGINS``
    Comma-separated allowlist of distribution names (``dialogsum-ia3,my-backend``). Only these
    third-party distributions are loaded; naming one that provides no plugin is an error.
``DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD=1``
    Load no third-party distribution at all.

The built-ins are always loaded: they are part of dialogsum, not optional extensions.
"""

from __future__ import annotations

import inspect
import os
import re
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

import dialogsum.hookspecs as hookspecs
from dialogsum.errors import PluginError, clause

ENTRY_POINT_GROUP = "dialogsum"
CORE_DISTRIBUTION = "dialogsum"
ENV_ALLOWLIST = "DIALOGSUM_PLUGINS"
ENV_DISABLE_AUTOLOAD = "DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD"


def canonical_name(name: str) -> str:
    """Normalise a distribution name the way packaging does (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_core_source(source: str) -> bool:
    """Whether a plugin's origin (as :meth:`DialogsumPluginManager.source_of` tells it) is
    dialogsum itself: a built-in."""
    return source.split(" ")[0] == CORE_DISTRIBUTION


class DialogsumPluginManager(pluggy.PluginManager):
    """A pluggy plugin manager that remembers which distribution each plugin came from."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        #: plugin name -> "distribution version" (or the plugin name for in-process plugins)
        self.sources: dict[str, str] = {}

    def source_of(self, plugin_name: str) -> str:
        """Human-readable origin of a registered plugin, for error messages."""
        return self.sources.get(plugin_name, f"in-process plugin '{plugin_name}'")

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin``; a malformed or misspelt hook implementation is a PluginError.

        pluggy alone raises its own ``PluginValidationError`` for a bad signature and silently
        ignores an implementation of a hook that does not exist (``register_method``), which
        would leave a plugin that registers nothing and says nothing.
        """
        if isinstance(plugin, type):  # an entry point 'module:Class' loads the class itself
            raise PluginError(
                f"Plugin {self.source_of(name) if name else repr(plugin)} is the class "
                f"{plugin.__name__}; its hooks would be called without an instance. Point the "
                f"entry point at a module (or an instance) whose functions carry @hookimpl."
            )
        if self.is_registered(plugin):
            # An installed plugin that a test or an application also registers by hand (as
            # docs/plugins.md shows): one registration, not pluggy's "already registered".
            return self.get_name(plugin)
        if name is None:  # pluggy would name it by its id(): errors could not say which
            name = _readable_name(plugin)
        where = self.source_of(name)
        try:
            plugin_name = super().register(plugin, name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(
                f"Plugin {where or repr(plugin)} has an invalid hook implementation: "
                f"{clause(exc)}. "
                f"Hook implementations must match dialogsum's hook specifications: "
                f"register_methods(register), register_backends(register) (python -m pydoc "
                f"dialogsum.hookspecs)."
            ) from exc
        if plugin_name is None:  # blocked by name
            return None
        unknown = sorted(
            caller.name
            for caller in self.get_hookcallers(plugin) or []
            if not caller.has_spec()
            and any(
                impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()
            )
        )
        callers = self.get_hookcallers(plugin) or []
        problem = _silent(plugin, callers)
        if problem and not unknown:
            self.unregister(plugin)
            raise PluginError(
                f"Plugin {self.source_of(plugin_name)} {problem}; it would register nothing. "
                f"Write: from dialogsum.plugin_api import hookimpl, then @hookimpl def "
                f"register_methods(register): ... (python -m pydoc dialogsum.hookspecs)."
            )
        if unknown:
            self.unregister(plugin)
            known = ", ".join(
                sorted(n for n, c in vars(self.hook).items() if n[0] != "_" and c.has_spec())
            )
            raise PluginError(
                f"Plugin {self.source_of(plugin_name)} implements "
                f"{', '.join(repr(n) for n in unknown)}, which dialogsum does not define "
                f"(its hooks: {known}). Check the spelling, or mark a hook of a newer dialogsum "
                f"@hookimpl(optionalhook=True)."
            )
        return plugin_name


def _silent(plugin: object, callers: list[Any]) -> str | None:
    """Why a plugin's hooks would register nothing without a word, or None."""
    if not callers:
        plain = [
            name
            for name in ("register_methods", "register_backends")
            if callable(getattr(plugin, name, None))
        ]
        if plain:
            return (
                f"defines {', '.join(plain)} without the @hookimpl decorator (from "
                f"dialogsum.plugin_api import hookimpl)"
            )
        hook = getattr(plugin, "__name__", "")
        if inspect.isfunction(plugin) and hook in ("register_methods", "register_backends"):
            # An entry point 'package.module:register_backends' loads the hook itself.
            return (
                f"is the function {hook}(), not the module that holds it: point the entry "
                f"point at the module ('package.module', not 'package.module:{hook}')"
            )
        return "implements no dialogsum hook"
    for caller in callers:
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and caller.has_spec() and "register" not in impl.argnames:
                method = inspect.ismethod(impl.function)
                self_first = (
                    f" (a method takes self first: def {caller.name}(self, register))"
                    if method
                    else ""
                )
                return f"has {caller.name}() without its 'register' parameter{self_first}"
    return None


def _readable_name(plugin: object) -> str:
    """The name an in-process plugin registered without one gets: a module's own name, else
    its type's and its id (unique, as pluggy needs)."""
    if inspect.ismodule(plugin):
        return plugin.__name__
    return f"{type(plugin).__name__} object at {id(plugin):#x}"


def _allowlist() -> set[str] | None:
    raw = os.environ.get(ENV_ALLOWLIST)
    if raw is None:
        return None
    return {canonical_name(part.strip()) for part in raw.split(",") if part.strip()}


def _autoload_disabled() -> bool:
    return os.environ.get(ENV_DISABLE_AUTOLOAD, "").strip().lower() not in ("", "0", "false", "no")


def _distribution_label(entry_point: EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    if dist is None:  # pragma: no cover - entry points always come from a distribution here
        return entry_point.name, entry_point.name
    name = dist.metadata["Name"] or entry_point.name
    return canonical_name(name), f"{name} {dist.version}"


def load_entry_point_plugins(manager: DialogsumPluginManager) -> None:
    """Import and register every plugin in the ``dialogsum`` entry-point group.

    Idempotent: plugins already registered are skipped. A plugin that fails to import raises
    :class:`PluginError` naming its distribution; nothing is skipped silently.
    """
    allow = _allowlist()
    disabled = _autoload_disabled()
    seen: set[str] = set()
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    for entry_point in found:
        dist_name, label = _distribution_label(entry_point)
        seen.add(dist_name)
        if dist_name != CORE_DISTRIBUTION and (
            disabled or (allow is not None and dist_name not in allow)
        ):
            continue
        plugin_name = f"{dist_name}:{entry_point.name}"
        if manager.has_plugin(plugin_name):
            continue
        try:
            plugin = entry_point.load()
        except Exception as exc:
            others = sorted(
                {_distribution_label(other)[0] for other in found} - {dist_name, CORE_DISTRIBUTION}
            )
            without = (
                f"{ENV_ALLOWLIST}={','.join(others)}"
                if others
                else f"{ENV_DISABLE_AUTOLOAD}=1 (no other plugin is installed)"
            )
            raise PluginError(
                f"Plugin '{entry_point.name}' ({entry_point.value}) from distribution {label} "
                f"failed to import: {type(exc).__name__}: {clause(exc)}. Fix or reinstall it, "
                f"uninstall it (pip uninstall {dist_name}), or run without it: {without}."
            ) from exc
        if manager.is_registered(plugin):  # two entry points naming one module
            continue
        manager.sources[plugin_name] = label  # first, so registration errors name it
        try:
            manager.register(plugin, name=plugin_name)
        except BaseException:
            del manager.sources[plugin_name]
            raise
    if allow is not None and not disabled:
        missing = sorted(allow - seen)
        if missing:
            installed = sorted(seen - {CORE_DISTRIBUTION}) or ["none"]
            raise PluginError(
                f"{ENV_ALLOWLIST} names {', '.join(missing)}, but no installed distribution of "
                f"that name provides dialogsum plugins. Installed plugin distributions: "
                f"{', '.join(installed)}. Install it or correct {ENV_ALLOWLIST}."
            )


def make_plugin_manager(*, load_entry_points: bool = True) -> DialogsumPluginManager:
    """Create a fresh plugin manager; with ``load_entry_points`` it discovers installed plugins.

    Tests and embedding applications pass ``load_entry_points=False`` and register plugins
    in-process with ``manager.register(module_or_object)``.
    """
    manager = DialogsumPluginManager()
    if load_entry_points:
        load_entry_point_plugins(manager)
    return manager


_default_manager: DialogsumPluginManager | None = None


def get_plugin_manager() -> DialogsumPluginManager:
    """The process-wide plugin manager, created and loaded on first use."""
    global _default_manager
    if _default_manager is None:
        manager = make_plugin_manager()
        _default_manager = manager
    return _default_manager
