"""Fake plugins the plugin-layer tests register: methods and backends that train and serve
nothing, the source of an installable plugin module, and a manager holding only the built-ins."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dialogsum
import dialogsum.backends.torch as pytorch
from dialogsum import hookimpl
from dialogsum.methods import full, lora, prompt_tuning
from dialogsum.plugin_api import GenerationOptions, ModelManifest, Predictor
from dialogsum.plugins import DialogsumPluginManager, make_plugin_manager

BUILTIN_METHODS = {"full", "lora", "prompt_tuning"}
BUILTIN_BACKENDS = {"torch", "onnxruntime"}


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
