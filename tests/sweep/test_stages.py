"""One stage of a sync sweep on several workers, with threads standing in for the worker
processes: idle workers get the next trial while this process trains its own, the budget
stops the stage with every run that ended recorded, and a failure ends the workers at once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from dialogsum.sweep import stages
from dialogsum.sweep.stages import Segment, Trainers
from dialogsum.sweep.trials import TrialOutcome


class Stage:
    """Trainers over fake trials: ``seconds[n]`` is how long trial n trains; trial n ends
    with the budget (None) when ``n`` is in ``budget``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, seconds: dict[int, float], **more: Any):
        self.seconds = seconds
        self.budget: set[int] = set(more.get("budget", ()))
        self.fail: set[int] = set(more.get("fail", ()))
        self.where: dict[int, str] = {}
        self.out_of_time = False
        self.options = SimpleNamespace(workers=more.get("workers", 2))
        self.trainers = Trainers(self, None, None, job=None)  # type: ignore[arg-type]
        monkeypatch.setattr(
            Trainers, "_start_pool", lambda trainers: ThreadPoolExecutor(trainers._others())
        )
        monkeypatch.setattr(
            Trainers, "_here", lambda trainers, seg: self.run(seg.trial.number, "here")
        )
        monkeypatch.setattr(
            stages, "_train_in_worker", lambda number, until, reported: self.run(number, "worker")
        )

    def run(self, number: int, where: str) -> TrialOutcome | None:
        self.where[number] = where
        time.sleep(self.seconds[number])
        if number in self.fail:
            raise RuntimeError(f"trial {number} failed")
        if number in self.budget:
            self.out_of_time = True
            return None
        return TrialOutcome(score=float(number), steps=2, seconds=self.seconds[number])

    def segments(self) -> list[Segment]:
        return [Segment(SimpleNamespace(number=number), 2, ()) for number in self.seconds]


def test_an_idle_worker_gets_the_next_trial_while_this_process_trains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Trial 0 goes to the worker, trial 1 is this process's (long); the worker must not wait
    # for it: it trains 2, 3 and 4 meanwhile.
    stage = Stage(monkeypatch, {0: 0.05, 1: 1.0, 2: 0.05, 3: 0.05, 4: 0.05})
    with stage.trainers as trainers:
        ended = [(t.number, outcome.score) for t, outcome in trainers.train(stage.segments())]
    assert sorted(ended) == [(n, float(n)) for n in range(5)]
    assert stage.where == {0: "worker", 1: "here", 2: "worker", 3: "worker", 4: "worker"}
    assert not trainers.stopped


def test_the_budget_stops_the_stage_and_every_run_that_ended_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The worker's trial 0 ends (it counts), this process's trial 1 meets the budget, and
    # trial 2, not started, never starts.
    stage = Stage(monkeypatch, {0: 0.2, 1: 0.05, 2: 0.05}, budget={1})
    with stage.trainers as trainers:
        ended = [trial.number for trial, _ in trainers.train(stage.segments())]
    assert ended == [0] and trainers.stopped
    assert 2 not in stage.where


def test_a_failure_ends_the_stage_before_another_trial_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The worker's trial 0 fails while this process trains trial 1: neither the worker nor
    # this process starts trial 2 or 3.
    stage = Stage(monkeypatch, {0: 0.01, 1: 0.3, 2: 0.05, 3: 0.05}, fail={0})
    with pytest.raises(RuntimeError, match="trial 0 failed"), stage.trainers as trainers:
        for _ in trainers.train(stage.segments()):
            pass
    assert stage.where == {0: "worker", 1: "here"}
