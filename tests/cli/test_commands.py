"""Smaller things a new user tripped over: config files written like flags, empty inputs,
noisy logs, hints that name a command that is not on PATH, flags without help, and writes that
an interrupt or a full disk must not half-finish."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dialogsum import ConfigError, DialogsumError, Summarizer
from dialogsum.cli import build_parser, main
from dialogsum.cli.config import TrainConfig, build_config
from dialogsum.files import write_text


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
    with pytest.raises(ConfigError, match=r"max_stepz: Extra inputs are not permitted"):
        build_config(TrainConfig, str(config), {})


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
    args = ["summarize", "--model", str(tiny_model_dir), "--input", str(sample_dir),
            "--output", str(output), "--max-new-tokens", "2", "--no-progress", "--batch-size", "40"]
    assert main(args) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 40 and rows[0]["id"] == "test_0"  # the folder's test split
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


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


def test_int8_export_logs_no_library_chatter(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("optimum.exporters.onnx")
    command = [sys.executable, "-m", "dialogsum", "export", "--model", str(tiny_model_dir),
               "--output", str(tmp_path / "int8"), "--quantize", "int8"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "INFO root" not in result.stderr
    assert len(result.stderr.splitlines()) < 15, result.stderr


def test_the_quickstart_hint_names_a_command_that_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dialogsum import quickstart

    script = tmp_path / "venv" / "bin" / "dialogsum"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "argv", [str(script), "quickstart"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert quickstart.command_name() == str(script.resolve())
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin")
    os.chmod(script, 0o755)
    assert quickstart.command_name() == "dialogsum"


def test_ctrl_c_during_a_save_leaves_the_folder_as_it_was(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summarizer = Summarizer.from_pretrained(tiny_model_dir)
    target = summarizer.save(tmp_path / "model")
    before = sorted(p.name for p in target.iterdir())
    config = (target / "config.json").read_text()

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(type(summarizer.tokenizer), "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        summarizer.save(target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == before
    assert (target / "config.json").read_text() == config
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left


def test_a_full_disk_leaves_the_previous_state_and_says_so(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = write_text(tmp_path / "metrics.json", '{"old": true}')
    summarizer = Summarizer.from_pretrained(tiny_model_dir)
    target = summarizer.save(tmp_path / "model")

    def full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DialogsumError, match=r"disk or your quota is full.*intact"):
        write_text(report, '{"new": true}')
    assert report.read_text() == '{"old": true}'
    monkeypatch.setattr(type(summarizer.tokenizer), "save_pretrained", full)
    with pytest.raises(DialogsumError, match=r"disk or your quota is full"):
        summarizer.save(target, overwrite=True)
    assert (target / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "model"]
