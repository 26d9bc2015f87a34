"""Resumes that cannot be honest are refused before training: a checkpoint already past the
asked ``max_steps`` (it trained on and wrote a wrong ``train_loss``), and ``overwrite`` given
with ``resume_from_checkpoint`` (it silently resumed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dialogsum import ConfigError, Summarizer
from dialogsum.cli import main

FAST = {"batch_size": 4, "progress": False, "logging_steps": 1, "learning_rate": 1e-2}
CHECKPOINTED = {**FAST, "save_strategy": "steps", "save_steps": 1, "save_total_limit": 10}


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> Summarizer:
    return Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})


@pytest.fixture
def stopped_run(base: Summarizer, few_examples, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A run of 4 steps whose model was removed: as a run killed after checkpoint-4 leaves it."""
    run = tmp_path / "run"
    base.finetune(
        few_examples, method="lora", output_dir=run, training={**CHECKPOINTED, "max_steps": 4}
    )
    shutil.rmtree(run / "model")
    for name in ("metrics.json", "README.md"):
        (run / name).unlink(missing_ok=True)
    return run


def test_resuming_past_a_smaller_max_steps_is_refused_and_says_what_to_do(
    base: Summarizer, few_examples, stopped_run: Path
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as refused:
        base.finetune(
            few_examples,
            method="lora",
            output_dir=stopped_run,
            training={**CHECKPOINTED, "max_steps": 2, "resume_from_checkpoint": True},
        )
    message = str(refused.value)
    assert "checkpoint-4" in message and "step 4" in message and "max_steps 2" in message
    assert "max_steps 4" in message  # what to do: at least the checkpoint's step
    # Nothing was trained or written: no step 5, no model with a wrong loss.
    assert not (stopped_run / "checkpoints" / "checkpoint-5").exists()
    assert not (stopped_run / "model").exists()
    assert not (stopped_run / "metrics.json").exists()


def test_resuming_at_exactly_the_checkpoints_step_finishes_with_its_loss(
    base: Summarizer, few_examples, stopped_run: Path
) -> None:  # type: ignore[no-untyped-def]
    resumed = base.finetune(
        few_examples,
        method="lora",
        output_dir=stopped_run,
        training={**CHECKPOINTED, "max_steps": 4, "resume_from_checkpoint": True},
    )
    metrics = resumed.training.metrics  # type: ignore[union-attr]
    assert metrics["global_step"] == 4
    assert not (stopped_run / "checkpoints" / "checkpoint-5").exists()
    state = json.loads(
        (stopped_run / "checkpoints" / "checkpoint-4" / "dialogsum_state.json").read_text()
    )
    assert metrics["train_loss"] == pytest.approx(state["loss_sum"] / 4, rel=1e-6)


def test_overwrite_with_resume_is_a_conflict_in_python(
    base: Summarizer, few_examples, stopped_run: Path
) -> None:  # type: ignore[no-untyped-def]
    for resume in (True, str(stopped_run / "checkpoints" / "checkpoint-2")):
        with pytest.raises(ConfigError, match=r"overwrite=True.*resume_from_checkpoint") as refused:
            base.finetune(
                few_examples,
                method="lora",
                output_dir=stopped_run,
                overwrite=True,
                training={**CHECKPOINTED, "max_steps": 6, "resume_from_checkpoint": resume},
            )
        assert "not both" in str(refused.value)
    # Nothing was resumed, nor thrown away.
    assert (stopped_run / "checkpoints" / "checkpoint-4").is_dir()
    assert not (stopped_run / "checkpoints" / "checkpoint-5").exists()


def test_overwrite_with_resume_is_a_conflict_on_the_command_line_before_loading(
    stopped_run: Path,
    sample_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Summarizer, "from_pretrained", no_loading)
    status = main(
        [
            "train",
            "--model",
            "dialogsum-tiny",
            "--train",
            str(sample_dir / "validation.jsonl"),
            "--output-dir",
            str(stopped_run),
            "--overwrite",
            "--resume-from-checkpoint",
            "--max-steps",
            "6",
        ]
    )
    error = capsys.readouterr().err
    assert status == 2
    assert "--overwrite" in error and "--resume-from-checkpoint" in error
    assert error.startswith("dialogsum train: error:") and error.count("\n") == 1
    assert (stopped_run / "checkpoints" / "checkpoint-4").is_dir()
