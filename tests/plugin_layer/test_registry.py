"""The registry: what a plugin may register, look-ups of unknown names, and errors that name
the plugin at fault."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

import dialogsum
from dialogsum import FinetuneMethod, NoOptions, PluginError, Summarizer, hookimpl
from dialogsum.generation import GenerationOptions
from dialogsum.interfaces import FALLBACK_LEARNING_RATE, Predictor
from dialogsum.plugins import ENV_DISABLE_AUTOLOAD, make_plugin_manager
from dialogsum.registry import get_registry

from .fakes import BUILTIN_METHODS, EchoBackend, EchoMethod, builtins_manager, plugin


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


def test_from_pretrained_with_an_in_process_backend() -> None:
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(plugin(register_backends=lambda register: register(EchoBackend())))
    summarizer = Summarizer.from_pretrained("anything", backend="echo", plugins=manager)
    assert summarizer.summarize(["#Person1#: Hi."]) == ["#Person1#: Hi."]


# -- unknown names -----------------------------------------------------------------------------


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


def test_the_names_other_tools_use_are_told_ours() -> None:
    registry = get_registry(builtins_manager())
    with pytest.raises(PluginError, match=r"Unknown backend 'pytorch'; did you mean 'torch'\?"):
        registry.backend("pytorch")
    with pytest.raises(PluginError, match=r"Unknown method 'prompt'; did you mean 'prompt_tuning'"):
        registry.method("prompt")
    # a known plugin's other name: where the plugin comes from, under its own name
    with pytest.raises(PluginError) as info:
        registry.backend("ct2")
    message = str(info.value)
    assert "Unknown backend 'ct2'" in message
    assert "'ctranslate2' ('ct2' here) comes with the dialogsum-ctranslate2 plugin" in message


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


# -- what a plugin may register ----------------------------------------------------------------


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


class _SamplesOnTheBackend(EchoBackend):
    name = "greedy_only"
    samples = False  # read from the predictor: here it would change nothing


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
        ("backends", _SamplesOnTheBackend(), "belongs on the Predictor its load() returns"),
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
        "samples-on-the-backend",
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


class _NoManifestPredictor(Predictor):
    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        return list(dialogues)


class _NoManifestBackend(EchoBackend):
    name = "no_manifest"

    def load(self, model_dir: Any, options: Any) -> Any:
        return _NoManifestPredictor()


class _Failing(EchoBackend):
    name = "failing"

    def load(self, model_dir: Any, options: Any) -> Any:
        predictor = super().load(model_dir, options)
        predictor.summarize = lambda dialogues, options: {}["missing-key"]
        return predictor


def test_a_predictor_without_a_manifest_is_refused_at_load() -> None:
    manager = make_plugin_manager(load_entry_points=False)
    backend = plugin(register_backends=lambda register: register(_NoManifestBackend()))
    manager.register(backend, name="forgetful")
    with pytest.raises(PluginError) as info:
        Summarizer.from_pretrained("anything", backend="no_manifest", plugins=manager)
    message = str(info.value)
    assert "Backend 'no_manifest' (in-process plugin 'forgetful')" in message
    assert "without a manifest: set self.manifest = read_manifest(folder)" in message


def test_a_plugin_backend_that_fails_is_named_with_its_plugin() -> None:
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(plugin(register_backends=lambda register: register(_Failing())), name="flaky")
    summarizer = Summarizer.from_pretrained("anything", backend="failing", plugins=manager)
    with pytest.raises(
        dialogsum.BackendError,
        match=r"The 'failing' backend \(in-process plugin 'flaky'\) failed: KeyError",
    ):
        summarizer.summarize(["#Person1#: Hi."])


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


def test_a_hook_that_returns_its_methods_instead_of_registering_them_is_named() -> None:
    manager = builtins_manager()
    manager.register(plugin(register_methods=lambda register: [EchoMethod()]), name="returner")
    with pytest.raises(PluginError, match=r"'returner''s register_methods hook returned list"):
        get_registry(manager)


class EchoBackendLike(dialogsum.InferenceBackend):
    """A backend, registered where methods go."""

    name = "echo-like"
    Options = dialogsum.NoOptions

    def load(self, source: Any, options: Any) -> Any:
        return None


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        (
            lambda register: (register(EchoMethod()), register(EchoMethod())),
            "registers two methods named 'echo'",
        ),
        (
            lambda register: register(EchoBackendLike()),
            r"does not subclass dialogsum\.plugin_api\.FinetuneMethod.* It is a backend: register "
            r"it in register_backends",
        ),
    ],
)
def test_registration_slips_within_one_plugin_are_told_as_such(hook: Any, message: str) -> None:
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(plugin(register_methods=hook), name="slips")
    with pytest.raises(PluginError, match=message):
        get_registry(manager)


def test_a_method_without_a_default_learning_rate_gets_the_fallback() -> None:
    class Bare(FinetuneMethod):
        name = "bare"
        Options = NoOptions

        def prepare(self, model: Any, options: Any, *, tokenizer: Any) -> Any:
            return model

    class BarePlugin:
        @hookimpl
        def register_methods(self, register: Callable[[Any], None]) -> None:
            register(Bare())

    manager = make_plugin_manager(load_entry_points=False)
    manager.register(BarePlugin(), name="bare")
    method = get_registry(manager).method("bare")
    assert method.default_learning_rate == FALLBACK_LEARNING_RATE == 5e-5
