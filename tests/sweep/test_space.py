"""The search space and the sweep's options: every bad space is refused, naming the setting,
before anything is loaded or trained."""

from __future__ import annotations

import pytest

from dialogsum.errors import ConfigError
from dialogsum.registry import get_registry
from dialogsum.sweep.options import SweepOptions
from dialogsum.sweep.space import Dimension, parse_spec, resolve_space
from dialogsum.training.options import TrainingOptions


def resolve(space: dict, method: str = "lora", **training: object):
    registry = get_registry()
    options = registry.method_options(method, None)
    return resolve_space(
        space,
        method=method,
        method_options=options,
        training=TrainingOptions.model_validate(training),
        validate_method=lambda values: registry.method_options(method, values),
    )


def test_flag_specs_read_ranges_log_ranges_and_choices() -> None:
    assert parse_spec("learning_rate", "1e-5..1e-2:log") == Dimension(low=1e-5, high=1e-2, log=True)
    assert parse_spec("warmup_ratio", "0..0.1") == Dimension(low=0, high=0.1)
    assert parse_spec("r", "4,8,16") == Dimension(choices=[4, 8, 16])
    assert parse_spec("target_modules", "[[q, v], [q, k, v, o]]") == Dimension(
        choices=[["q", "v"], ["q", "k", "v", "o"]]
    )


def test_a_space_binds_training_settings_and_method_options() -> None:
    space = resolve(
        {
            "learning_rate": {"low": 1e-5, "high": 1e-2, "log": True},
            "r": [4, 8],
            "options.alpha": {"low": 8, "high": 32},
            "training.warmup_ratio": [0.0, 0.1],
        }
    )
    by_key = {parameter.key: parameter for parameter in space.parameters}
    assert set(by_key) == {
        "training.learning_rate",
        "options.r",
        "options.alpha",
        "training.warmup_ratio",
    }
    assert by_key["options.alpha"].integer and not by_key["training.learning_rate"].integer
    # A sampled trial's settings land in the right models, validated.
    options, training = space.settings(
        {
            "training.learning_rate": 3e-4,
            "options.r": 8,
            "options.alpha": 16,
            "training.warmup_ratio": 0.1,
        },
        get_registry().method_options("lora", None),
        TrainingOptions(),
    )
    assert options["r"] == 8 and options["alpha"] == 16
    assert training.learning_rate == 3e-4 and training.warmup_ratio == 0.1


def test_list_choices_round_trip_through_the_study() -> None:
    space = resolve({"target_modules": [["q", "v"], ["q", "k", "v", "o"]]})
    (parameter,) = space.parameters
    stored = parameter.distribution().choices
    assert all(isinstance(choice, str) for choice in stored)
    assert parameter.decode(stored[1]) == ["q", "k", "v", "o"]


@pytest.mark.parametrize(
    ("space", "words"),
    [
        (
            {"learning_rat": [1e-4]},
            [
                "unknown setting 'learning_rat'",
                "learning_rate",
                "Options of method 'lora'",
                "alpha",
                "Did you mean learning_rate?",
            ],
        ),
        # Names other tools give a field (peft's, transformers'): the field is named.
        ({"rank": [4, 8]}, ["unknown setting 'rank'", "Did you mean r?"]),
        ({"lora_alpha": [8, 16]}, ["unknown setting 'lora_alpha'", "Did you mean alpha?"]),
        ({"lr": [1e-4, 1e-3]}, ["unknown setting 'lr'", "Did you mean learning_rate?"]),
        ({"num_train_epochs": [1, 2]}, ["Did you mean epochs?"]),
        ({"zzz": [1, 2]}, ["unknown setting 'zzz'. Searchable training settings"]),
        (
            {"learning_rate": {"low": 1e-2, "high": 1e-5}},
            ["lower bound 0.01 is above the upper bound 1e-05", "swap"],
        ),
        (
            {"learning_rate": {"low": 0, "high": 1e-2, "log": True}},
            ["log scale needs a lower bound above zero", "1e-6"],
        ),
        (
            {"learning_rate": {"low": 0, "high": 1e-2}},
            ["'learning_rate'", "0.0 is not a valid learning_rate", "greater than 0"],
        ),
        ({"r": [4, 0]}, ["'r'", "0 is not a valid r"]),
        ({"r": {"low": 2.5, "high": 8}}, ["whole numbers"]),
        ({"epochs": [1, 2], "max_steps": [10, 20]}, ["both epochs and max_steps"]),
        ({"seed": [1, 2]}, ["unknown setting 'seed'"]),
        ({"learning_rate": 1e-4}, ["A single value is not a search"]),
        ({"r": [4]}, ["'r'", "[4] holds one value", "set it as a fixed option"]),
        ({"r": [4, 4]}, ["[4, 4] holds one value"]),
        ({"r": [4, 4.0]}, ["the choices [4, 4.0] are one value once read as r (4)"]),
        ({"target_modules": [["q"], ["q"]]}, ["holds one value"]),
        ({"learning_rate": {"low": 1e-4, "high": 1e-4}}, ["0.0001..0.0001 is a single value"]),
        ({"r": []}, ["choices is empty"]),
        # a misspelt key of a range: named, with the likeliest meant (letters swapped too)
        (
            {"learning_rate": {"low": 1e-5, "high": 1e-3, "lgo": True}},
            ["'learning_rate': lgo: not a setting here (did you mean 'log'?)", "low, high, log"],
        ),
        ({"learning_rate": {"low": 1e-5, "hi": 1e-3}}, ["hi: not a setting", "'high'"]),
        ({}, ["search space is empty", "--search"]),
    ],
)
def test_bad_spaces_are_refused_with_what_and_how(space: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(space)
    for word in words:
        assert word in str(caught.value)


def test_a_searched_epoch_count_is_refused_under_a_fixed_step_count() -> None:
    # max_steps would override every trial's epochs: the search would search nothing.
    with pytest.raises(ConfigError, match=r"epochs, but max_steps is fixed at 12 \(--max-steps"):
        resolve({"epochs": [1, 2]}, max_steps=12)
    assert resolve({"epochs": [1, 2]}).parameters[0].key == "training.epochs"


def test_bad_flag_specs_name_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"--search learning_rate=1e-2\.\.1e-5: the lower bound"):
        parse_spec("learning_rate", "1e-2..1e-5")
    with pytest.raises(ConfigError, match="unknown range flag 'lg'"):
        parse_spec("learning_rate", "1e-5..1e-2:lg")
    with pytest.raises(ConfigError, match=r"--search r=4: \[4\] holds one value") as caught:
        parse_spec("r", "4")
    assert "(a method option as --option r=4, a training setting by its flag)" in str(caught.value)
    with pytest.raises(ConfigError, match=r"the bound 'abc' is not a number; a range is written"):
        parse_spec("learning_rate", "abc..1e-2")
    with pytest.raises(ConfigError, match=r"--search r=4\.\.4: the range 4\.\.4 is a single"):
        parse_spec("r", "4..4")
    # a range written with a dash read as one value; the dash of an exponent is no range
    with pytest.raises(
        ConfigError, match=r"a range is written LOW\.\.HIGH: --search learning_rate=1e-5\.\.1e-2 "
    ):
        parse_spec("learning_rate", "1e-5-1e-2")
    with pytest.raises(ConfigError, match=r"--search r=4\.\.16 "):
        parse_spec("r", "4-16")


def test_choices_are_searched_as_the_field_reads_them() -> None:
    # YAML reads 1e-5 (no dot) as text: searched, stored and plotted as a word before
    written = parse_spec("learning_rate", "1e-5,1e-3")
    assert written == Dimension(choices=["1e-5", "1e-3"])
    (learning_rate,) = resolve({"learning_rate": written}).parameters
    assert learning_rate.dimension.choices == [1e-5, 1e-3]
    (rank,) = resolve({"r": ["4", 8]}).parameters  # a config file's quoted number
    assert rank.dimension.choices == [4, 8]


def test_a_cost_budget_needs_an_hourly_cost() -> None:
    with pytest.raises(ValueError, match="max_cost needs hourly_cost"):
        SweepOptions(max_cost=5)
    assert SweepOptions(max_cost=5, hourly_cost=2).max_cost == 5
    assert SweepOptions(max_time="1h30m").max_time == 5400


def test_the_sweep_options_say_what_is_better() -> None:
    assert SweepOptions(objective="rougeL").maximize
    assert not SweepOptions(objective="loss").maximize
    assert SweepOptions(trials=12).startup_trials() == 4
    assert SweepOptions(trials=3).startup_trials() == 2


def test_rungs_grow_by_the_factor_and_end_at_the_trial() -> None:
    from dialogsum.sweep.trials import rung_steps

    assert rung_steps(162, 18, 3) == [18, 54, 162]
    assert rung_steps(9, 1, 3) == [1, 3, 9]
    # 54 of 60 steps would be a rung that costs a scoring and stops little.
    assert rung_steps(60, 6, 3) == [6, 18, 60]
    assert rung_steps(5, 10, 3) == [5]
