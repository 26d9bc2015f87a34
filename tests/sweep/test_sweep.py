"""Sweeps end to end on the tiny model: the sweep folder, its best model exported and served,
the same trials from the same seed, a kill -9 and a rerun with every trial once, the budget,
workers sharing the study, Ray Tune, and bad input refused before anything trains."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dialogsum import Summarizer
from dialogsum.errors import ConfigError

from .commands import cli_sweep, killed_and_rerun

SPACE = {
    "learning_rate": {"low": 1e-4, "high": 3e-2, "log": True},
    "r": [2, 4],
}
TRAINING = {"max_steps": 9, "batch_size": 4}


def sweep_options(**more: Any) -> dict[str, Any]:
    return {"trials": 4, "objective": "loss", "progress": False, "seed": 3, **more}


def run_sweep(tiny: Summarizer, data_files: Path, folder: Path, **options: Any) -> tuple[Any, Any]:
    return tiny.sweep(
        data_files / "train.jsonl",
        data_files / "validation.jsonl",
        space=SPACE,
        output_dir=folder,
        training=TRAINING,
        sweep=sweep_options(**options),
    )


def counted(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The trials that count (not interrupted or stopped), in the order they ran."""
    return [t for t in summary["trials"] if t["state"] in ("finished", "pruned")]


def outcomes(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (json.dumps(t["params"], sort_keys=True), t["state"], t["rungs"]) for t in counted(summary)
    ]


@pytest.fixture(scope="module")
def first_sweep(
    tiny: Summarizer, data_files: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, Any]:
    return run_sweep(tiny, data_files, tmp_path_factory.mktemp("sweeps") / "first")


def test_a_sweep_writes_its_folder_and_its_best_model(
    first_sweep: tuple[Any, Any], tmp_path: Path
) -> None:
    best, result = first_sweep
    summary = json.loads((result.folder / "sweep.json").read_text())
    assert summary == json.loads(json.dumps(result.summary, default=str))
    assert len(counted(summary)) == 4
    finished = [t for t in summary["trials"] if t["state"] == "finished"]
    assert finished, summary["trials"]
    # Loss is minimized: the best is the lowest finished score, and its model is best/.
    lowest = min(finished, key=lambda t: t["score"])
    assert summary["best"]["number"] == lowest["number"]
    assert summary["best"]["score"] == pytest.approx(lowest["score"])
    assert (result.folder / "best" / "model").is_dir()
    assert (
        json.loads((result.folder / "best" / "trial.json").read_text())["number"]
        == lowest["number"]
    )
    # Every trial reported at each rung it reached, in step order; pruned ones stopped early.
    for trial in summary["trials"]:
        steps = [step for step, _ in trial["rungs"]]
        assert steps == sorted(steps) and set(steps) <= set(summary["rungs"])
        if trial["state"] == "pruned":
            assert steps[-1] < TRAINING["max_steps"]
    assert summary["rungs"][-1] == TRAINING["max_steps"]
    # Only best/ keeps a model; the report and its plots are there.
    models = sorted(p.parent.name for p in (result.folder / "trials").glob("*/model"))
    assert models == [f"{lowest['number']:04d}"]
    for name in ("report.md", "report.html", "plots/intermediate_curves.png"):
        assert (result.folder / name).is_file()
    assert f"{lowest['number']} (best)" in (result.folder / "report.md").read_text()
    # The returned Summarizer is best/, which exports (with its parity gate) and serves.
    assert best is not None and Path(best.source) == (result.folder / "best").resolve()
    dialogue = "#Person1#: Shall we meet at noon?\n#Person2#: Noon works, see you then."
    exported = Summarizer.from_pretrained(result.folder / "best")
    exported.export(tmp_path / "onnx")
    served = Summarizer.from_pretrained(tmp_path / "onnx")
    assert served.backend == "onnxruntime"
    assert served.summarize([dialogue], num_beams=1) == exported.summarize([dialogue], num_beams=1)


def test_the_same_seed_gives_the_same_trials_and_the_same_best_model(
    first_sweep: tuple[Any, Any], tiny: Summarizer, data_files: Path, tmp_path: Path
) -> None:
    _, first = first_sweep
    _, again = run_sweep(tiny, data_files, tmp_path / "again")
    assert outcomes(again.summary) == outcomes(first.summary)
    weights = "model/adapter_model.safetensors"
    assert (again.folder / "best" / weights).read_bytes() == (
        first.folder / "best" / weights
    ).read_bytes()
    # Another seed samples other settings.
    _, other = run_sweep(tiny, data_files, tmp_path / "other", seed=4)
    assert outcomes(other.summary) != outcomes(first.summary)


@pytest.mark.parametrize(
    "killed_in",
    [
        1,
        # The last: its rerun waits in the study for its turn and must not fill the last place.
        3,
    ],
)
def test_a_sweep_killed_mid_trial_resumes_with_every_trial_once(
    first_sweep: tuple[Any, Any],
    tiny_model_dir: Path,
    data_files: Path,
    tmp_path: Path,
    killed_in: int,
) -> None:
    folder = tmp_path / "killed"
    started = (folder / "trials" / f"{killed_in:04d}").exists
    summary = killed_and_rerun(cli_sweep(tiny_model_dir, data_files, folder), started)
    interrupted = [t for t in summary["trials"] if t["state"] == "interrupted"]
    assert [t["number"] for t in interrupted] == [killed_in]
    assert interrupted[0]["rerun_as"] is not None
    # Every trial once, and the same trials, pruning and scores as the sweep never killed.
    assert outcomes(summary) == outcomes(first_sweep[1].summary)
    # The killed trial's folder keeps no empty checkpoint folder, and best/ none either;
    # no trial folder is left empty.
    assert not list((folder / "trials").glob("*/checkpoints"))
    assert not (folder / "best" / "checkpoints").exists()
    assert all(any(trial.iterdir()) for trial in (folder / "trials").iterdir())


def test_a_budget_refuses_a_sweep_that_cannot_finish_its_first_rung(
    tiny_model_dir: Path, data_files: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "refused"
    result = subprocess.run(
        cli_sweep(tiny_model_dir, data_files, folder, "--max-time", "0.01s"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "cannot finish even its first rung" in result.stderr
    assert "rung  steps  trials  time" in result.stderr  # the projection, rung by rung
    assert not (folder / "trials").exists()


def test_a_sweep_stops_at_its_budget_and_a_rerun_finishes_it(
    tiny: Summarizer, data_files: Path, tmp_path: Path
) -> None:
    # Rungs at 1 and 9 steps: the first is a small part of the whole.
    options = sweep_options(trials=8, pruner="none", reduction_factor=9)
    started = time.perf_counter()
    projection = tiny.estimate_sweep(
        data_files / "train.jsonl", data_files / "validation.jsonl",
        space=SPACE, output_dir=tmp_path / "x", training=TRAINING, sweep=options,
    )  # fmt: skip
    # The sweep measures as the estimate did, and the budget counts that time: room for the
    # measuring (twice what it took here, on a busy machine) and the first rung, not for the
    # whole (every trial trains to the end).
    measuring = time.perf_counter() - started
    budget = 2 * measuring + 2 * projection.rungs[0].seconds
    assert budget < measuring + projection.seconds
    folder = tmp_path / "budget"
    _, stopped = tiny.sweep(
        data_files / "train.jsonl", data_files / "validation.jsonl",
        space=SPACE, output_dir=folder, training=TRAINING,
        sweep={**options, "max_time": budget, "hourly_cost": 3.6},
    )  # fmt: skip
    summary = stopped.summary
    assert summary["state"] == "stopped" and "time budget" in summary["stop_reason"]
    assert len(counted(summary)) < 8
    assert (folder / "report.html").is_file()
    _, finished = tiny.sweep(
        data_files / "train.jsonl", data_files / "validation.jsonl",
        space=SPACE, output_dir=folder, training=TRAINING, sweep=options,
    )  # fmt: skip
    assert finished.summary["state"] == "finished"
    assert len(counted(finished.summary)) == 8
    assert finished.summary["best"] is not None
    # One sweep over both runs: its wall time, and its cost at the hourly cost given before.
    seconds = finished.summary["seconds"]
    assert seconds > summary["seconds"]
    assert finished.summary["cost"] == pytest.approx(seconds / 1000)
    # Run again as it was: nothing trains, nothing is measured or rewritten.
    written = (folder / "sweep.json").read_bytes()
    _, again = tiny.sweep(
        data_files / "train.jsonl", data_files / "validation.jsonl",
        space=SPACE, output_dir=folder, training=TRAINING, sweep=options,
    )  # fmt: skip
    assert again.summary == finished.summary and (folder / "sweep.json").read_bytes() == written
    # More trials: the finished sweep goes on to them.
    _, more = tiny.sweep(
        data_files / "train.jsonl", data_files / "validation.jsonl",
        space=SPACE, output_dir=folder, training=TRAINING, sweep={**options, "trials": 9},
    )  # fmt: skip
    assert len(counted(more.summary)) == 9
    assert outcomes(more.summary)[:8] == outcomes(finished.summary)


def test_workers_share_the_study(tiny: Summarizer, data_files: Path, tmp_path: Path) -> None:
    _, result = run_sweep(tiny, data_files, tmp_path / "workers", workers=2)
    trials = counted(result.summary)
    # Two processes ask the shared study; at most one extra trial starts in the race to the
    # last one.
    assert 4 <= len(trials) <= 5
    assert len({t["number"] for t in trials}) == len(trials)
    owners = {t["number"]: t for t in result.summary["trials"]}
    assert all(t["state"] in ("finished", "pruned") for t in owners.values())


def test_a_killed_sweeps_workers_end_with_it_and_its_rerun_runs_every_trial_once(
    tiny_model_dir: Path, data_files: Path, tmp_path: Path
) -> None:
    # A worker left running after a kill -9 went on asking the study for trials while the
    # rerun reran the one it was training.
    import os
    import signal
    import time

    import psutil

    from ..processes import left_after

    folder = tmp_path / "workers-killed"
    # Trials long enough that a worker left running is still training when looked at.
    command = cli_sweep(tiny_model_dir, data_files, folder, "--workers", "2", "--max-steps", "150")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 180
    while len(list(folder.glob("trials/*"))) < 2:  # both processes training a trial
        assert process.poll() is None, "the sweep ended before both processes trained"
        assert time.monotonic() < deadline, "the second trial never started"
        time.sleep(0.05)
    spawned = [
        child
        for child in psutil.Process(process.pid).children(recursive=True)
        if "spawn_main" in " ".join(child.cmdline())
    ]
    assert len(spawned) == 1, [child.cmdline() for child in spawned]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert left_after(spawned, 3) == []
    rerun = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, timeout=300, env=env
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    trials = counted(summary)
    assert 4 <= len(trials) <= 5  # as with workers never killed (the race to the last one)
    interrupted = [t for t in summary["trials"] if t["state"] == "interrupted"]
    assert 1 <= len(interrupted) <= 2 and all(t["rerun_as"] is not None for t in interrupted)
    assert all(t["state"] in ("finished", "pruned", "interrupted") for t in summary["trials"])


def test_ray_tune_runs_the_same_sweep(
    first_sweep: tuple[Any, Any], tiny: Summarizer, data_files: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ray.tune")
    _, one = run_sweep(tiny, data_files, tmp_path / "ray1", engine="ray", workers=1)
    assert one.summary["engine"] == "ray"
    assert len(counted(one.summary)) == 4
    # The same study and sampler as the Optuna engine: the same trials, the same best.
    assert one.summary["best"]["params"] == first_sweep[1].summary["best"]["params"]
    assert (one.folder / "best" / "model").is_dir()
    _, two = run_sweep(tiny, data_files, tmp_path / "ray2", engine="ray", workers=2)
    assert len(counted(two.summary)) == 4 and two.summary["best"] is not None


def test_ray_tune_asks_no_more_trials_once_one_failed() -> None:
    pytest.importorskip("ray.tune")
    import optuna

    from dialogsum.sweep.options import SweepOptions
    from dialogsum.sweep.ray_tune import StudySearcher

    study = optuna.create_study(direction="maximize")
    choices = optuna.distributions.CategoricalDistribution([2, 4])
    space = SimpleNamespace(distributions=lambda: {"r": choices})
    context: Any = SimpleNamespace(out_of_time=False, space=space, options=SweepOptions())
    searcher = StudySearcher(study, context, None, metric="score", mode="max")
    assert searcher.suggest("first") is not searcher.FINISHED
    searcher.on_trial_complete("first", error=True)
    # Its rerun waits in the study for the next run of the sweep; a trial failing every time
    # would otherwise be retried without end.
    assert searcher.suggest("second") is searcher.FINISHED
    assert searcher.errors == ["trial 0"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--search", "rank=4,8"], "unknown setting 'rank'"),
        (["--search", "learning_rate=1e-2..1e-5"], "is above the upper bound"),
        (["--search", "learning_rate=0..1e-2:log"], "log scale needs a lower bound above zero"),
        (["--search", "r=2,4", "--max-cost", "5"], "sweep: max_cost needs hourly_cost"),
        (["--search", "r=4"], "--search r=4: [4] holds one value"),
        (["--search", "epochs=1,2", "--max-steps", "12"], "max_steps is fixed at 12"),
        (["--search", "r=2,4", "--schedule", "synch"], "'async' or 'sync', got 'synch'"),
        (["--search", "r=2,4", "--storage", "/tmp/study.db"], "is not a database URL"),
        (["--search", "r=2,4", "--storage", "sqllite:///s.db"], "(did you mean sqlite?)"),
    ],
)
def test_bad_input_is_refused_before_the_model_loads(
    flags: list[str], message: str, data_files: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "dialogsum", "sweep",
            "--model", str(tmp_path / "no-such-model"),  # never loaded: the error comes first
            "--train", str(data_files / "train.jsonl"),
            "--eval", str(data_files / "validation.jsonl"),
            "--output-dir", str(tmp_path / "out"),
            *flags,
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_folder_of_another_sweep_is_not_continued(
    first_sweep: tuple[Any, Any], tiny: Summarizer, data_files: Path
) -> None:
    with pytest.raises(ConfigError, match=r"holds a sweep with other settings \(.*seed"):
        run_sweep(tiny, data_files, first_sweep[1].folder, seed=9)


def test_a_plugin_methods_options_are_swept(
    tiny: Summarizer, data_files: Path, tmp_path: Path
) -> None:
    pytest.importorskip("dialogsum_ia3")
    space = {"target_modules": [["k", "v", "wo"], ["q", "v", "wo"]]}
    _, result = tiny.sweep(
        data_files / "train.jsonl", data_files / "validation.jsonl",
        space=space, method="ia3", output_dir=tmp_path / "ia3",
        training={**TRAINING, "learning_rate": 1e-2},
        sweep=sweep_options(trials=2, pruner="none"),
    )  # fmt: skip
    trials = result.summary["trials"]
    assert {t["state"] for t in trials} == {"finished"}
    assert all(t["params"]["options.target_modules"] in space["target_modules"] for t in trials)
    recorded = json.loads((result.folder / "best" / "train_config.json").read_text())
    assert recorded["method"] == "ia3"
    assert (
        recorded["options"]["target_modules"]
        == result.summary["best"]["params"]["options.target_modules"]
    )
    # A choice the plugin's own validator refuses is refused before anything trains.
    with pytest.raises(ConfigError, match=r"'feedforward_modules': \['q'\] is not a valid"):
        tiny.sweep(
            data_files / "train.jsonl", data_files / "validation.jsonl",
            space={"feedforward_modules": [["wo"], ["q"]]}, method="ia3",
            output_dir=tmp_path / "refused", sweep=sweep_options(),
        )  # fmt: skip
    assert not (tmp_path / "refused").exists()


def test_estimate_prints_the_projection_per_rung_and_trains_nothing(
    tiny_model_dir: Path, data_files: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "estimated"
    result = subprocess.run(
        cli_sweep(tiny_model_dir, data_files, folder, "--estimate", "--hourly-cost", "3.6", "--json"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "rung  steps  trials  time  cost" in result.stdout
    assert "Projected total:" in result.stdout and "at 3.6 per hour" in result.stdout
    projection = json.loads(result.stdout[result.stdout.index("{") :])
    # Successive halving: every trial reaches the first rung, a third of them the next.
    assert [rung["trials"] for rung in projection["rungs"]] == [4, 2, 1]
    assert [rung["steps"] for rung in projection["rungs"]] == [1, 3, 9]
    assert projection["projected_seconds"] == pytest.approx(
        sum(r["seconds"] for r in projection["rungs"])
    )
    assert projection["projected_cost"] == pytest.approx(projection["projected_seconds"] / 1000)
    assert not folder.exists()


def test_settings_already_tried_are_not_trained_again(
    tiny: Summarizer, data_files: Path, tmp_path: Path
) -> None:
    _, result = tiny.sweep(
        data_files / "train.jsonl", data_files / "validation.jsonl",
        space={"r": [2, 4]}, output_dir=tmp_path / "repeats", training=TRAINING,
        sweep=sweep_options(trials=5, pruner="none"),
    )  # fmt: skip
    trials = result.summary["trials"]
    assert len(trials) == 5
    repeats = [t for t in trials if t["repeat_of"] is not None]
    trained = [t for t in trials if t["repeat_of"] is None]
    assert len(trained) == 2 and len(repeats) == 3  # two settings, each trained once
    by_number = {t["number"]: t for t in trials}
    for repeat in repeats:
        earlier = by_number[repeat["repeat_of"]]
        assert repeat["params"] == earlier["params"]
        assert repeat["rungs"] == earlier["rungs"] and repeat["score"] == earlier["score"]
    folders = sorted(p.name for p in (result.folder / "trials").iterdir())
    assert folders == [f"{t['number']:04d}" for t in trained]


@pytest.mark.parametrize("engine", [{"workers": 2}, {"engine": "ray"}])
def test_a_model_only_in_memory_is_refused_where_trials_run_elsewhere(
    engine: dict[str, Any], tiny: Summarizer, data_files: Path, tmp_path: Path
) -> None:
    in_memory = Summarizer(tiny.predictor, backend="torch")
    assert in_memory.source is None
    with pytest.raises(ConfigError, match=r"exists only in memory\. Save it first"):
        run_sweep(in_memory, data_files, tmp_path / "in-memory", **engine)
    assert not (tmp_path / "in-memory").exists()  # refused before anything was written
