"""What the tests of real training runs share: the command line and environment of a launched
run, its adapter weights and loss history, and how far two runs' weights differ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: 12 steps of 4 over 40 dialogues, a checkpoint at every step: the run crosses an epoch
#: boundary, so a resume may land mid-epoch (batches to skip) or on an epoch's edge.
CHECKPOINTED_RUN = [
    "--method", "lora", "--option", "r=4", "--max-steps", "12", "--batch-size", "4",
    "--save-strategy", "steps", "--save-steps", "1", "--save-total-limit", "20",
    "--logging-steps", "1", "--seed", "3", "--learning-rate", "0.01", "--no-progress",
    "--max-source-length", "96", "--max-target-length", "24", "--eval-strategy", "no",
]  # fmt: skip


def environment() -> dict[str, str]:
    """This checkout first on the path (launched processes import this dialogsum), and one
    thread per process: the same arithmetic order in every run, no contention for the cores."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "PYTHONPATH": path,
        "OMP_NUM_THREADS": "1",
        "DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD": "1",
    }


def train_command(model: Path, data: Path, run_dir: Path, *extra: str) -> list[str]:
    """``dialogsum train`` of the checkpointed run, plus ``extra`` flags."""
    return [
        sys.executable,
        "-m",
        "dialogsum",
        "train",
        "--model",
        str(model),
        "--train",
        str(data),
        "--output-dir",
        str(run_dir),
        *CHECKPOINTED_RUN,
        *extra,
    ]


def train(model: Path, data: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run :func:`train_command` to its end in a process of its own."""
    command = train_command(model, data, run_dir, *extra)
    return subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=600)


def adapter_weights(run_dir: Path) -> dict[str, object]:
    """The LoRA weights a run saved in ``run_dir/model``."""
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model" / "adapter_model.safetensors"))


def losses(run_dir: Path) -> list[tuple[int, float]]:
    """(step, loss) of every logged training loss of a run."""
    history = json.loads((run_dir / "metrics.json").read_text())["log_history"]
    return [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]


def max_difference(first: dict[str, object], second: dict[str, object]) -> float:
    """The largest absolute difference between two sets of the same weights."""
    assert first.keys() == second.keys()
    return max(float((first[k] - second[k]).abs().max()) for k in first)  # type: ignore[operator]
