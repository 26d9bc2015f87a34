"""The budget guard: --max-time and --max-cost refuse a run projected over budget, stop a run
that reaches it with a checkpoint and a partial model, and the run resumes to the same weights
as an uninterrupted one. A budget that is not reached changes nothing, bit for bit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dialogsum import ConfigError, Summarizer
from dialogsum.training.options import parse_training

from ..training_runs import adapter_weights, max_difference, train


def metrics(run_dir: Path) -> dict[str, object]:
    return json.loads((run_dir / "metrics.json").read_text())  # type: ignore[no-any-return]


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("90s", 90),
        ("45m", 2700),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1.5h", 5400),
        (5400, 5400),
        ("5400", 5400),
        (0.5, 0.5),
    ],
)
def test_max_time_takes_durations_and_seconds(given: object, seconds: float) -> None:
    assert parse_training({"max_time": given}).max_time == seconds


@pytest.mark.parametrize(
    ("given", "error"),
    [
        (
            "soon",
            r"max_time: .*expected a number of seconds \(5400\) or a duration such as 90s, 45m, 2h or 1h30m, got 'soon'",
        ),
        ("1h30", r"max_time: .*got '1h30'"),
        (-5, r"max_time: Input should be greater than 0"),
        ("0s", r"max_time: Input should be greater than 0"),
    ],
)
def test_a_bad_max_time_names_the_field_and_the_forms(given: object, error: str) -> None:
    with pytest.raises(ConfigError, match=r"Invalid options for training: " + error):
        parse_training({"max_time": given})


def test_max_cost_needs_hourly_cost_and_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"max_cost needs hourly_cost.*--hourly-cost.*max_time"):
        parse_training({"max_cost": 5})
    with pytest.raises(ConfigError, match=r"max_cost: Input should be greater than 0"):
        parse_training({"max_cost": -1, "hourly_cost": 1})
    assert parse_training({"max_cost": 5, "hourly_cost": 0.9}).max_cost == 5


def test_the_flags_and_a_config_file_say_the_same(tmp_path: Path) -> None:
    from dialogsum.cli import build_parser
    from dialogsum.cli.config import TrainConfig, build_config, flags_to_settings

    args = build_parser().parse_args(
        [
            "train",
            "--train",
            "t.jsonl",
            "--output-dir",
            "r",
            "--max-time",
            "1h30m",
            "--max-cost",
            "2",
            "--hourly-cost",
            "0.9",
            "--force",
        ]
    )
    training = build_config(TrainConfig, None, flags_to_settings(args)).training
    assert (training.max_time, training.max_cost, training.force) == (5400, 2, True)
    file = tmp_path / "run.yaml"
    file.write_text("train: t.jsonl\noutput_dir: r\nmax_time: 45m\n")
    assert build_config(TrainConfig, str(file), {}).training.max_time == 2700
    file.write_text("train: t.jsonl\noutput_dir: r\ntraining: {max_cost: 3}\n")
    with pytest.raises(ConfigError, match=rf"config file {file}.*max_cost needs hourly_cost"):
        build_config(TrainConfig, str(file), {})


# -- the guard, on an injected clock -----------------------------------------------------------


class FakeClock:
    """Ten seconds pass between readings."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 10.0
        return self.now


def drive(guard: object, steps: int) -> tuple[int, object]:
    from transformers.trainer_callback import TrainerControl, TrainerState

    state = TrainerState(max_steps=steps)
    for step in range(1, steps + 1):
        state.global_step = step
        control = guard.on_step_end(None, state, TrainerControl())  # type: ignore[attr-defined]
        if control.should_training_stop:
            return step, control
    return steps, None


def test_the_guard_stops_at_the_first_step_at_or_past_the_time_budget() -> None:
    from dialogsum.training.budget import Budget, BudgetGuard

    guard = BudgetGuard(
        Budget(max_time=35, max_cost=None, hourly_cost=None), started=0.0, clock=FakeClock()
    )
    step, control = drive(guard, 10)  # readings 10, 20, 30, 40: the fourth reaches 35
    assert step == 4
    assert control.should_save and control.should_log  # type: ignore[attr-defined]
    assert guard.stop is not None and (guard.stop.limit, guard.stop.step) == ("max_time", 4)
    assert guard.stop.seconds == 40 and guard.stop.total_steps == 10
    message = guard.stop.message(Path("run/checkpoints"))
    assert "stopped at step 4 of 10" in message and "checkpoint-4" in message
    assert "--resume-from-checkpoint" in message


def test_the_guard_counts_cost_at_the_hourly_price() -> None:
    from dialogsum.training.budget import Budget, BudgetGuard

    # 3600 per hour is 1 per second: 10 per step, so a budget of 25 is reached at step 3.
    guard = BudgetGuard(
        Budget(max_time=None, max_cost=25, hourly_cost=3600), started=0.0, clock=FakeClock()
    )
    assert drive(guard, 10)[0] == 3
    assert guard.stop is not None and guard.stop.limit == "max_cost" and guard.stop.cost == 30
    assert "max_cost 25.00 (at 3,600.00 per hour)" in guard.stop.message(None)


def test_a_budget_reached_at_the_last_step_is_no_stop() -> None:
    from dialogsum.training.budget import Budget, BudgetGuard

    guard = BudgetGuard(
        Budget(max_time=30, max_cost=None, hourly_cost=None), started=0.0, clock=FakeClock()
    )
    assert drive(guard, 3) == (3, None)
    assert guard.stop is None and guard.record()["stopped"] is None


# -- the pre-flight check, in process -----------------------------------------------------------


FAST = {
    "batch_size": 4,
    "progress": False,
    "logging_steps": 1,
    "learning_rate": 1e-2,
    "max_steps": 6,
    "save_strategy": "no",
    "eval_strategy": "no",
}


def test_a_run_projected_over_its_cost_is_refused_before_it_trains(
    tiny_model_dir: Path,
    few_examples,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    base = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    run = tmp_path / "run"
    # 3,600,000 per hour is 1,000 per second: a budget of 0.01 cannot pay for six steps.
    budget = {**FAST, "hourly_cost": 3_600_000, "max_cost": 0.01}
    with pytest.raises(ConfigError) as refused:
        base.finetune(few_examples, output_dir=run, training=budget)
    message = str(refused.value)
    assert "projected to exceed its budget: 6 steps at" in message
    # The projection counts the time measuring took, and says so (6 x the step is less).
    assert re.search(r"take about [\d.]+ s with the [\d.]+ s spent measuring", message)
    assert "over the budget of max_cost 0.01 (at 3,600,000.00 per hour)" in message
    assert "Nothing was trained" in message and "force=True (CLI: --force)" in message
    assert "--max-cost" in message and "max_steps" in message
    assert not (run / "model").exists() and not (run / "checkpoints").exists()


# -- the real command line ---------------------------------------------------------------------


def test_a_budget_not_reached_changes_nothing(
    lora_run_dir: Path, tiny_model_dir: Path, sample_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    result = train(
        tiny_model_dir,
        sample_dir / "validation.jsonl",
        run_dir,
        "--max-time",
        "1h",
        "--hourly-cost",
        "1",
        "--max-cost",
        "5",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "budget check: about" in result.stderr  # the pre-flight measured and passed
    # Its measured steps were thrown away: the same weights and losses, bit for bit.
    assert max_difference(adapter_weights(lora_run_dir), adapter_weights(run_dir)) == 0.0
    assert metrics(run_dir)["train_loss"] == metrics(lora_run_dir)["train_loss"]
    assert "stopped" not in metrics(run_dir)
    assert metrics(run_dir)["budget"]["stopped"] is None  # type: ignore[index]
    assert (
        "| budget | max_time 3600 s, max_cost 5; not reached" in (run_dir / "README.md").read_text()
    )


def test_the_budget_stops_the_run_and_the_run_resumes(
    lora_run_dir: Path, tiny_model_dir: Path, sample_dir: Path, tmp_path: Path
) -> None:
    data = sample_dir / "validation.jsonl"
    run_dir = tmp_path / "run"
    # A millisecond: the projection of twelve steps is certainly over it.
    refused = train(tiny_model_dir, data, run_dir, "--max-time", "0.001")
    assert refused.returncode == 2
    assert "projected to exceed its budget" in refused.stderr and "--force" in refused.stderr
    assert not run_dir.exists()

    # With --force it trains, and the first step certainly ends past a millisecond.
    stopped = train(tiny_model_dir, data, run_dir, "--max-time", "0.001", "--force")
    assert stopped.returncode == 3, stopped.stderr[-3000:]
    assert "budget check" not in stopped.stderr  # --force skips the measurement
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith("dialogsum train: The training budget (max_time 0.001 s) was reached")
    assert "stopped at step 1 of 12" in last and "--resume-from-checkpoint" in last
    assert str(run_dir / "checkpoints" / "checkpoint-1") in last
    record = metrics(run_dir)
    assert record["stopped"] == "budget" and record["global_step"] == 1
    assert record["budget"]["stopped"]["limit"] == "max_time"  # type: ignore[index]
    assert json.loads(stopped.stdout)["stopped"] == "budget"
    assert [p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")] == ["checkpoint-1"]
    card = (run_dir / "model" / "README.md").read_text()
    assert "**Partial model.**" in card and "Not scored: training stopped at its budget" in card

    # Rerunning without resuming points to resuming, not to --overwrite.
    advice = train(tiny_model_dir, data, run_dir)
    assert advice.returncode == 2 and "did not finish" in advice.stderr
    assert "--resume-from-checkpoint" in advice.stderr

    resumed = train(tiny_model_dir, data, run_dir, "--resume-from-checkpoint")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr and "checkpoint-1" in resumed.stderr
    difference = max_difference(adapter_weights(lora_run_dir), adapter_weights(run_dir))
    assert difference <= 1e-6, difference
    assert metrics(run_dir)["global_step"] == 12 and "stopped" not in metrics(run_dir)
    assert metrics(run_dir)["train_loss"] == pytest.approx(
        metrics(lora_run_dir)["train_loss"], abs=1e-6
    )
    assert "Partial model" not in (run_dir / "model" / "README.md").read_text()


def test_a_cost_under_a_cent_is_not_shown_as_nothing() -> None:
    from dialogsum.training.estimates import format_cost

    # A short run at a low hourly cost read "costing about 0.00".
    assert format_cost(0.0018163) == "0.0018"
    assert (format_cost(0), format_cost(0.4), format_cost(1234.567)) == ("0.00", "0.40", "1,234.57")
