"""What the quickstart tells: a sample size it cannot honour, and what tuning changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogsum.cli import main
from dialogsum.data import Example
from dialogsum.quickstart import QuickstartResult, render


def test_more_samples_than_the_data_holds_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The shipped sample holds 200 train and 40 test dialogues. The model is missing, so the
    # command stops right after reading the data: the note comes before any work.
    code = main(["quickstart", "--model", str(tmp_path / "no-model"), "--output",
                 str(tmp_path / "qs"), "--train-samples", "100000", "--test-samples", "1000"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 2
    assert (
        "note: --train-samples 100000, but the data holds 200 train dialogues; using all 200."
        in out
    )
    assert "note: --test-samples 1000, but the data holds 40 test dialogues; using all 40." in out


def test_the_dialogues_shown_are_those_tuning_changed_most() -> None:
    examples = [
        Example(f"#Person1#: dialogue {i}.", (f"reference {i}",), f"d{i}") for i in range(5)
    ]
    original = ["a b c d", "a b c d", "a b c d", "a b c d", "a b c d"]
    tuned = ["a b c d", "a b c x", "a b c d", "w x y z", "a b c d"]
    result = QuickstartResult(
        examples=examples,
        predictions={"original": original, "tuned (PyTorch)": tuned},
        scores={name: dict.fromkeys(("rouge1", "rouge2", "rougeL", "rougeLsum"), 0.0)
                for name in ("original", "tuned (PyTorch)")},
    )  # fmt: skip
    text = render(result, show=2)
    assert "Tuning changed 2 of the 5 test summaries" in text
    shown = [line for line in text.splitlines() if line.startswith("Dialogue ")]
    assert shown == ["Dialogue 4 of 5 (d3):", "Dialogue 2 of 5 (d1):"]  # most changed first
