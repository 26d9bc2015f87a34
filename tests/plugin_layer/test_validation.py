"""Options are validated once, at the edge: a method's or backend's options name the plugin and
the field at fault, and fail before a model or a data file is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import dialogsum
from dialogsum import ConfigError, PluginError, Summarizer
from dialogsum.plugins import make_plugin_manager
from dialogsum.registry import get_registry

from .fakes import EchoMethod, EchoOptions, EchoWithOptions, builtins_manager, plugin


def test_method_options_are_validated_naming_the_method_and_the_field() -> None:
    registry = get_registry(builtins_manager())
    with pytest.raises(ConfigError) as info:
        registry.method_options("lora", {"rank": 16})
    message = str(info.value)
    assert "method 'lora'" in message
    assert "rank" in message
    assert "Valid fields: r, alpha" in message
    assert "did you mean 'r'?" in message  # peft's and others' name for LoRA's rank

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


def test_a_plugins_options_may_name_what_other_tools_call_a_field() -> None:
    from pydantic import Field

    from dialogsum.plugin_api import OTHER_NAMES, FinetuneMethod, Options

    class ScaledOptions(Options):
        scale: float = Field(1.0, json_schema_extra={OTHER_NAMES: ["ia3_scaling"]})

    class Scaled(FinetuneMethod):
        name = "scaled"
        Options = ScaledOptions

        def prepare(self, model: Any, options: Any, *, tokenizer: Any) -> Any:
            return model

    manager = make_plugin_manager(load_entry_points=False)
    manager.register(plugin(register_methods=lambda register: register(Scaled())))
    registry = get_registry(manager)
    with pytest.raises(
        ConfigError, match=r"ia3_scaling: not a setting here \(did you mean 'scale'\?\)"
    ):
        registry.method_options("scaled", {"ia3_scaling": 2.0})
    from dialogsum.sweep.space import resolve_space
    from dialogsum.training.options import TrainingOptions

    with pytest.raises(ConfigError, match=r"unknown setting 'ia3_scaling'. Did you mean scale\?"):
        resolve_space(
            {"ia3_scaling": [1.0, 2.0]},
            method="scaled",
            method_options=ScaledOptions(),
            training=TrainingOptions(),
            validate_method=lambda mapping: registry.method_options("scaled", mapping),
        )


def test_backend_options_are_validated_naming_the_backend_and_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        get_registry(builtins_manager()).backend_options("torch", {"devise": "cpu"})
    assert "backend 'torch'" in str(info.value)
    assert "devise" in str(info.value)


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


# -- before the model or the data is touched ---------------------------------------------------


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
    # The folder does not exist: loading first would raise a ModelError instead. (With no
    # backend named, the folder chooses it, so a missing folder is told first.)
    with pytest.raises(ConfigError, match=r"backend 'torch'.*devise"):
        Summarizer.from_pretrained(
            tmp_path / "absent",
            backend="torch",
            backend_options={"devise": "cpu"},
            plugins=builtins_manager(),
        )


def test_a_key_with_two_letters_swapped_is_told_the_key_with_those_letters() -> None:
    from dialogsum.validation import likely_key

    # by spelling alone, lgo is as close to low as to log
    assert likely_key("lgo", ["low", "high", "log"], {}) == "log"
    assert likely_key("nmu_beams", ["num_beams", "num_return"], {}) == "num_beams"
