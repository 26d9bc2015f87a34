"""Sampling options without sampling: an error naming the option and do_sample, never ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogsum.cli import main
from dialogsum.errors import ConfigError
from dialogsum.generation import GenerationOptions, parse_generation


@pytest.mark.parametrize("option", [{"temperature": 0.3}, {"top_p": 0.5}, {"top_k": 5}])
def test_a_sampling_option_without_do_sample_is_an_error(option: dict[str, float]) -> None:
    name, value = next(iter(option.items()))
    with pytest.raises(
        ConfigError, match=rf"{name}={value} applies only when sampling.*do_sample=True"
    ):
        parse_generation(option)
    with pytest.raises(ValueError, match=rf"{name}={value}"):
        GenerationOptions(**option)
    assert getattr(parse_generation({**option, "do_sample": True}), name) == value


def test_defaults_and_the_models_own_sampling_settings_pass() -> None:
    # Every field at its default, as a full dump of options carries them: nothing was asked.
    assert parse_generation(GenerationOptions().model_dump()).do_sample is False
    # A model saved with sampling settings is decoded greedily when the caller turns it off.
    saved = {"do_sample": True, "temperature": 0.7, "top_k": 20, "num_beams": 1}
    greedy = parse_generation({"do_sample": False}, saved)
    assert greedy.do_sample is False and greedy.temperature == 1.0
    assert parse_generation({}, saved).temperature == 0.7
    # ... but the caller's own temperature over such a model, without sampling, still fails.
    with pytest.raises(ConfigError, match=r"temperature=0.2 applies only when sampling"):
        parse_generation({"do_sample": False, "temperature": 0.2}, saved)


def test_the_command_line_refuses_it_before_loading_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["summarize", "--model", str(tmp_path / "no-model"), "--temperature", "0.5"])
    error = capsys.readouterr().err
    assert code == 2
    assert "temperature=0.5 applies only when sampling" in error and "--do-sample" in error


@pytest.mark.parametrize(
    ("written", "meant"),
    [("max_length", "max_new_tokens"), ("min_length", "min_new_tokens"), ("rank", None)],
)
def test_transformers_length_names_are_told_dialogsums(written: str, meant: str | None) -> None:
    """transformers' generate takes max_length and min_length; a request written that way
    hears which option is meant (which counts the summary's tokens alone)."""
    with pytest.raises(ConfigError) as raised:
        parse_generation({written: 5})
    message = str(raised.value)
    assert f"{written}: not a setting here" in message and "max_new_tokens" in message
    assert (f"did you mean '{meant}'?" in message) if meant else "did you mean" not in message
