"""Runs that can be reproduced and resumed exactly: same seed, same weights; kill -9, resume,
same result; a damaged newest checkpoint skipped; advice that points to resuming."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dialogsum import ConfigError, Summarizer
from dialogsum.cli import main
from dialogsum.errors import install_command

from ..training_runs import (
    adapter_weights,
    environment,
    losses,
    max_difference,
    train,
    train_command,
)


def test_the_same_seed_gives_the_same_weights_bit_for_bit(
    lora_run_dir: Path, tiny_model_dir: Path, sample_dir: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    result = train(tiny_model_dir, sample_dir / "validation.jsonl", again)
    assert result.returncode == 0, result.stderr[-3000:]
    assert max_difference(adapter_weights(lora_run_dir), adapter_weights(again)) == 0.0
    assert losses(lora_run_dir) == losses(again)


def test_kill_9_then_resume_gives_the_uninterrupted_result(
    lora_run_dir: Path, tiny_model_dir: Path, sample_dir: Path, tmp_path: Path
) -> None:
    seed = int(os.environ.get("DIALOGSUM_KILL_SEED", "20261126"))
    kill_after = random.Random(seed).randint(2, 10)
    run_dir = tmp_path / "killed"
    command = train_command(tiny_model_dir, sample_dir / "validation.jsonl", run_dir)
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment()
    )
    marker = run_dir / "checkpoints" / f"checkpoint-{kill_after}" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"the run ended before step {kill_after}"
    assert not (run_dir / "model").exists()

    # Re-running without resuming must point to resuming, not to --overwrite.
    advice = train(tiny_model_dir, sample_dir / "validation.jsonl", run_dir)
    assert advice.returncode == 2
    assert "did not finish" in advice.stderr and "--resume-from-checkpoint" in advice.stderr

    resumed = train(
        tiny_model_dir, sample_dir / "validation.jsonl", run_dir, "--resume-from-checkpoint"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    difference = max_difference(adapter_weights(lora_run_dir), adapter_weights(run_dir))
    assert difference <= 1e-6, f"killed after step {kill_after} (seed {seed}): {difference}"
    assert losses(run_dir) == losses(lora_run_dir), kill_after  # logged rounded: equal
    expected = json.loads((lora_run_dir / "metrics.json").read_text())["train_loss"]
    assert json.loads((run_dir / "metrics.json").read_text())["train_loss"] == pytest.approx(
        expected, abs=1e-6
    )


FAST = {"batch_size": 4, "progress": False, "logging_steps": 1, "learning_rate": 1e-2}


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> Summarizer:
    return Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})


def test_overwrite_starts_a_new_run_instead_of_resuming_the_old_one(
    base: Summarizer, few_examples, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    steps = {**FAST, "save_strategy": "steps", "save_steps": 2, "save_total_limit": 10}
    base.finetune(few_examples, method="lora", output_dir=run, training={**steps, "max_steps": 6})
    assert (run / "checkpoints" / "checkpoint-6").is_dir()
    base.finetune(
        few_examples,
        method="lora",
        output_dir=run,
        overwrite=True,
        training={**steps, "max_steps": 2, "seed": 7},
    )
    assert [p.name for p in sorted((run / "checkpoints").glob("checkpoint-*"))] == ["checkpoint-2"]
    resumed = base.finetune(
        few_examples,
        method="lora",
        output_dir=run,
        training={**steps, "max_steps": 4, "seed": 7, "resume_from_checkpoint": True},
    )
    assert resumed.training.metrics["global_step"] == 4  # type: ignore[union-attr]
    assert len(resumed.training.losses) >= 4  # type: ignore[union-attr]


def test_a_truncated_newest_checkpoint_is_skipped_and_named(
    base: Summarizer, few_examples, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    steps = {**FAST, "save_strategy": "steps", "save_steps": 2, "save_total_limit": 10}
    base.finetune(few_examples, method="lora", output_dir=run, training={**steps, "max_steps": 4})
    newest = run / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # as a kill -9 mid-save leaves it
    with pytest.raises(ConfigError, match=r"Cannot resume from .*checkpoint-4: adapter_model"):
        base.finetune(
            few_examples,
            method="lora",
            output_dir=run,
            training={**steps, "max_steps": 6, "resume_from_checkpoint": str(newest.parent)},
        )
    caplog.set_level("INFO", logger="dialogsum")
    resumed = base.finetune(
        few_examples,
        method="lora",
        output_dir=run,
        training={**steps, "max_steps": 6, "resume_from_checkpoint": True},
    )
    assert "skipping damaged checkpoint" in caplog.text and "checkpoint-4" in caplog.text
    assert "resuming from" in caplog.text and "checkpoint-2" in caplog.text
    assert resumed.training.metrics["global_step"] == 6  # type: ignore[union-attr]


def test_a_checkpoint_killed_before_its_state_was_written_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dialogsum.training.checkpoints import STATE_FILE, resume_point

    for step in (2, 4):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    # The Trainer's files of checkpoint-4 are whole; the kill came before dialogsum's state.
    (tmp_path / "checkpoint-2" / STATE_FILE).write_text(json.dumps({"loss_sum": 1.5}))
    caplog.set_level("INFO", logger="dialogsum")
    assert resume_point(tmp_path, True) == tmp_path / "checkpoint-2"
    assert f"checkpoint-4: {STATE_FILE} is missing" in caplog.text
    # A run whose checkpoints never carried the state (older versions) still resumes.
    (tmp_path / "checkpoint-2" / STATE_FILE).unlink()
    assert resume_point(tmp_path, True) == tmp_path / "checkpoint-4"


def test_the_run_card_says_how_many_steps_ran(
    base: Summarizer, few_examples, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    base.finetune(
        few_examples,
        method="lora",
        output_dir=run,
        training={**FAST, "max_steps": 3, "save_strategy": "no"},
    )
    card = (run / "README.md").read_text()
    assert "| steps | 3 of max_steps 3 (1.50 epochs) |" in card
    assert "3.0 / -" not in card


def test_report_to_an_integration_that_is_not_installed(
    base: Summarizer, few_examples, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from transformers.integrations import integration_utils

    from dialogsum import MissingDependencyError

    monkeypatch.setattr(integration_utils, "is_tensorboard_available", lambda: False)
    with pytest.raises(MissingDependencyError, match=re.escape(install_command("tensorboard"))):
        base.finetune(few_examples, training={**FAST, "max_steps": 1, "report_to": "tensorboard"})
    with pytest.raises(ConfigError, match=r"report_to 'tensorbored' is not an integration"):
        base.finetune(few_examples, training={**FAST, "max_steps": 1, "report_to": "tensorbored"})


def test_the_cli_flag_alone_means_resume(tmp_path: Path) -> None:
    from dialogsum.cli import build_parser
    from dialogsum.cli.config import TrainConfig, build_config, flags_to_settings

    base_args = ["train", "--train", "t.jsonl", "--output-dir", "r"]
    for extra, expected in (
        ([], False),
        (["--resume-from-checkpoint"], True),
        (["--resume-from-checkpoint", "r/checkpoints/checkpoint-2"], "r/checkpoints/checkpoint-2"),
        (["--eval-strategy", "no"], False),
    ):
        args = build_parser().parse_args([*base_args, *extra])
        config = build_config(TrainConfig, None, flags_to_settings(args))
        assert config.training.resume_from_checkpoint == expected
    args = build_parser().parse_args([*base_args, "--eval-strategy", "no"])
    assert build_config(TrainConfig, None, flags_to_settings(args)).training.eval_strategy == "no"
    assert main(["train", "--train", str(tmp_path / "t.jsonl"), "--output-dir", "r"]) == 2


def test_a_resume_with_other_settings_is_refused_before_anything_loads(
    base: Summarizer, few_examples, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    steps = {**FAST, "save_strategy": "steps", "save_steps": 2, "max_steps": 2}
    base.finetune(few_examples, method="lora", output_dir=run, options={"r": 8}, training=steps)
    resume = {**steps, "resume_from_checkpoint": True}
    for method, options, training, changed in (
        ("lora", {"r": 4}, resume, "options.r: 8 then, 4 now"),  # was a state_dict traceback
        ("prompt_tuning", {}, resume, "method: 'lora' then, 'prompt_tuning' now"),
        ("lora", {"r": 8}, {**resume, "batch_size": 2}, "training.batch_size: 4 then, 2 now"),
        ("lora", {"r": 8}, {**resume, "learning_rate": 0.5}, "learning_rate: 0.01 then, 0.5"),
    ):
        with pytest.raises(ConfigError, match="started with other settings") as refused:
            base.finetune(
                few_examples, method=method, output_dir=run, options=options, training=training
            )
        assert changed in str(refused.value)
    with pytest.raises(ConfigError, match=r"train_digest"):
        base.finetune(
            few_examples[:-1], method="lora", output_dir=run, options={"r": 8}, training=resume
        )
    # Training longer, or logging and budgets, may change on a resume.
    longer = base.finetune(
        few_examples,
        method="lora",
        output_dir=run,
        options={"r": 8},
        training={**resume, "max_steps": 4, "logging_steps": 2},
    )
    assert longer.training.metrics["global_step"] == 4  # type: ignore[union-attr]


def test_a_run_that_fails_before_its_first_checkpoint_leaves_the_folder_reusable(
    base: Summarizer, few_examples, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import dialogsum.training.run as run_module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory")

    run = tmp_path / "run"
    with monkeypatch.context() as patched:
        patched.setattr(run_module, "train", broken)
        with pytest.raises(RuntimeError, match="out of memory"):
            base.finetune(
                few_examples, method="lora", output_dir=run, training={**FAST, "max_steps": 1}
            )
    assert not (run / "checkpoints").exists()
    tuned = base.finetune(
        few_examples, method="lora", output_dir=run, training={**FAST, "max_steps": 1}
    )
    assert (run / "model").is_dir() and (run / "checkpoints" / "run_config.json").is_file()
    assert tuned.method == "lora"


def test_a_run_recorded_with_two_learning_rates_resumes_and_compares_the_one(
    tmp_path: Path,
) -> None:
    # Records written before the plan kept one learning rate held the resolved rate beside the
    # training options (None there when the method's default applied).
    from dialogsum.training.checkpoints import RUN_RECORD, check_resumed_run

    old = {
        "method": "lora",
        "learning_rate": 0.01,
        "training": {"learning_rate": None, "epochs": 1},
    }
    (tmp_path / RUN_RECORD).write_text(json.dumps(old))
    now = {"method": "lora", "training": {"learning_rate": 0.01, "epochs": 1}}
    check_resumed_run(tmp_path, now)  # the same run: no change reported
    changed = {"method": "lora", "training": {"learning_rate": 0.5, "epochs": 1}}
    with pytest.raises(ConfigError, match=r"training\.learning_rate: 0\.01 then, 0\.5 now"):
        check_resumed_run(tmp_path, changed)
