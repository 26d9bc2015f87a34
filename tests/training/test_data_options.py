"""Data options left out are the model's own, even when others are given."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dialogsum import Summarizer
from dialogsum.data import DataOptions, Example
from dialogsum.modeling import MANIFEST_NAME, ModelManifest


def test_a_given_length_keeps_the_models_other_lengths_and_prompt(
    tiny_model_dir: Path, few_examples: list[Example], tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    own = DataOptions(prompt="Dialogue:\n{dialogue}\nSummary:", max_source_length=96,
                      max_target_length=24)  # fmt: skip
    (folder / MANIFEST_NAME).write_text(ModelManifest(data=own).model_dump_json())
    base = Summarizer.from_pretrained(folder, backend_options={"progress": False})
    base.finetune(
        few_examples,
        method="lora",
        options={"r": 2},
        output_dir=tmp_path / "run",
        training={"max_steps": 1, "batch_size": 2, "progress": False, "save_strategy": "no"},
        data={"max_source_length": 48},
    )
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert config["data"] == {**own.model_dump(), "max_source_length": 48}
