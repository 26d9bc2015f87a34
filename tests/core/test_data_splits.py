"""Split names of a data folder: every alias docs/usage.md lists finds its split's file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialogsum.data import load_examples
from dialogsum.errors import DataError

ROW = {"dialogue": "#Person1#: Hi.", "summary": "A greeting."}


def folder_with(tmp_path: Path, name: str) -> Path:
    (tmp_path / name).write_text(json.dumps(ROW) + "\n")
    return tmp_path


@pytest.mark.parametrize("alias", ["dev", "val", "valid", "validation"])
def test_every_alias_of_validation_finds_validation_jsonl(tmp_path: Path, alias: str) -> None:
    folder = folder_with(tmp_path, "validation.jsonl")
    loaded = load_examples(folder, alias)
    assert [example.dialogue for example in loaded] == [ROW["dialogue"]]
    assert loaded.provenance.file == str((folder / "validation.jsonl").resolve())


def test_validation_finds_a_dev_file(tmp_path: Path) -> None:
    assert len(load_examples(folder_with(tmp_path, "dev.jsonl"), "validation")) == 1


def test_a_missing_split_names_the_files_looked_for(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, "train.jsonl")
    with pytest.raises(DataError, match=r"split 'dev' \(looked for dev.jsonl, validation.jsonl"):
        load_examples(folder, "dev")
