"""The prepared GPU check runs its code paths on the CPU (--dry-run), so a lent GPU's minutes go
to measuring, not debugging."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.shared
def test_the_gpu_check_dry_run_writes_every_result(shared_data: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "gpu_check.py"),
        "--dry-run",
        "--out",
        str(tmp_path),
        "--data",
        str(shared_data),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    train = json.loads((tmp_path / "train.json").read_text())
    assert {"lora", "full"} <= set(train)
    assert all(
        train[m]["steps_per_s"] > 0 and train[m]["tokens_per_s"] > 0 for m in ("lora", "full")
    )
    serve = json.loads((tmp_path / "serve.json").read_text())
    engines = {row["engine"] for row in serve["rows"]}
    assert engines == {"torch-cpu", "onnxruntime-int8-cpu"}
    assert {(row["beams"], row["batch"]) for row in serve["rows"]} == {
        (1, 1),
        (1, 8),
        (4, 1),
        (4, 8),
    }
    agreement = json.loads((tmp_path / "agreement.json").read_text())
    assert agreement["passed"] is True and agreement["identical"] == 1.0  # fp32 against fp32
    assert json.loads((tmp_path / "environment.json").read_text())["torch"]
