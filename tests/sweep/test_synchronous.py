"""schedule sync: every trial trains to a rung and pauses (a checkpoint) until all have; the
best resume. A paused trial scores exactly what it scores run straight through, decisions are
whole rungs, and a kill -9 at any moment resumes paused trials from their checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dialogsum import Summarizer
from dialogsum.errors import ConfigError
from dialogsum.sweep.budget import project_sweep
from dialogsum.sweep.options import SweepOptions
from dialogsum.training.checkpoints import STATE_FILE

from .commands import cli_sweep, killed_and_rerun

pytest.importorskip("optuna")

SPACE = {"learning_rate": {"low": 1e-4, "high": 3e-2, "log": True}, "r": [2, 4]}
#: 9 steps and halving: rungs at 2, 4 and 9; 4 trials -> 2 -> 1.
TRAINING = {"max_steps": 9, "batch_size": 4}
SWEEP = {
    "trials": 4,
    "objective": "loss",
    "progress": False,
    "seed": 3,
    "reduction_factor": 2,
    # Every trial sampled at random: both schedules propose the same settings per trial.
    "random_trials": 4,
}


def sweep(tiny: Summarizer, data_files: Path, folder: Path, **options: Any) -> dict[str, Any]:
    """The sweep's ``sweep.json``."""
    tiny.sweep(
        data_files / "train.jsonl",
        data_files / "validation.jsonl",
        space=SPACE,
        output_dir=folder,
        training=TRAINING,
        sweep={**SWEEP, **options},
    )
    return dict(json.loads((folder / "sweep.json").read_text()), folder=str(folder))


@pytest.fixture(scope="module")
def straight(tiny: Summarizer, data_files: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every trial trained to its end, scored at every rung (nothing pruned)."""
    return sweep(tiny, data_files, tmp_path_factory.mktemp("sync") / "straight", pruner="none")


@pytest.fixture(scope="module")
def synchronous(
    tiny: Summarizer, data_files: Path, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    return sweep(tiny, data_files, tmp_path_factory.mktemp("sync") / "sync", schedule="sync")


def by_params(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The trials that count, by their settings."""
    counted = [t for t in summary["trials"] if t["state"] in ("finished", "pruned")]
    return {json.dumps(t["params"], sort_keys=True): t for t in counted}


#: What differs between two runs of the same sweep: trial numbers, times and rerun links.
IDENTITY = (
    "number", "seconds", "cost", "started", "finished", "rerun_of", "rerun_as", "resumed_from",
)  # fmt: skip


def outcomes(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each counted trial's settings, state, rung scores, score and steps."""
    return {
        key: {k: v for k, v in trial.items() if k not in IDENTITY}
        for key, trial in by_params(summary).items()
    }


def test_whole_rungs_keep_the_best_and_paused_trials_score_as_run_straight(
    straight: dict[str, Any], synchronous: dict[str, Any]
) -> None:
    assert synchronous["rungs"] == [2, 4, 9]
    full, paused = by_params(straight), by_params(synchronous)
    assert len(full) == len(paused) == 4, (straight["trials"], synchronous["trials"])
    assert set(full) == set(paused)  # the same settings, sampled from the same seed
    # Each sync trial's score at each rung it reached is, bit for bit, the straight run's:
    # pausing at a rung and resuming from the checkpoint trains exactly as not pausing.
    for key, trial in paused.items():
        reached = dict(map(tuple, trial["rungs"]))
        assert reached == {s: v for s, v in full[key]["rungs"] if s in reached}, key
    # Rung by rung, the lower half of the trials that reached it stopped there (loss: lower
    # is better), judged with every trial's score at that rung.
    alive = sorted(paused)
    for step, keep in ((2, 2), (4, 1)):
        ranked = sorted(alive, key=lambda key: dict(map(tuple, full[key]["rungs"]))[step])
        alive = ranked[:keep]
        for key in ranked[keep:]:
            assert paused[key]["state"] == "pruned" and paused[key]["steps"] == step, key
    (winner,) = alive
    assert paused[winner]["state"] == "finished"
    assert paused[winner]["score"] == full[winner]["score"]
    assert synchronous["best"]["params"] == paused[winner]["params"]
    # No pause is left behind: the finished trial's folder keeps no checkpoints.
    best = Path(synchronous["folder"]) / synchronous["best"]["folder"]
    assert (best / "model").is_dir() and not (best / "checkpoints").exists()
    # A trial's time is what it spent training and scoring, not waiting at rungs: trials
    # ran one at a time, so their times add up to less than the sweep's.
    assert sum(t["seconds"] for t in synchronous["trials"]) < synchronous["seconds"]
    # Its trial.json lists every rung it reported, across its pauses.
    record = json.loads((best / "trial.json").read_text())
    assert record["rungs"] == paused[winner]["rungs"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_sync_sweep_killed_while_trials_wait_resumes_them_from_their_checkpoints(
    synchronous: dict[str, Any],
    tiny_model_dir: Path,
    data_files: Path,
    tmp_path: Path,
    workers: int,
) -> None:
    folder = tmp_path / "killed"
    command = cli_sweep(
        tiny_model_dir, data_files, folder,
        "--reduction-factor", "2", "--random-trials", "4", "--schedule", "sync",
        "--workers", str(workers),
    )  # fmt: skip

    def trial_0_waits_and_others_train() -> bool:
        # One worker: trial 1 trains; two: trial 1 trains here, trial 2 in the other process.
        # Paused means its checkpoint is whole (dialogsum's state is written last): with two
        # processes, trial 2 may start while trial 0's is still being written.
        state = folder / "trials" / "0000" / "checkpoints" / "checkpoint-2" / STATE_FILE
        try:
            json.loads(state.read_text())
        except (OSError, ValueError):
            return False
        return (folder / "trials" / f"{workers:04d}").exists()

    summary = killed_and_rerun(command, trial_0_waits_and_others_train)
    interrupted = [t for t in summary["trials"] if t["state"] == "interrupted"]
    assert interrupted and all(t["rerun_as"] is not None for t in interrupted)
    # Trial 0 had paused at step 2: its rerun went on from that checkpoint.
    resumed = {t["rerun_of"]: t["resumed_from"] for t in summary["trials"]}
    assert resumed.get(0) == 2, summary["trials"]
    # Every trial once, with the same rungs, scores and decisions as the sweep never killed.
    assert outcomes(summary) == outcomes(synchronous)
    assert summary["best"]["params"] == synchronous["best"]["params"]


def test_workers_train_a_stage_side_by_side_to_the_same_trials_and_decisions(
    synchronous: dict[str, Any],
    tiny: Summarizer,
    data_files: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One torch thread in the worker too, as in this process: the scores compare bit for bit.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    both = sweep(tiny, data_files, tmp_path / "workers", schedule="sync", workers=2)
    assert outcomes(both) == outcomes(synchronous)
    assert both["best"]["params"] == synchronous["best"]["params"]
    # Both processes trained trials (each trial names the last process that ran it).
    import optuna

    study = optuna.load_study(
        study_name="dialogsum-sweep", storage=f"sqlite:///{tmp_path / 'workers' / 'study.db'}"
    )
    owners = {trial.user_attrs["owner"] for trial in study.get_trials()}
    assert len(owners) == 2, owners


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pruner": "hyperband"}, "pruner 'hyperband' cannot run that way"),
        ({"pruner": "none"}, "pruner 'none' cannot run that way"),
        ({"engine": "ray"}, "Ray Tune's ASHA scheduler is asynchronous"),
    ],
)
def test_a_sync_schedule_refuses_what_it_cannot_do(
    tiny: Summarizer, data_files: Path, tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        sweep(tiny, data_files, tmp_path / "refused", schedule="sync", **options)
    assert not (tmp_path / "refused").exists()


def project(schedule: str) -> Any:
    """12 trials of 162 steps, rungs every third: a step 1 s, a score 10 s, a start 100 s."""
    options = SweepOptions(trials=12, reduction_factor=3, schedule=schedule)
    return project_sweep(
        options,
        trials=12,
        total_steps=162,
        first_rung=18,
        seconds_per_step=1.0,
        seconds_per_score=10.0,
        seconds_per_start=100.0,
    )


def test_the_projection_of_a_sync_sweep_counts_whole_rungs_and_restarts() -> None:
    projection = project("sync")
    assert [(r.steps, r.trials) for r in projection.rungs] == [(18, 12), (54, 4), (162, 1)]
    # Each rung: its trials' steps since the last rung, a score and a start each.
    assert [r.seconds for r in projection.rungs] == [
        12 * (18 + 10 + 100),
        4 * (36 + 10 + 100),
        1 * (108 + 10 + 100),
    ]
    # Asynchronous halving projects ceil(trials / 3**k) and starts each trial once.
    assert [r.trials for r in project("async").rungs] == [12, 4, 2]


def test_a_budget_refuses_only_what_workers_side_by_side_could_not_finish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dialogsum.sweep.budget import check_budget

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # each worker its own cores

    # 12 trials to the first rung: 12 x (18 s + 10 s + 100 s) = 1536 s one at a time.
    serial = project_sweep(
        SweepOptions(trials=12, max_time=600, workers=4),
        trials=12, total_steps=162, first_rung=18,
        seconds_per_step=1.0, seconds_per_score=10.0, seconds_per_start=100.0,
    )  # fmt: skip
    assert serial.rungs[0].seconds == 12 * (18 + 10 + 100)
    assert "one trial at a time (with 4 workers, up to 4 times less" in serial.message()
    check_budget(serial, SweepOptions(max_time=600, workers=4))  # 384 s four at a time
    with pytest.raises(ConfigError, match=r"12 trials to step 18, 4 at a time, projected 6 min"):
        check_budget(serial, SweepOptions(max_time=300, workers=4))
    with pytest.raises(ConfigError, match=r"12 trials to step 18, projected 26 min"):
        check_budget(serial, SweepOptions(max_time=600))
    # Workers sharing the cores the projection was measured on: one after another.
    monkeypatch.delenv("OMP_NUM_THREADS")
    with pytest.raises(ConfigError, match=r"12 trials to step 18, projected 26 min"):
        check_budget(serial, SweepOptions(max_time=600, workers=4))


def test_a_sync_sweep_stopped_at_its_budget_goes_on_from_its_checkpoints(
    synchronous: dict[str, Any],
    tiny: Summarizer,
    data_files: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dialogsum.sweep.trials

    steps = iter(range(1, 1000))
    # The deadline passes at the 12th training step of the sweep: the first rung took 8 (4
    # trials x 2), the first trial to go on trained steps 3 and 4 and waits there, and the
    # second stops at its step 4, before scoring it.
    monkeypatch.setattr(dialogsum.sweep.trials, "past", lambda deadline: next(steps) >= 12)
    folder = tmp_path / "budget"
    stopped = sweep(tiny, data_files, folder, schedule="sync", max_time=3600)
    assert stopped["state"] == "stopped" and stopped["best"] is None
    states = sorted(t["state"] for t in stopped["trials"])
    assert states == ["paused", "pruned", "pruned", "stopped"], stopped["trials"]
    monkeypatch.undo()
    finished = sweep(tiny, data_files, folder, schedule="sync")
    assert finished["state"] == "finished"
    # Both went on from their checkpoints: the one waiting at step 4, the stopped one at 2.
    resumed = sorted(t["resumed_from"] for t in finished["trials"] if t["rerun_of"] is not None)
    assert resumed == [2, 4]
    assert outcomes(finished) == outcomes(synchronous)


def test_a_tie_at_a_rung_is_decided_the_same_after_a_rerun() -> None:
    import optuna

    from dialogsum.sweep.study import interrupt
    from dialogsum.sweep.synchronous import _promoted

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    first, second, third = (study.ask({}) for _ in range(3))
    for trial, score in ((first, 0.5), (second, 0.5), (third, 0.3)):
        trial.report(score, 2)
    options = SweepOptions(reduction_factor=3)
    assert _promoted(study, 2, options) == {first.number}  # the tie goes to the first asked
    # Killed: the first is rerun under a new number and takes over its score; it still ranks
    # as the trial first asked, so the decision stands (no trial goes on otherwise).
    interrupt(study, first, "interrupted")
    rerun = study.ask({})
    assert rerun.user_attrs["rerun_of"] == first.number
    rerun.report(0.5, 2)
    assert _promoted(study, 2, options) == {rerun.number}
