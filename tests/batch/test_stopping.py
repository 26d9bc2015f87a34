"""``dialogsum batch --workers 2`` stopped for real: SIGTERM stops it like Ctrl-C (a message
saying how to resume, exit 143, a rerun finishes the output exactly once), and neither SIGTERM
nor kill -9 of the command leaves its worker processes or their resource tracker behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from dialogsum.data import sample_path

from ..processes import is_gone, left_after

ROWS = 40
#: Short greedy summaries in small chunks: the job is still running when its first lines are
#: written, and the tests check processes and bookkeeping, not summaries.
OPTIONS = [
    "--workers",
    "2",
    "--threads",
    "1",
    "--chunk-size",
    "2",
    "--num-beams",
    "1",
    "--max-new-tokens",
    "12",
    "--no-progress",
]
#: Bounds, in seconds: two workers loading the model on a busy machine; the command ending
#: after a signal; its processes going after it.
START_WAIT, EXIT_WAIT, GONE_WAIT = 240.0, 60.0, 10.0


def write_input(path: Path) -> list[str]:
    with sample_path("test").open(encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()][:ROWS]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return [str(r["fname"]) for r in records]


def command(data: Path, output: Path, *options: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dialogsum",
        "batch",
        "--model",
        "dialogsum-tiny",
        "--input",
        str(data),
        "--output",
        str(output),
        *options,
    ]


class Job:
    """``dialogsum batch`` running in its own process, and the processes it started."""

    def __init__(self, argv: list[str], stderr: Path) -> None:
        self.stderr_path = stderr
        # To a file, not a pipe: workers left behind would hold a pipe open and hang the read.
        with stderr.open("w") as sink:
            self.process = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=sink,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
        self.children: list[psutil.Process] = []

    def wait_for_lines(self, output: Path) -> None:
        """Until the job has written its first summaries (its workers are running)."""
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline and self.process.poll() is None:
            if output.exists() and output.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.05)
        assert self.process.poll() is None, f"the job ended early: {self.stderr()[-2000:]}"
        self.children = psutil.Process(self.process.pid).children(recursive=True)
        spawned = [p for p in self.children if "spawn_main" in " ".join(p.cmdline())]
        assert len(spawned) == 2, [p.cmdline() for p in self.children]

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def end(self) -> None:
        """Leave nothing running, whatever the test found."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(EXIT_WAIT)
        for process in self.children:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


@pytest.fixture
def jobs() -> Iterator[list[Job]]:
    started: list[Job] = []
    yield started
    for job in started:
        job.end()


def test_sigterm_stops_the_job_like_ctrl_c_and_a_rerun_finishes_it(
    tmp_path: Path, jobs: list[Job]
) -> None:
    data, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(data)
    job = Job(command(data, output, *OPTIONS), tmp_path / "stderr.txt")
    jobs.append(job)
    job.wait_for_lines(output)
    job.process.send_signal(signal.SIGTERM)
    assert job.process.wait(EXIT_WAIT) == 128 + signal.SIGTERM
    error = job.stderr()
    assert "stopped by SIGTERM" in error and "Rerun the same command" in error, error
    assert "Traceback" not in error and "leaked" not in error, error
    assert left_after(job.children, GONE_WAIT) == []
    written = output.read_bytes().count(b"\n")
    assert written < ROWS  # stopped mid-job: the rerun has work left

    rerun = subprocess.run(
        command(data, output, *OPTIONS), capture_output=True, text=True, timeout=START_WAIT
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = json.loads(rerun.stdout)
    assert (report["already_done"], report["summarized"]) == (written, ROWS - written)
    assert [json.loads(line)["id"] for line in output.read_text().splitlines()] == ids


def test_kill_9_of_the_job_takes_its_workers_and_resource_tracker_with_it(
    tmp_path: Path, jobs: list[Job]
) -> None:
    data, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(data)
    job = Job(command(data, output, *OPTIONS), tmp_path / "stderr.txt")
    jobs.append(job)
    job.wait_for_lines(output)
    job.process.send_signal(signal.SIGKILL)
    job.process.wait(EXIT_WAIT)
    left = left_after(job.children, GONE_WAIT)
    assert left == [], [p.cmdline() for p in left]


#: A worker where the kernel is not asked to end it (as where prctl is missing): only the
#: watchdog thread can notice that its parent has died.
WATCHED_WORKER = """
import sys, time
from dialogsum import processes

processes._kill_me_on_parent_death = lambda: None
processes.die_with_parent(int(sys.argv[1]))
print("ready", flush=True)
time.sleep(120)
"""
#: The worker's parent: starts it, says its pid, waits to be killed.
PARENT = """
import os, subprocess, sys, time

worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())])
print(worker.pid, flush=True)
time.sleep(120)
"""


def test_the_watchdog_alone_ends_a_worker_whose_parent_was_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, WATCHED_WORKER], stdout=subprocess.PIPE, text=True
    )
    worker: psutil.Process | None = None
    try:
        assert parent.stdout is not None
        worker = psutil.Process(int(parent.stdout.readline()))
        assert parent.stdout.readline().strip() == "ready"  # the watchdog is running
        parent.kill()
        parent.wait(EXIT_WAIT)
        assert left_after([worker], GONE_WAIT) == []
    finally:
        parent.kill()
        parent.wait(EXIT_WAIT)
        if worker is not None and not is_gone(worker):
            worker.kill()


def test_starting_ray_keeps_the_handler_that_stops_the_job_on_sigterm() -> None:
    """``ray.init`` installs a SIGTERM handler that exits at once (status 15); the Ray engine
    puts back the one in place, so SIGTERM stops a Ray job like a local one."""
    ray = pytest.importorskip("ray")
    from dialogsum.batch.lifetime import stop_on_signals
    from dialogsum.batch.ray_engine import _connect
    from dialogsum.batch.settings import BatchSettings

    assert not ray.is_initialized()
    with stop_on_signals():
        stopping = signal.getsignal(signal.SIGTERM)
        try:
            assert _connect(ray, BatchSettings(engine="ray", workers=1, threads=1))
            assert signal.getsignal(signal.SIGTERM) is stopping
        finally:
            ray.shutdown()
