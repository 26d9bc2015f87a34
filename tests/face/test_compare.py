"""Comparing models side by side: ROUGE and the summaries, as markdown and as a web page."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogsum import Summarizer
from dialogsum.cli import main


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> Summarizer:
    return Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})


def test_compare_writes_markdown_and_html(
    base: Summarizer, few_examples, tmp_path: Path, sample_dir: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    tuned = base.finetune(
        few_examples,
        method="full",
        training={"max_steps": 2, "progress": False, "save_strategy": "no"},
    )
    saved = tuned.save(tmp_path / "tuned")
    code = main(
        [
            "compare",
            "--model",
            str(base.source),
            "--model",
            str(saved),
            "--data",
            str(sample_dir),
            "--limit",
            "4",
            "--show",
            "2",
            "--output",
            str(tmp_path / "cmp"),
            "--max-new-tokens",
            "6",
        ]
    )
    assert code == 0
    markdown = (tmp_path / "cmp.md").read_text()
    assert markdown.startswith("## ROUGE on 4 dialogues")
    assert markdown.count("| human baseline |") == 2 and str(saved) in markdown
    page = (tmp_path / "cmp.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<th>human baseline</th>") == 2
    # One model twice is a slip, told before anything loads; a dotted name keeps its dot.
    twice = [
        "compare",
        "--model",
        "dialogsum-tiny",
        "--model",
        "dialogsum-tiny",
        "--data",
        str(sample_dir),
        "--output",
        str(tmp_path / "again"),
    ]
    assert main(twice) == 2 and "given more than once" in capsys.readouterr().err
    dotted = [
        "compare",
        "--model",
        str(saved),
        "--data",
        str(sample_dir),
        "--limit",
        "1",
        "--max-new-tokens",
        "2",
        "--output",
        str(tmp_path / "results.v2"),
    ]
    assert main(dotted) == 0
    assert (tmp_path / "results.v2.md").is_file() and (tmp_path / "results.v2.html").is_file()
