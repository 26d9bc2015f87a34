"""A run records where its data came from (path, split, rows, hash) and its model card shows it;
a resume compares what the data holds, not where it was read from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dialogsum.cli import main
from dialogsum.data import load_examples

RUN = ["--method", "lora", "--option", "r=4", "--batch-size", "4", "--no-progress",
       "--max-source-length", "64", "--max-target-length", "16", "--save-strategy", "steps",
       "--save-steps", "1", "--logging-steps", "1"]  # fmt: skip


def test_a_run_records_and_shows_its_train_and_eval_data(
    tiny_model_dir: Path,
    sample_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "small").mkdir()
    shutil.copy(sample_dir / "validation.jsonl", tmp_path / "small" / "train.jsonl")
    (tmp_path / "dev").mkdir()
    shutil.copy(sample_dir / "validation.jsonl", tmp_path / "dev" / "validation.jsonl")
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--model", str(tiny_model_dir), "--train", "small/train.jsonl",
                 "--eval", "dev", "--output-dir", "run", "--max-steps", "1", *RUN])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    digest = load_examples(sample_dir / "validation.jsonl").provenance.sha256

    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert config["train_data"] == {
        "kind": "file",
        "location": str(tmp_path.resolve() / "small" / "train.jsonl"),
        "split": None,
        "file": None,
        "rows": 40,
        "sha256": digest,
    }
    assert config["eval_data"] == {
        "kind": "folder",
        "location": str(tmp_path.resolve() / "dev"),
        "split": "validation",
        "file": str(tmp_path.resolve() / "dev" / "validation.jsonl"),
        "rows": 40,
        "sha256": digest,
    }
    card = (tmp_path / "run" / "README.md").read_text()
    train_row = (
        f"| training data | {tmp_path.resolve() / 'small' / 'train.jsonl'} (40 rows, sha256 "
    )
    assert train_row + digest[:12] + "); 40 pairs |" in card
    eval_row = (
        f"| validation data | {tmp_path.resolve() / 'dev'}, split validation (validation.jsonl"
    )
    assert eval_row in card
    assert (
        f'dataset: {{name: "{tmp_path.resolve() / "dev"}", type: dialogsum, split: "validation"}}'
        in card
    )
    assert "in-memory" not in card

    # What the resume compares leaves out where the data was read from: the same rows, moved,
    # resume, and the run records where they are now.
    record = json.loads((tmp_path / "run" / "checkpoints" / "run_config.json").read_text())
    assert "train_data" not in record and "eval_data" not in record
    assert record["train_examples"] == 40 and record["train_digest"]
    shutil.move(tmp_path / "small", tmp_path / "moved")
    code = main(["train", "--model", str(tiny_model_dir), "--train", "moved/train.jsonl",
                 "--eval", "dev", "--output-dir", "run", "--max-steps", "2",
                 "--resume-from-checkpoint", *RUN])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert config["train_data"]["location"] == str(tmp_path.resolve() / "moved" / "train.jsonl")
    assert config["train_data"]["sha256"] == digest
