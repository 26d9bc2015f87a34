"""Run reports (loss curve, model card, config, metrics) and estimates before spending."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialogsum import Summarizer
from dialogsum.cli import main
from dialogsum.errors import ConfigError
from dialogsum.training.estimates import format_duration


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> Summarizer:
    return Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})


def test_run_folder_has_the_full_report(base: Summarizer, few_examples, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    base.finetune(
        few_examples,
        method="lora",
        options={"r": 4},
        eval_data=few_examples[:3],
        output_dir=run,
        training={
            "max_steps": 4,
            "batch_size": 4,
            "logging_steps": 1,
            "progress": False,
            "hourly_cost": 3.0,
        },
    )
    png = (run / "loss_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    card = (run / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: dialogsum\nbase_model: ")
    assert "- lora" in card and "type: rouge1, value:" in card
    for needle in (
        "| method | `lora` (r=4",
        "| training data | an in-memory list (8 rows, sha256 ",
        "| wall time |",
        "| samples/s |",
        "| hardware |",
        "| cost |",
        "at 3 per hour",
    ):
        assert needle in card, needle
    assert (run / "model" / "README.md").read_text() == card
    config = json.loads((run / "train_config.json").read_text())
    assert config["training"]["hourly_cost"] == 3.0 and config["training"]["learning_rate"] == 1e-3
    assert "learning_rate" not in config  # one learning rate, in the training options
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["wall_seconds"] > 0 and "eval_rouge1" in metrics


def test_estimate_projects_the_whole_run(base: Summarizer, sample_dir: Path) -> None:
    estimate = base.estimate(
        sample_dir / "train.jsonl",
        method="lora",
        steps=2,
        training={"epochs": 3, "batch_size": 8, "progress": False, "hourly_cost": 2.0},
        data={"max_source_length": 64},
    )
    assert estimate.total_steps == 3 * 25 and estimate.examples == 200
    assert estimate.measured_steps == 2 and estimate.seconds_per_step > 0
    assert estimate.seconds == pytest.approx(estimate.seconds_per_step * 75)
    assert estimate.cost == pytest.approx(estimate.seconds / 3600 * 2.0)
    assert "75 steps" in estimate.message() and "costing about" in estimate.message()
    with pytest.raises(ConfigError, match="at least one measured step"):
        base.estimate(sample_dir / "train.jsonl", steps=0)


def test_estimate_from_the_cli_trains_nothing(
    tiny_model_dir: Path, sample_dir: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    code = main(
        [
            "train",
            "--model",
            str(tiny_model_dir),
            "--train",
            str(sample_dir / "train.jsonl"),
            "--output-dir",
            str(tmp_path / "run"),
            "--estimate",
            "--estimate-steps",
            "2",
            "--max-steps",
            "1000",
            "--hourly-cost",
            "1.5",
            "--max-source-length",
            "64",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "The run is 1,000 steps" in out
    assert json.loads(out[out.index("{") :])["total_steps"] == 1000
    assert not (tmp_path / "run").exists()


def test_format_duration() -> None:
    assert format_duration(5412) == "1 h 30 min"
    assert format_duration(360000) == "100 h 0 min"
    assert format_duration(90) == "1 min 30 s" and format_duration(12) == "12 s"
    assert format_duration(120.4) == "2 min" and format_duration(1500) == "25 min"


def test_estimate_warns_when_the_machine_is_busy() -> None:
    from dialogsum.training.estimates import Estimate

    common = {
        "measured_steps": 3,
        "seconds_per_step": 2.0,
        "total_steps": 10,
        "examples": 80,
        "hardware": "cpu",
    }
    busy = Estimate(**common, load_before=64.0)  # type: ignore[arg-type]
    idle = Estimate(**common, load_before=0.0)  # type: ignore[arg-type]
    assert "already busy when measuring (load average 64.0" in busy.message()
    assert "busy" not in idle.message() and idle.as_dict()["load_before"] == 0.0
