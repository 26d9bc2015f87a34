"""Worker processes of a sweep share the machine's cores instead of each taking them all."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from dialogsum.sweep import job as sweep_job
from dialogsum.sweep.job import SweepJob, join_sweep, sharing_cores, threads_per_process


def _job() -> SweepJob:
    return SweepJob(None, {}, "lora", {}, {}, {}, {}, {}, [], [], "/nowhere")


@pytest.fixture
def four_threads(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


def test_workers_share_the_cores_torch_is_given(four_threads: Any) -> None:
    assert threads_per_process(1) is None
    assert threads_per_process(2) == 2
    assert threads_per_process(3) == 1
    assert threads_per_process(8) == 1  # never none


def test_omp_num_threads_is_the_users_choice(
    four_threads: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads_per_process(2) is None
    job = _job()
    with sharing_cores(job, 2):
        assert torch.get_num_threads() == 4
    assert job.threads is None


def test_the_sweeps_process_shares_and_gets_its_threads_back(four_threads: Any) -> None:
    job = _job()
    with sharing_cores(job, 2):
        assert torch.get_num_threads() == 2
        assert job.threads == 2  # what the workers started with this job use
    assert torch.get_num_threads() == 4
    with pytest.raises(RuntimeError), sharing_cores(job, 4):
        assert torch.get_num_threads() == 1
        raise RuntimeError("a trial failed")
    assert torch.get_num_threads() == 4


def test_a_worker_takes_its_share_before_loading_the_model(
    four_threads: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    def load_context(job: SweepJob) -> Any:
        seen.append(torch.get_num_threads())
        return SimpleNamespace(folder="f", options=None, first_rung=1)

    monkeypatch.setattr(sweep_job, "die_with_parent", lambda pid: None)
    monkeypatch.setattr(sweep_job, "load_context", load_context)
    monkeypatch.setattr(sweep_job, "open_study", lambda *args: "study")
    job = _job()
    job.threads = 1
    assert join_sweep(job, 1)[1] == "study"
    assert seen == [1]
