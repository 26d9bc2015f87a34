"""A short run's loss curve has enough points to be a curve; a long run logs every 10 steps."""

from __future__ import annotations

import json
from pathlib import Path

from dialogsum import Summarizer
from dialogsum.data import Example
from dialogsum.training.options import default_logging_steps


def test_the_default_interval_gives_at_least_20_points() -> None:
    for total in (1, 7, 24, 40, 100, 199, 200, 1000, 50_000):
        steps = default_logging_steps(total)
        assert 1 <= steps <= 10
        assert total // steps >= min(20, total)


def test_a_short_run_logs_every_step(
    tiny_model_dir: Path, few_examples: list[Example], tmp_path: Path
) -> None:
    base = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    tuned = base.finetune(
        few_examples,
        method="lora",
        options={"r": 2},
        output_dir=tmp_path / "run",
        training={"max_steps": 24, "batch_size": 2, "progress": False, "save_strategy": "no"},
        data={"max_source_length": 48, "max_target_length": 16},
    )
    assert tuned.training is not None
    assert len(tuned.training.losses) == 24  # every 10 steps would draw 3 points
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert config["training"]["logging_steps"] == 1
