"""Distributed training on the CPU (gloo), launched as users launch it: ``torchrun`` with two
processes on one node, two one-process "nodes" meeting at a c10d rendezvous on 127.0.0.1, and
``accelerate launch``. Each must train to the weights and loss history of one process with the
same global batch, and only rank 0 may evaluate, write the run folder and print the result."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ..training_runs import REPO, adapter_weights, environment, losses, max_difference

#: Every launch is killed after this long, so a deadlock fails the test instead of blocking CI.
TIMEOUT = 300

#: 12 steps of a global batch of 4 over 40 dialogues cross an epoch boundary (the sampler
#: reshuffles); the lengths vary, so batches grouped by a per-device batch would differ.
RUN = [
    "--method",
    "lora",
    "--option",
    "r=4",
    "--option",
    "dropout=0",
    "--max-steps",
    "12",
    "--save-strategy",
    "steps",
    "--save-steps",
    "6",
    "--logging-steps",
    "1",
    "--seed",
    "3",
    "--learning-rate",
    "0.01",
    "--no-progress",
    "--max-source-length",
    "192",
    "--max-target-length",
    "48",
]

#: Logged once per post-training evaluation (the evaluation dialogues are all longer than 192).
EVALUATED = "were truncated before summarizing"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> tuple[Path, Path]:
    """40 short training dialogues (lengths vary, none truncated) and 4 long ones to score."""
    lines = (sample_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()
    rows = sorted(
        (json.loads(line) for line in lines if line.strip()), key=lambda row: len(row["dialogue"])
    )
    folder = tmp_path_factory.mktemp("data")
    for name, chosen in (("train", rows[:40]), ("eval", rows[-4:])):
        (folder / f"{name}.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in chosen), encoding="utf-8"
        )
    return folder / "train.jsonl", folder / "eval.jsonl"


def train_arguments(model: Path, data: tuple[Path, Path], run_dir: Path, batch: int) -> list[str]:
    return [
        "-m",
        "dialogsum",
        "train",
        "--model",
        str(model),
        "--train",
        str(data[0]),
        "--eval",
        str(data[1]),
        "--output-dir",
        str(run_dir),
        "--batch-size",
        str(batch),
        *RUN,
    ]


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, env=environment(), timeout=TIMEOUT, cwd=REPO
    )


def torchrun(*options: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *options]


def worker_logs(log_dir: Path) -> dict[int, tuple[str, str]]:
    """(stdout, stderr) of each worker of one torchrun, by local rank (``--log-dir`` layout)."""
    return {
        int(stdout.parent.name): (
            stdout.read_text(encoding="utf-8"),
            (stdout.parent / "stderr.log").read_text(encoding="utf-8"),
        )
        for stdout in log_dir.rglob("stdout.log")
    }


def assert_same_run(run_dir: Path, reference: Path) -> None:
    difference = max_difference(adapter_weights(reference), adapter_weights(run_dir))
    assert difference < 1e-5, difference
    expected, got = losses(reference), losses(run_dir)
    assert [step for step, _ in got] == [step for step, _ in expected] == list(range(1, 13))
    assert [loss for _, loss in got] == pytest.approx([loss for _, loss in expected], rel=1e-4)


def assert_one_report(main: tuple[str, str], other: tuple[str, str], run_dir: Path) -> None:
    """``main`` (stdout, stderr) printed the result and evaluated once; ``other`` did neither."""
    result = json.loads(main[0])  # the result JSON, and nothing else
    assert result["model"] == str(run_dir / "model") and "eval_rouge1" in result
    assert other[0] == ""
    assert main[1].count(EVALUATED) == 1 and EVALUATED not in other[1]
    assert "eval_rouge1" in json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, data: tuple[Path, Path]
) -> Path:
    """One plain process with the global batch (4) that the launches below split in two."""
    run_dir = tmp_path_factory.mktemp("one-process") / "run"
    result = run([sys.executable, *train_arguments(tiny_model_dir, data, run_dir, batch=4)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count(EVALUATED) == 1
    return run_dir


def test_torchrun_two_processes_on_one_node_train_as_one_process(
    reference: Path, tiny_model_dir: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    command = torchrun(
        "--standalone",
        "--nproc-per-node",
        "2",
        "--log-dir",
        str(tmp_path / "logs"),
        "--redirects",
        "3",
        *train_arguments(tiny_model_dir, data, run_dir, batch=2),
    )
    result = run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    logs = worker_logs(tmp_path / "logs")
    assert sorted(logs) == [0, 1]
    assert_one_report(logs[0], logs[1], run_dir)
    assert_same_run(run_dir, reference)


def test_torchrun_two_nodes_at_a_c10d_rendezvous_train_as_one_process(
    reference: Path, tiny_model_dir: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    # Each "node" has its own run folder, as machines without shared storage do: the one whose
    # process drew rank 0 must hold the whole run, the other nothing but what training needs.
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = []
    for node in (0, 1):
        command = torchrun(
            "--nnodes",
            "2",
            "--nproc-per-node",
            "1",
            "--node-rank",
            str(node),
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            endpoint,
            "--rdzv-id",
            "dialogsum-test",
            "--local-addr",
            "127.0.0.1",
            "--log-dir",
            str(tmp_path / f"logs-{node}"),
            "--redirects",
            "3",
            *train_arguments(tiny_model_dir, data, tmp_path / f"run-{node}", 2),
        )
        nodes.append(
            subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=environment(),
                cwd=REPO,
            )
        )
    try:
        outputs = [node.communicate(timeout=TIMEOUT) for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    for node, (_, stderr) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, stderr[-3000:]
    # c10d gives out ranks in the order the nodes join: exactly one must have drawn rank 0
    # and done the reporting, into its own folder only.
    logs = [worker_logs(tmp_path / f"logs-{node}") for node in (0, 1)]
    assert [sorted(found) for found in logs] == [[0], [0]]
    reported = [node for node in (0, 1) if (tmp_path / f"run-{node}" / "model").exists()]
    assert len(reported) == 1, reported
    first = reported[0]
    main, other = tmp_path / f"run-{first}", tmp_path / f"run-{1 - first}"
    assert_one_report(logs[first][0], logs[1 - first][0], main)
    assert not (other / "metrics.json").exists()
    assert_same_run(main, reference)


def test_accelerate_launch_trains_as_one_process(
    reference: Path, tiny_model_dir: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    # The config file docs/distributed.md gives for one machine. accelerate's MULTI_GPU type
    # is its torchrun launcher; on a machine without a GPU, dialogsum trains on the CPU with gloo.
    config = tmp_path / "accelerate.yaml"
    config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_machines: 1\n"
        f"num_processes: 2\nmachine_rank: 0\nmain_process_port: {free_port()}\n"
        "mixed_precision: 'no'\n",
        encoding="utf-8",
    )
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        *train_arguments(tiny_model_dir, data, run_dir, batch=2),
    ]
    result = run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["model"] == str(run_dir / "model")  # printed once
    assert result.stderr.count(EVALUATED) == 1
    assert_same_run(run_dir, reference)


@pytest.mark.parametrize(
    ("environment", "refused"),
    [
        ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}, True),
        ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}, False),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "FULL_SHARD"}, True),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "4"}, True),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "SHARD_GRAD_OP"}, False),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}, True),
    ],
)
def test_launches_that_shard_parameters_are_refused_before_the_model_loads(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    environment: dict[str, str],
    refused: bool,
) -> None:
    from dialogsum.cli import main
    from dialogsum.data import sample_path
    from dialogsum.errors import ConfigError
    from dialogsum.training.distributed import check_sharding

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if not refused:
        check_sharding()
        return
    with pytest.raises(ConfigError, match="splits the model's parameters"):
        check_sharding()
    # The command says so before loading anything: the model named here does not even exist.
    code = main(
        [
            "train",
            "--model",
            "no/such-model",
            "--train",
            str(sample_path("train")),
            "--output-dir",
            "unused",
        ]
    )
    assert code == 2
    assert "ZeRO stage 2" in capsys.readouterr().err
