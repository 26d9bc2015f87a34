"""The commands as a new user runs them: config files written like flags, an empty input,
a folder as input, the bundled model as a base, and a help text for every flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialogsum import ConfigError
from dialogsum.cli import build_parser, main
from dialogsum.cli.config import TrainConfig, build_config


def test_a_config_file_may_use_the_flat_keys_of_the_flags(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(
        "train: t.jsonl\noutput_dir: run\nmax_steps: 10\nmax-source-length: 64\n"
        "learning_rate: 0.001\ntraining: {batch_size: 2}\n"
    )
    settings = build_config(TrainConfig, str(config), {"training": {"max_steps": 3}})
    assert settings.training.max_steps == 3  # the flag overrides the file
    assert settings.training.learning_rate == 0.001 and settings.training.batch_size == 2
    assert settings.data is not None and settings.data.max_source_length == 64
    config.write_text("train: t.jsonl\noutput_dir: run\nmax_stepz: 10\n")
    # A flat key misspelt: the key meant may be a section's, given flat.
    with pytest.raises(
        ConfigError,
        match=r"max_stepz: not a setting here \(did you mean 'max_steps'\?\); valid here: .*output_dir",
    ):
        build_config(TrainConfig, str(config), {})
    config.write_text("train: t.jsonl\noutput_dir: run\ntraining: {lerning_rate: 0.1}\n")
    with pytest.raises(ConfigError) as raised:
        build_config(TrainConfig, str(config), {})
    # Inside a section: the section's own keys.
    message = str(raised.value)
    assert "training.lerning_rate: not a setting here (did you mean 'learning_rate'?)" in message
    assert "valid here: epochs, max_steps, learning_rate" in message
    # A name other tools use for a setting (transformers' num_train_epochs, peft's lora_alpha),
    # in its section or flat: the setting's own name is given.
    config.write_text("train: t.jsonl\noutput_dir: run\ntraining: {num_train_epochs: 2}\n")
    with pytest.raises(
        ConfigError, match=r"num_train_epochs: not a setting here \(did you mean 'epochs'\?\)"
    ):
        build_config(TrainConfig, str(config), {})
    config.write_text("train: t.jsonl\noutput_dir: run\nlr: 0.1\n")
    with pytest.raises(
        ConfigError, match=r"lr: not a setting here \(did you mean 'learning_rate'\?\)"
    ):
        build_config(TrainConfig, str(config), {})


def test_a_flat_key_two_sections_share_is_sent_to_one_of_them(tmp_path: Path) -> None:
    from dialogsum.cli.config import SweepConfig

    config = tmp_path / "sweep.yaml"
    config.write_text("train: t.jsonl\neval: e.jsonl\noutput_dir: out\nseed: 3\n")
    with pytest.raises(ConfigError) as raised:
        build_config(SweepConfig, str(config), {"space": {"r": [2, 4]}})
    message = str(raised.value)
    assert "seed: more than one section has this setting" in message, message
    assert "training: {seed: ...} or sweep: {seed: ...}" in message
    assert "did you mean 'seed'" not in message


def test_summarizing_an_empty_file_is_an_error(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert main(["summarize", "--model", str(tiny_model_dir), "--input", str(empty)]) == 2
    assert "no examples found" in capsys.readouterr().err


def test_summarize_reads_a_folder_and_takes_no_progress(
    tiny_model_dir: Path, sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out.jsonl"
    args = [
        "summarize",
        "--model",
        str(tiny_model_dir),
        "--input",
        str(sample_dir),
        "--output",
        str(output),
        "--max-new-tokens",
        "2",
        "--no-progress",
        "--batch-size",
        "40",
    ]
    assert main(args) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 40 and rows[0]["id"] == "test_0"  # the folder's test split
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_the_cli_takes_the_bundled_base_too(
    bundled_lora_dir: Path, sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate", "--model", str(bundled_lora_dir), "--data", str(sample_dir / "test.jsonl")]
    assert main([*args, "--max-new-tokens", "2", "--base-model", "dialogsum-tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 40
    compare = [
        "compare",
        "--model",
        str(bundled_lora_dir),
        "--base-model",
        "dialogsum-tiny",
        "--data",
        str(sample_dir),
        "--limit",
        "2",
        "--output",
        str(tmp_path / "cmp"),
        "--max-new-tokens",
        "2",
    ]
    assert main(compare) == 0, capsys.readouterr().err


def test_every_flag_of_every_command_says_what_it_does() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    missing = [
        f"{name} {'/'.join(action.option_strings)}"
        for name, command in commands.items()
        for action in command._actions
        if action.option_strings and action.dest != "help" and not action.help
    ]
    assert missing == []
