"""Plugin discovery: in-process registration, real entry points, the environment switches,
and what a plugin manager refuses when a plugin is registered.

Entry-point cases install fake distributions with the ``install`` fixture (see conftest.py);
``importlib.metadata`` finds them exactly as it finds a pip-installed plugin.
"""

from __future__ import annotations

import importlib.metadata
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

import dialogsum.backends.torch as pytorch
from dialogsum import PluginError, hookimpl
from dialogsum.methods import lora
from dialogsum.plugins import (
    ENV_ALLOWLIST,
    ENV_DISABLE_AUTOLOAD,
    load_entry_point_plugins,
    make_plugin_manager,
)
from dialogsum.registry import get_registry

from .fakes import BUILTIN_BACKENDS, BUILTIN_METHODS, EchoBackend, EchoMethod, method_plugin, plugin

# -- in-process registration -------------------------------------------------------------------


def test_in_process_plugin_registers_methods_and_backends() -> None:
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(
        plugin(
            register_methods=lambda register: register(EchoMethod()),
            register_backends=lambda register: register(EchoBackend()),
        ),
        name="echo-plugin",
    )
    registry = get_registry(manager)
    assert set(registry.methods) == {"echo"}
    assert set(registry.backends) == {"echo"}
    assert isinstance(registry.method("echo"), EchoMethod)
    assert registry.methods["echo"].source == "in-process plugin 'echo-plugin'"


def test_a_fresh_manager_without_entry_points_knows_nothing() -> None:
    registry = get_registry(make_plugin_manager(load_entry_points=False))
    assert registry.methods == {}
    assert registry.backends == {}
    # Asked for a built-in, it says why it has none (not "install a plugin").
    with pytest.raises(PluginError, match=r"loaded no entry points, so it has none of"):
        registry.backend("torch")


# -- built-ins and real entry points -----------------------------------------------------------


def test_builtins_are_discovered_through_the_dialogsum_entry_points() -> None:
    registry = get_registry(make_plugin_manager())
    assert set(registry.methods) >= BUILTIN_METHODS
    assert set(registry.backends) >= BUILTIN_BACKENDS
    version = importlib.metadata.version("dialogsum")
    for name in BUILTIN_METHODS:
        # Only entry-point loading records the distribution; in-process plugins have no version.
        assert registry.methods[name].source == f"dialogsum {version}"
    assert registry.backends["torch"].source == f"dialogsum {version}"
    assert isinstance(registry.method("lora"), lora.Lora)
    assert isinstance(registry.backend("torch"), pytorch.TorchBackend)


def test_installed_plugin_distribution_is_discovered(install: Callable[..., str]) -> None:
    install("dialogsum-echo", method_plugin("echo_installed"), version="2.3")
    registry = get_registry(make_plugin_manager())
    assert registry.methods["echo_installed"].source == "dialogsum-echo 2.3"
    assert set(registry.methods) >= BUILTIN_METHODS | {"echo_installed"}


def test_loading_entry_points_twice_is_harmless(install: Callable[..., str]) -> None:
    install("dialogsum-echo", method_plugin("echo_twice"))
    manager = make_plugin_manager()
    plugins_before = manager.list_name_plugin()
    load_entry_point_plugins(manager)
    assert manager.list_name_plugin() == plugins_before
    assert "echo_twice" in get_registry(manager).methods


def test_ia3_is_found_through_its_installed_entry_point() -> None:
    try:
        distribution = importlib.metadata.distribution("dialogsum-ia3")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("dialogsum-ia3 is not installed (pip install -e plugins/dialogsum-ia3)")
    registry = get_registry(make_plugin_manager())
    assert registry.methods["ia3"].source == f"dialogsum-ia3 {distribution.version}"
    assert set(registry.methods) >= BUILTIN_METHODS | {"ia3"}


def test_registering_an_installed_plugin_again_by_hand_is_one_registration(
    install: Callable[..., str],
) -> None:
    module = install("dialogsum-twice", method_plugin("twice"), version="1.0")
    manager = make_plugin_manager()  # finds the installed plugin
    again = importlib.import_module(module)
    assert manager.register(again) is not None  # as a test module of the plugin would
    assert get_registry(manager).method("twice").name == "twice"


# -- entry-point failures ----------------------------------------------------------------------


def test_plugin_that_fails_to_import_names_its_distribution(install: Callable[..., str]) -> None:
    install("dialogsum-broken", "raise RuntimeError('missing CUDA toolkit')\n", version="0.4")
    install("dialogsum-healthy", method_plugin("healthy"), version="1.0")
    with pytest.raises(PluginError) as info:
        make_plugin_manager()
    message = str(info.value)
    assert "dialogsum-broken 0.4" in message
    assert "RuntimeError: missing CUDA toolkit" in message
    assert "pip uninstall dialogsum-broken" in message
    # The way round it names the healthy plugins, ready to paste.
    allow = message.split("run without it: ")[1]
    assert allow.startswith("DIALOGSUM_PLUGINS=") and "dialogsum-healthy" in allow
    assert "dialogsum-broken" not in allow


def test_two_distributions_registering_one_name_are_both_named(
    install: Callable[..., str],
) -> None:
    install("dialogsum-twin-a", method_plugin("twin"), version="1.0")
    install("dialogsum-twin-b", method_plugin("twin"), version="2.0")
    manager = make_plugin_manager()
    with pytest.raises(PluginError) as info:
        get_registry(manager)
    message = str(info.value)
    assert "method named 'twin'" in message
    assert "dialogsum-twin-a 1.0" in message
    assert "dialogsum-twin-b 2.0" in message
    assert ENV_ALLOWLIST in message  # says how to choose one


def test_plugin_clashing_with_a_builtin_is_an_error(install: Callable[..., str]) -> None:
    install("dialogsum-my-lora", method_plugin("lora"))
    with pytest.raises(PluginError) as info:
        get_registry(make_plugin_manager())
    message = str(info.value)
    assert "Plugin dialogsum-my-lora 1.0 registers a method named 'lora'" in message
    # Built-ins always load: the allowlist cannot choose between the two, a new name does
    # (meanwhile the user may run without the plugin).
    assert "built into dialogsum" in message and "give yours another name" in message
    assert "choose which loads" not in message and "pip uninstall dialogsum-my-lora" in message


def test_hook_that_raises_names_its_distribution(install: Callable[..., str]) -> None:
    install(
        "dialogsum-exploding",
        """
        from dialogsum import hookimpl

        @hookimpl
        def register_backends(register):
            raise KeyError("no config")
        """,
        version="3.1",
    )
    with pytest.raises(PluginError) as info:
        get_registry(make_plugin_manager())
    message = str(info.value)
    assert "dialogsum-exploding 3.1" in message
    assert "register_backends" in message
    assert "KeyError" in message
    # Every command builds the registry: the user is told how to run meanwhile.
    assert "pip uninstall dialogsum-exploding" in message and ENV_ALLOWLIST in message


def test_misspelt_hook_in_an_installed_plugin_is_an_error(install: Callable[..., str]) -> None:
    install(
        "dialogsum-typo",
        """
        from dialogsum import hookimpl

        @hookimpl
        def register_method(register):
            pass
        """,
    )
    with pytest.raises(PluginError) as info:
        make_plugin_manager()
    message = str(info.value)
    assert "dialogsum-typo 1.0" in message
    assert "'register_method'" in message
    assert "its hooks: register_backends, register_methods)" in message


def test_hook_with_wrong_arguments_is_an_error(install: Callable[..., str]) -> None:
    install(
        "dialogsum-wrong-args",
        """
        from dialogsum import hookimpl

        @hookimpl
        def register_methods(add):
            pass
        """,
    )
    with pytest.raises(PluginError) as info:
        make_plugin_manager()
    assert "dialogsum-wrong-args 1.0" in str(info.value)
    assert "add" in str(info.value)


# -- environment switches ----------------------------------------------------------------------


def test_allowlist_loads_only_the_named_distribution_and_the_builtins(
    install: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    install("dialogsum-wanted", method_plugin("wanted"))
    install("dialogsum-other", method_plugin("other"))
    broken = install("dialogsum-broken", "raise RuntimeError('never imported')\n")
    # Names are compared the way pip compares them: case, '-' and '_' do not matter.
    monkeypatch.setenv(ENV_ALLOWLIST, "Dialogsum_Wanted")
    registry = get_registry(make_plugin_manager())
    assert set(registry.methods) == BUILTIN_METHODS | {"wanted"}
    assert set(registry.backends) == BUILTIN_BACKENDS
    assert broken not in sys.modules  # a plugin outside the allowlist is not even imported


def test_allowlist_naming_a_missing_distribution_is_an_error(
    install: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    install("dialogsum-wanted", method_plugin("wanted"))
    monkeypatch.setenv(ENV_ALLOWLIST, "dialogsum-wanted, dialogsum-nonexistent")
    with pytest.raises(PluginError) as info:
        make_plugin_manager()
    message = str(info.value)
    assert "dialogsum-nonexistent" in message
    assert ENV_ALLOWLIST in message
    assert "dialogsum-wanted" in message  # lists what is installed


def test_disable_autoload_skips_third_party_but_keeps_builtins(
    install: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    install("dialogsum-extra", method_plugin("extra"))
    broken = install("dialogsum-broken", "raise RuntimeError('never imported')\n")
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, "1")
    registry = get_registry(make_plugin_manager())
    assert set(registry.methods) == BUILTIN_METHODS  # no 'extra', and no 'ia3' even if installed
    assert set(registry.backends) == BUILTIN_BACKENDS
    assert broken not in sys.modules


@pytest.mark.parametrize("value", ["0", "false", ""])
def test_disable_autoload_off_values_keep_loading(
    install: Callable[..., str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    install("dialogsum-extra", method_plugin("extra"))
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, value)
    assert "extra" in get_registry(make_plugin_manager()).methods


def test_the_allowlist_takes_spaces_after_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    from dialogsum.plugins import ENV_ALLOWLIST, _allowlist

    monkeypatch.setenv(ENV_ALLOWLIST, "dialogsum-ia3, My_Backend ,")
    assert _allowlist() == {"dialogsum-ia3", "my-backend"}


# -- what the plugin manager refuses -----------------------------------------------------------


def test_misspelt_hook_in_process_is_an_error_and_leaves_nothing_registered() -> None:
    manager = make_plugin_manager(load_entry_points=False)
    typo = plugin(register_backend=lambda register: register(EchoBackend()))
    with pytest.raises(PluginError, match="'register_backend'"):
        manager.register(typo, name="typo")
    assert not manager.is_registered(typo)


def test_hook_of_a_newer_dialogsum_may_be_marked_optional() -> None:
    manager = make_plugin_manager(load_entry_points=False)
    future = types.SimpleNamespace(
        register_exporters=hookimpl(optionalhook=True)(lambda register: None),
        register_methods=hookimpl(lambda register: register(EchoMethod())),
    )
    manager.register(future, name="future")
    assert "echo" in get_registry(manager).methods


def _undecorated_register_methods(register: Callable[[Any], None]) -> None:
    register(EchoMethod())


def _the_hook_itself() -> Callable[..., None]:
    @hookimpl
    def register_methods(register: Callable[[Any], None]) -> None:
        register(EchoMethod())

    return register_methods


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: types.SimpleNamespace(register_methods=_undecorated_register_methods),
            "defines register_methods without the @hookimpl decorator",
        ),
        (
            lambda: plugin(register_methods=lambda: None),
            r"has register_methods\(\) without its 'register' parameter",
        ),
        (lambda: types.SimpleNamespace(), "implements no dialogsum hook"),
        # An entry point 'package.module:register_methods' loads the hook, not its module.
        (
            lambda: _the_hook_itself(),
            r"is the function register_methods\(\), not the module that holds it.*"
            r"'package.module', not 'package.module:register_methods'",
        ),
    ],
)
def test_a_plugin_that_would_register_nothing_says_so(make: Any, message: str) -> None:
    manager = make_plugin_manager(load_entry_points=False)
    with pytest.raises(PluginError, match=message):
        manager.register(make(), name="quiet")


def test_a_plugin_object_is_named_by_its_type_and_a_method_without_self_is_told() -> None:
    class Hooks:
        @hookimpl
        def register_methods(register: Any) -> None:  # type: ignore[misc]  # no self
            register(EchoMethod())

    with pytest.raises(PluginError) as info:
        make_plugin_manager(load_entry_points=False).register(Hooks())
    message = str(info.value)
    assert "in-process plugin 'Hooks object at 0x" in message  # not a bare id()
    assert "a method takes self first: def register_methods(self, register)" in message


def test_a_class_as_the_plugin_is_told_to_point_at_a_module() -> None:
    class Plugin:
        @hookimpl
        def register_methods(self, register: Any) -> None:
            register(EchoMethod())

    with pytest.raises(PluginError, match="is the class Plugin"):
        make_plugin_manager(load_entry_points=False).register(Plugin, name="klass")
