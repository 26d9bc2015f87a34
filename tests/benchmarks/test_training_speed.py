"""The training-speed benchmark runs its code paths at toy size (--quick), so its figures come
from code that works: every contender trains the same rows and reports a rate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.shared
def test_the_training_speed_quick_run_times_every_contender(
    shared_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "training_speed.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "training_speed.py"),
        "--quick",
        "--data",
        str(shared_data),
        "--out",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {row["contender"]: row for row in report["rows_timed"]}
    assert set(rows) == {
        "notebook",
        "notebook, labels per batch",
        "per-batch padding",
        "+ group_by_length",
        "dialogsum",
        "dialogsum full",
        "dialogsum prompt_tuning",
    }
    assert all(row["tokens_per_s"] > 0 for row in rows.values())
    assert rows["notebook"]["vs_notebook"] == 1.0
    assert report["real_tokens_per_epoch"] > 0
