"""Plugin discovery: in-process registration, real entry points, and every documented error.

Entry-point cases install fake distributions into ``tmp_path`` (a ``*.dist-info`` folder with
``METADATA`` and ``entry_points.txt`` next to the plugin module) and put it on ``sys.path``;
``importlib.metadata`` finds them exactly as it finds a pip-installed plugin.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import dialogsum
import dialogsum.backends.torch as pytorch
from dialogsum import ConfigError, PluginError, Summarizer, hookimpl
from dialogsum.methods import full, lora, prompt_tuning
from dialogsum.plugin_api import GenerationOptions, ModelManifest, Predictor
from dialogsum.plugins import (
    ENV_ALLOWLIST,
    ENV_DISABLE_AUTOLOAD,
    DialogsumPluginManager,
    load_entry_point_plugins,
    make_plugin_manager,
)
from dialogsum.registry import get_registry

BUILTIN_METHODS = {"full", "lora", "prompt_tuning"}
BUILTIN_BACKENDS = {"torch", "onnxruntime"}

_unique = itertools.count()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The switches of the developer's shell must not change what these tests see."""
    monkeypatch.delenv(ENV_ALLOWLIST, raising=False)
    monkeypatch.delenv(ENV_DISABLE_AUTOLOAD, raising=False)


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Install fake plugin distributions; returns a function ``install(name, code) -> module``.

    Each call writes ``<module>.py`` and ``<name>-<version>.dist-info`` whose entry point (named
    ``entry_point``, default the module's name) in group ``dialogsum`` names the module. Module
    names are unique per call so no test sees another's cached import.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def _install(
        name: str, code: str, *, version: str = "1.0", entry_point: str | None = None
    ) -> str:
        module = f"fake_dialogsum_plugin_{next(_unique)}"
        modules.append(module)
        (site / f"{module}.py").write_text(textwrap.dedent(code), encoding="utf-8")
        dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        (dist_info / "entry_points.txt").write_text(
            f"[dialogsum]\n{entry_point or module} = {module}\n", encoding="utf-8"
        )
        return module

    yield _install
    for module in modules:
        sys.modules.pop(module, None)


def method_plugin(method_name: str) -> str:
    """Source of a plugin module registering one trivial fine-tuning method."""
    return f"""
        from dialogsum import FinetuneMethod, NoOptions, hookimpl

        class Method(FinetuneMethod):
            name = {method_name!r}
            Options = NoOptions

            def prepare(self, model, options, *, tokenizer):
                return model

        @hookimpl
        def register_methods(register):
            register(Method())
        """


def builtins_manager() -> DialogsumPluginManager:
    """A manager with the built-ins registered in-process, and no installed plugin."""
    manager = make_plugin_manager(load_entry_points=False)
    for module in (full, lora, prompt_tuning, pytorch):
        manager.register(module)
    return manager


def plugin(**hooks: Callable[..., None]) -> types.SimpleNamespace:
    """An in-process plugin object implementing ``hooks``."""
    return types.SimpleNamespace(**{name: hookimpl(function) for name, function in hooks.items()})


class EchoMethod(dialogsum.FinetuneMethod):
    """A method that trains nothing; enough for the registry."""

    name = "echo"

    def prepare(self, model: Any, options: Any, *, tokenizer: Any) -> Any:
        return model


class EchoOptions(dialogsum.Options):
    temperature: float = 1.0


class EchoWithOptions(EchoMethod):
    name = "echo_options"
    Options = EchoOptions


class EchoPredictor(Predictor):
    """Answers each dialogue with itself."""

    manifest = ModelManifest()

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        return list(dialogues)


class EchoBackend(dialogsum.InferenceBackend):
    name = "echo"

    def load(self, model_dir: Path, options: Any) -> Any:
        return EchoPredictor()


# -- in-process registration --------------------------------------------------------------------


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


def test_registry_is_cached_and_refreshed_when_a_plugin_is_registered_later() -> None:
    manager = builtins_manager()
    first = get_registry(manager)
    assert get_registry(manager) is first  # hooks are not called again for every look-up
    assert "echo" not in first.methods

    late = plugin(register_methods=lambda register: register(EchoMethod()))
    manager.register(late, name="late")
    refreshed = get_registry(manager)
    assert refreshed.method("echo").name == "echo"
    assert set(refreshed.methods) == BUILTIN_METHODS | {"echo"}

    manager.unregister(late)
    assert "echo" not in get_registry(manager).methods


# -- built-ins and real entry points ------------------------------------------------------------


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


# -- entry-point failures -----------------------------------------------------------------------


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
    assert "dialogsum-my-lora 1.0" in str(info.value)
    assert "dialogsum " in str(info.value)  # the built-in's distribution


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


# -- unknown names ------------------------------------------------------------------------------


def test_unknown_method_lists_the_available_ones() -> None:
    registry = get_registry(builtins_manager())
    with pytest.raises(PluginError) as info:
        registry.method("qlora")
    message = str(info.value)
    assert "Unknown method 'qlora'" in message
    assert "Available methods: full, lora, prompt_tuning." in message
    assert "pip install" not in message  # 'qlora' is nobody's package we know of


def test_unknown_backend_lists_the_available_ones() -> None:
    with pytest.raises(
        PluginError, match=r"Unknown backend 'tensorrt'\. Available backends: torch"
    ):
        get_registry(builtins_manager()).backend("tensorrt")


def test_ia3_when_not_installed_hints_at_the_plugin() -> None:
    with pytest.raises(PluginError) as info:
        get_registry(builtins_manager()).method("ia3")
    message = str(info.value)
    assert "Unknown method 'ia3'" in message
    assert "dialogsum-ia3" in message


def test_ia3_when_autoload_is_disabled_hints_at_the_plugin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, "1")
    with pytest.raises(PluginError, match="dialogsum-ia3"):
        get_registry(make_plugin_manager()).method_options("ia3", {})


def test_a_backend_whose_dependency_is_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    from dialogsum import MissingDependencyError, Summarizer

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError) as info:
        Summarizer.from_pretrained(tmp_path, backend="onnxruntime")
    assert info.value.extra == "cpu-serve"
    assert "pip install 'dialogsum[cpu-serve]'" in str(info.value)
    assert "The onnxruntime backend needs onnxruntime" in str(info.value)


# -- environment switches -----------------------------------------------------------------------


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


# -- what a plugin may register -----------------------------------------------------------------


class LooseOptions(BaseModel):
    """Options that silently accept unknown fields: a misspelt option would be ignored."""

    r: int = 8


class _NoPrepare:
    name = "no_prepare"
    Options = dialogsum.NoOptions
    default_learning_rate = 1e-3


class _NoLoad:
    name = "no_load"
    Options = dialogsum.NoOptions


class _LooseMethod(EchoMethod):
    name = "loose"
    Options = LooseOptions  # type: ignore[assignment]


class _BadName(EchoMethod):
    name = "My Method"


class _NoOptionsClass(EchoMethod):
    name = "plain_options"
    Options = dict  # type: ignore[assignment]


class _ZeroRate(EchoMethod):
    name = "zero_rate"
    default_learning_rate = 0.0


@pytest.mark.parametrize(
    ("kind", "obj", "expected"),
    [
        ("methods", EchoMethod, "register an instance: register(EchoMethod())"),
        ("methods", _BadName(), "name 'My Method'"),
        ("methods", _LooseMethod(), "accept unknown fields"),
        ("methods", _NoOptionsClass(), "no pydantic Options class"),
        ("methods", _NoPrepare(), "does not subclass dialogsum.plugin_api.FinetuneMethod"),
        ("methods", _ZeroRate(), "default_learning_rate 0.0"),
        ("backends", _NoLoad(), "does not subclass dialogsum.plugin_api.InferenceBackend"),
        ("backends", EchoBackend, "register an instance: register(EchoBackend())"),
    ],
    ids=[
        "class-not-instance",
        "bad-name",
        "options-allow-extra",
        "options-not-pydantic",
        "not-a-method-subclass",
        "bad-learning-rate",
        "not-a-backend-subclass",
        "backend-class",
    ],
)
def test_invalid_registrations_are_plugin_errors_naming_the_plugin(
    kind: str, obj: Any, expected: str
) -> None:
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(plugin(**{f"register_{kind}": lambda register: register(obj)}), name="sloppy")
    with pytest.raises(PluginError) as info:
        get_registry(manager)
    assert expected in str(info.value)
    assert "in-process plugin 'sloppy'" in str(info.value)


def test_the_smallest_subclass_of_the_contract_is_accepted() -> None:
    class Plain(dialogsum.FinetuneMethod):
        name = "plain"
        Options = dialogsum.NoOptions
        default_learning_rate = 1e-4

        def prepare(self, model: Any, options: Any, *, tokenizer: Any) -> Any:
            return model

    manager = make_plugin_manager(load_entry_points=False)
    manager.register(plugin(register_methods=lambda register: register(Plain())), name="plain")
    assert get_registry(manager).method("plain").name == "plain"


def test_hook_that_raises_in_process_names_the_plugin() -> None:
    def explode(register: Callable[[Any], None]) -> None:
        raise RuntimeError("boom")

    manager = builtins_manager()
    manager.register(plugin(register_methods=explode), name="exploding")
    with pytest.raises(PluginError) as info:
        get_registry(manager)
    message = str(info.value)
    assert "in-process plugin 'exploding'" in message
    assert "register_methods" in message
    assert "RuntimeError: boom" in message


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


# -- options ------------------------------------------------------------------------------------


def test_method_options_are_validated_naming_the_method_and_the_field() -> None:
    registry = get_registry(builtins_manager())
    with pytest.raises(ConfigError) as info:
        registry.method_options("lora", {"rank": 16})
    message = str(info.value)
    assert "method 'lora'" in message
    assert "rank" in message
    assert "Valid fields: r, alpha" in message

    with pytest.raises(ConfigError, match=r"method 'lora'.*\br: Input should be greater than 0"):
        registry.method_options("lora", {"r": 0})


def test_method_options_are_parsed_into_the_plugins_options_model() -> None:
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(plugin(register_methods=lambda register: register(EchoWithOptions())))
    registry = get_registry(manager)
    options = registry.method_options("echo_options", {"temperature": "0.5"})
    assert isinstance(options, EchoOptions)
    assert options.temperature == 0.5
    with pytest.raises(ConfigError, match=r"method 'echo_options'.*temprature"):
        registry.method_options("echo_options", {"temprature": 0.5})


def test_backend_options_are_validated_naming_the_backend_and_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        get_registry(builtins_manager()).backend_options("torch", {"devise": "cpu"})
    assert "backend 'torch'" in str(info.value)
    assert "devise" in str(info.value)


class ModelTouched(Exception):
    """Raised by :class:`Untouchable` when anything reaches for the model."""


class Untouchable:
    """A predictor standing in for a loaded model: any use of it raises :class:`ModelTouched`."""

    def __getattr__(self, name: str) -> Any:
        raise ModelTouched(name)

    def summarize(self, dialogues: list[str], **generation: Any) -> list[str]:
        raise ModelTouched("summarize")


def test_finetune_rejects_bad_method_options_before_touching_model_or_data() -> None:
    summarizer = Summarizer(Untouchable(), plugins=builtins_manager())  # type: ignore[arg-type]
    missing_data = "no-such-file.jsonl"
    with pytest.raises(ConfigError) as info:
        summarizer.finetune(missing_data, method="lora", options={"rank": 16})
    message = str(info.value)
    assert "method 'lora'" in message
    assert "rank" in message

    # Control: with valid options the same call gets past validation and reaches for the model
    # (or finds it is no PyTorch model), so the error above really came before any of that.
    with pytest.raises((ModelTouched, ConfigError)) as control:
        summarizer.finetune(missing_data, method="lora", options={"r": 4})
    assert "method 'lora'" not in str(control.value)


def test_finetune_with_an_unknown_method_fails_before_touching_the_model() -> None:
    summarizer = Summarizer(Untouchable(), plugins=builtins_manager())  # type: ignore[arg-type]
    with pytest.raises(PluginError, match="Available methods: full, lora, prompt_tuning"):
        summarizer.finetune("no-such-file.jsonl", method="qlora")


def test_from_pretrained_rejects_bad_backend_options_before_loading(tmp_path: Path) -> None:
    # The folder does not exist: loading first would raise a ModelError instead.
    with pytest.raises(ConfigError, match=r"backend 'torch'.*devise"):
        Summarizer.from_pretrained(
            tmp_path / "absent", backend_options={"devise": "cpu"}, plugins=builtins_manager()
        )


def test_from_pretrained_with_an_in_process_backend() -> None:
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(plugin(register_backends=lambda register: register(EchoBackend())))
    summarizer = Summarizer.from_pretrained("anything", backend="echo", plugins=manager)
    assert summarizer.summarize(["#Person1#: Hi."]) == ["#Person1#: Hi."]


class _Slip(dialogsum.FinetuneMethod):
    """A method whose prepare() makes an author's usual slips."""

    default_learning_rate = 1e-3

    def __init__(self, name: str, slip: str) -> None:
        self.name, self.slip = name, slip

    def prepare(self, model: Any, options: Any, *, tokenizer: Any) -> Any:
        if self.slip == "forgot return":
            model.lm_head.requires_grad_(True)
            return None
        model.requires_grad_(False)  # "freezes everything"
        return model


@pytest.mark.parametrize(
    ("slip", "message"),
    [("forgot return", "returned NoneType, not the torch.nn.Module"),
     ("froze everything", "left no parameter trainable")],
)
def test_prepare_slips_name_the_method_and_leave_the_run_folder_reusable(
    tiny_model_dir: Path, few_examples, tmp_path: Path, slip: str, message: str  # type: ignore[no-untyped-def]
) -> None:
    manager = builtins_manager()
    method = _Slip("slippy", slip)
    manager.register(plugin(register_methods=lambda register: register(method)), name="slips")
    base = Summarizer.from_pretrained(tiny_model_dir, plugins=manager,
                                      backend_options={"progress": False})
    run = tmp_path / "run"
    training = {"max_steps": 1, "progress": False}
    with pytest.raises(PluginError, match=f"Method 'slippy'.*{message}"):
        base.finetune(few_examples, method="slippy", output_dir=run, training=training)
    assert not (run / "checkpoints").exists()  # a rerun is not told the folder is taken
    tuned = base.finetune(few_examples, method="full", output_dir=run, training=training)
    assert tuned.method == "full"


def test_the_allowlist_takes_spaces_after_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    from dialogsum.plugins import ENV_ALLOWLIST, _allowlist

    monkeypatch.setenv(ENV_ALLOWLIST, "dialogsum-ia3, My_Backend ,")
    assert _allowlist() == {"dialogsum-ia3", "my-backend"}


def test_an_options_validator_that_raises_something_else_names_the_method() -> None:
    from pydantic import field_validator

    class BuggyOptions(dialogsum.Options):
        x: int = 0

        @field_validator("x")
        @classmethod
        def _look_up(cls, value: int) -> int:
            return {1: 1}[value]  # a KeyError for anything but 1

    class Buggy(EchoMethod):
        name = "buggy"
        Options = BuggyOptions

    manager = builtins_manager()
    manager.register(plugin(register_methods=lambda register: register(Buggy())), name="buggy")
    registry = get_registry(manager)
    assert registry.method_options("buggy", {"x": 1}).x == 1  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match=r"options of method 'buggy'.*KeyError: 5"):
        registry.method_options("buggy", {"x": 5})


def _undecorated_register_methods(register: Callable[[Any], None]) -> None:
    register(EchoMethod())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: types.SimpleNamespace(register_methods=_undecorated_register_methods),
         "defines register_methods without the @dialogsum.hookimpl decorator"),
        (lambda: plugin(register_methods=lambda: None),
         r"has register_methods\(\) without its 'register' parameter"),
        (lambda: types.SimpleNamespace(), "implements no dialogsum hook"),
    ],
)
def test_a_plugin_that_would_register_nothing_says_so(make: Any, message: str) -> None:
    manager = make_plugin_manager(load_entry_points=False)
    with pytest.raises(PluginError, match=message):
        manager.register(make(), name="quiet")


def test_a_hook_that_returns_its_methods_instead_of_registering_them_is_named() -> None:
    manager = builtins_manager()
    manager.register(plugin(register_methods=lambda register: [EchoMethod()]), name="returner")
    with pytest.raises(PluginError, match=r"'returner''s register_methods hook returned list"):
        get_registry(manager)


def test_registering_an_installed_plugin_again_by_hand_is_one_registration(
    install: Callable[..., str],
) -> None:
    module = install("dialogsum-twice", method_plugin("twice"), version="1.0")
    manager = make_plugin_manager()  # finds the installed plugin
    again = importlib.import_module(module)
    assert manager.register(again) is not None  # as a test module of the plugin would
    assert get_registry(manager).method("twice").name == "twice"


class EchoBackendLike(dialogsum.InferenceBackend):
    """A backend, registered where methods go."""

    name = "echo-like"
    Options = dialogsum.NoOptions

    def load(self, source: Any, options: Any) -> Any:
        return None


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        (lambda register: (register(EchoMethod()), register(EchoMethod())),
         "registers two methods named 'echo'"),
        (lambda register: register(EchoBackendLike()),
         r"does not subclass dialogsum\.plugin_api\.FinetuneMethod.* It is a backend: register "
         r"it in register_backends"),
    ],
)
def test_registration_slips_within_one_plugin_are_told_as_such(hook: Any, message: str) -> None:
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(plugin(register_methods=hook), name="slips")
    with pytest.raises(PluginError, match=message):
        get_registry(manager)


def test_a_class_as_the_plugin_is_told_to_point_at_a_module() -> None:
    class Plugin:
        @hookimpl
        def register_methods(self, register: Any) -> None:
            register(EchoMethod())

    with pytest.raises(PluginError, match="is the class Plugin"):
        make_plugin_manager(load_entry_points=False).register(Plugin, name="klass")
