"""Training leaves no ``dialogsum-run-*`` folder in the temporary directory, however it ends:
finished, Ctrl-C, SIGTERM; one a kill -9 left is removed when the next run starts."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dialogsum import Summarizer

from ..training_runs import environment, train_command

#: A run without a run folder (the Python API's default), long enough to be stopped mid-run.
ENDLESS_RUN = """
import logging, sys
from dialogsum import Summarizer
from dialogsum.data import load_examples, sample_path
logging.basicConfig(level=logging.INFO)
model = Summarizer.from_pretrained(sys.argv[1], backend_options={"progress": False})
model.finetune(load_examples(sample_path("validation")), method="lora",
               training={"max_steps": 100000, "batch_size": 4, "logging_steps": 1,
                         "progress": False},
               data={"max_source_length": 96, "max_target_length": 24})
"""


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("dialogsum-run-*"))


def start(command: list[str], scratch: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**environment(), "TMPDIR": str(scratch)})  # fmt: skip


def wait_for_step(process: subprocess.Popen[str], step: int) -> None:
    """Read the run's log until it has trained ``step`` steps."""
    deadline = time.monotonic() + 300
    for line in process.stderr:  # type: ignore[union-attr]
        if f"step {step}:" in line:
            return
        assert time.monotonic() < deadline, f"no step {step} after 300 s"
    raise AssertionError(f"the run ended before step {step} (exit {process.wait()})")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_run_stopped_mid_run_leaves_no_temporary_folder(
    stop: signal.Signals, tiny_model_dir: Path, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = start([sys.executable, "-c", ENDLESS_RUN, str(tiny_model_dir)], scratch)
    wait_for_step(process, 2)
    assert leftovers(scratch), "the run trains in a temporary folder"
    process.send_signal(stop)
    process.communicate(timeout=120)
    assert process.returncode != 0
    assert leftovers(scratch) == []


def test_the_train_command_stopped_by_sigterm_leaves_no_temporary_folder(
    tiny_model_dir: Path, sample_dir: Path, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run_dir = tmp_path / "run"
    process = start(train_command(tiny_model_dir, sample_dir / "validation.jsonl", run_dir),
                    scratch)  # fmt: skip
    marker = run_dir / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM, "the run ended before it was stopped"
    assert leftovers(scratch) == []


def test_a_folder_left_by_kill_9_is_removed_by_the_next_run_and_a_live_ones_is_not(
    tiny_model_dir: Path, few_examples, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from dialogsum.files import temporary_folder

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # this process's TMPDIR too
    process = start([sys.executable, "-c", ENDLESS_RUN, str(tiny_model_dir)], scratch)
    try:
        wait_for_step(process, 1)
        (live,) = leftovers(scratch)
        with temporary_folder("dialogsum-run-"):  # another run starting meanwhile
            assert live in leftovers(scratch)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=120)
    assert leftovers(scratch) == [live]  # kill -9: the process could not remove it

    model = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    model.finetune(few_examples, method="lora",
                   training={"max_steps": 1, "batch_size": 4, "progress": False})  # fmt: skip
    assert leftovers(scratch) == []
