"""A write killed outright (kill -9) leaves its temporary ``.NAME.<random>.partial`` behind; the
next write of the same target removes it, and never one a live process is still writing."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dialogsum.files import staged_folder, write_text

from ..training_runs import environment


def partials(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*.partial"))


def wait_for(condition, process: subprocess.Popen[str], what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 300
    while not condition():
        assert process.poll() is None, f"the process ended before {what}: {process.stderr.read()}"  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"no {what} after 300 s"
        time.sleep(0.01)


def test_an_export_killed_mid_write_leaves_a_partial_that_the_rerun_removes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "onnx"
    command = [sys.executable, "-m", "dialogsum", "export", "--model", str(tiny_model_dir),
               "--output", str(target)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env=environment())  # fmt: skip
    wait_for(lambda: partials(tmp_path, "onnx"), process, "partial folder")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert partials(tmp_path, "onnx") and not target.exists()  # what kill -9 leaves

    rerun = subprocess.run(command, capture_output=True, text=True, env=environment(),
                           timeout=600)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (target / "dialogsum.json").is_file()
    assert partials(tmp_path, "onnx") == []
    assert [p.name for p in tmp_path.iterdir()] == ["onnx"]


WRITER = """
import sys, time
from pathlib import Path
from dialogsum.files import staged_folder
with staged_folder(Path(sys.argv[1])) as staging:
    (staging / "weights").write_text("half")
    print(staging, flush=True)
    time.sleep(600)
"""


def test_a_partial_a_live_process_is_writing_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "model"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment())  # fmt: skip
    try:
        live = Path(writer.stdout.readline().strip())  # type: ignore[union-attr]
        assert live.is_dir(), writer.stderr.read()  # type: ignore[union-attr]
        # Another target whose name starts the same way: its partials are not this target's.
        other = Path(tempfile.mkdtemp(prefix=".model.v2.", suffix=".partial", dir=tmp_path))
        with staged_folder(target) as staging:
            (staging / "weights").write_text("whole")
        assert (target / "weights").read_text() == "whole"
        assert live.is_dir() and (live / "weights").read_text() == "half"
        assert other.is_dir()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    # Its writer is gone now: the next write of the target removes it.
    with staged_folder(target, overwrite=True) as staging:
        (staging / "weights").write_text("again")
    assert not live.exists()
    assert partials(tmp_path, "model") == [other]  # the other target's is not this one's


def test_a_file_write_killed_mid_write_is_removed_by_the_next_write(tmp_path: Path) -> None:
    # What a kill -9 inside write_text leaves: a partial sibling no process holds.
    left = Path(tempfile.mkstemp(prefix=".metrics.json.", suffix=".partial", dir=tmp_path)[1])
    write_text(tmp_path / "metrics.json", "{}\n")
    assert not left.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
