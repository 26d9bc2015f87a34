"""``dialogsum compare``'s pages name the data they scored: path, split, rows, hash, limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogsum.cli import main
from dialogsum.data import load_examples


def test_the_pages_name_the_data_the_split_and_the_limit(
    tiny_model_dir: Path, sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["compare", "--model", str(tiny_model_dir), "--data", str(sample_dir),
                 "--split", "test", "--limit", "2", "--show", "1", "--max-new-tokens", "2",
                 "--output", str(tmp_path / "page")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    digest = load_examples(sample_dir, "test").provenance.sha256
    line = (
        f"Data: {sample_dir.resolve()}, split test (test.jsonl, 40 rows, sha256 {digest[:12]}); "
        f"scored the first 2 of its 40 dialogues."
    )
    markdown = (tmp_path / "page.md").read_text()
    assert line in markdown.splitlines()
    assert markdown.index(line) < markdown.index("| model |")  # above the scores it explains
    assert f"<p>{line}</p>" in (tmp_path / "page.html").read_text()
