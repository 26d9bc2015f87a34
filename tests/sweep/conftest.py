"""The sweep tests' data and model: a few training dialogues, four validation ones, and the
tiny in-process model on the torch backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialogsum import Summarizer
from dialogsum.data import Example


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory, few_examples: list[Example]) -> Path:
    folder = tmp_path_factory.mktemp("sweep-data")
    for name, rows in (("train", few_examples), ("validation", few_examples[:4])):
        lines = [json.dumps({"dialogue": e.dialogue, "summary": e.references[0]}) for e in rows]
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> Summarizer:
    return Summarizer.from_pretrained(tiny_model_dir, backend="torch")
