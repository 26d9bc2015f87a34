"""``dialogsum batch --engine ray`` on a Ray it did not start: the actors never reserve every
CPU of the cluster, so Ray Data's read and write tasks always get one and the job finishes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dialogsum.batch.ray_engine import actor_cpus
from dialogsum.data import sample_path

#: A Ray of two CPUs that exists before the command runs (as a cluster joined with RAY_ADDRESS
#: does), then the command on it.
ON_A_TWO_CPU_RAY = textwrap.dedent(
    """
    import sys

    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False)

    from dialogsum.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.parametrize(
    ("threads", "workers", "cluster", "reserved"),
    [
        (2, 1, (2.0, 2.0), 1.0),  # one CPU of two left for reading
        (1, 2, (2.0, 2.0), 0.5),  # fewer CPUs than actors: fractions
        (4, 2, (16.0, 8.0), 4.0),  # room enough: the threads asked for
        (8, 1, (32.0, 4.0), 4.0),  # never more than the largest node has
        (3, 2, (6.0, 3.0), 2.0),  # whole CPUs, so each node keeps one for reading
    ],
)
def test_actors_leave_a_cpu_for_reading(
    threads: int, workers: int, cluster: tuple[float, float], reserved: float
) -> None:
    assert actor_cpus(threads, workers, cluster) == reserved


def test_a_job_on_an_existing_ray_with_every_cpu_asked_for_finishes(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    with sample_path("test").open(encoding="utf-8") as handle:
        rows = [line for line in handle if line.strip()][:4]
    data = tmp_path / "in.jsonl"
    data.write_text("".join(rows))
    output = tmp_path / "out"
    command = [
        sys.executable,
        "-c",
        ON_A_TWO_CPU_RAY,
        "batch",
        "--model",
        "dialogsum-tiny",
        "--engine",
        "ray",
        "--workers",
        "1",
        "--threads",
        "2",  # every CPU of this Ray: the actor once took them all, and reading waited forever
        "--input",
        str(data),
        "--output",
        str(output),
        "--num-beams",
        "1",
        "--max-new-tokens",
        "8",
        "--no-progress",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.terminate()  # the command stops on SIGTERM, and its Ray with it
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        pytest.fail("the job made no progress in 90 s (its actors hold every CPU)")
    assert process.returncode == 0, err[-3000:]
    report = json.loads(out)
    assert (report["rows"], report["summarized"]) == (4, 4)
    written = [json.loads(line) for part in output.glob("*.jsonl") for line in part.open()]
    assert sorted(r["id"] for r in written) == sorted(json.loads(r)["fname"] for r in rows)
