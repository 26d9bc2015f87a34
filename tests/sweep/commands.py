"""The ``dialogsum sweep`` command line the kill -9 tests run in a process of its own, and the
kill and rerun themselves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cli_sweep(tiny_model_dir: Path, data_files: Path, folder: Path, *more: str) -> list[str]:
    return [
        sys.executable, "-m", "dialogsum", "sweep",
        "--model", str(tiny_model_dir),
        "--train", str(data_files / "train.jsonl"),
        "--eval", str(data_files / "validation.jsonl"),
        "--output-dir", str(folder),
        "--search", "learning_rate=1e-4..3e-2:log",
        "--search", "r=2,4",
        "--max-steps", "9", "--batch-size", "4",
        "--trials", "4", "--objective", "loss", "--seed", "3", "--no-progress",
        *more,
    ]  # fmt: skip


def killed_and_rerun(command: list[str], ready: Callable[[], bool]) -> dict[str, Any]:
    """Start ``command``, kill -9 it once ``ready()`` holds, run it again to its end, and
    return the rerun's summary (its ``--json`` output)."""
    # One torch thread, as in the test process (conftest): the scores compare bit for bit.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 180
    while not ready():
        assert process.poll() is None, "the sweep ended before the moment to kill it"
        assert time.monotonic() < deadline, "the moment to kill the sweep never came"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    rerun = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, timeout=300, env=env
    )
    assert rerun.returncode == 0, rerun.stderr
    return dict(json.loads(rerun.stdout))
