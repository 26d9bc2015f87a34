"""Budgets of a training run: ``max_time`` and ``max_cost`` (with ``hourly_cost``).

Before training, a run with a budget measures a few real steps (the projection ``--estimate``
makes, :func:`~dialogsum.training.estimates.estimate_run`) and is refused when the projection
exceeds the budget, unless ``force``. During training, :class:`BudgetGuard` stops the run at
the first step that ends at or past the budget, after saving a checkpoint there, so a rerun
with ``resume_from_checkpoint`` and a larger budget (or none) finishes it.

The budget applies to one invocation: its clock starts when the run starts (the pre-flight
measurement included) and a resumed run gets the whole budget again. The figures recorded in
``metrics.json`` also give the time of the whole run across resumes, where the checkpoint it
resumed from recorded it. Imported only when training starts (it imports transformers).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers.trainer_callback import TrainerCallback

from dialogsum.errors import ConfigError, logger
from dialogsum.training.estimates import format_cost, format_duration
from dialogsum.training.options import TrainingOptions
from dialogsum.training.planning import RunPlan

#: Written into every checkpoint a budgeted run saves: seconds spent on the run so far.
BUDGET_FILE = "dialogsum_budget.json"

#: Steps the pre-flight measures (after one warm-up step). Few, because they are paid for and
#: thrown away; runs no longer than the measurement are not measured at all.
PREFLIGHT_STEPS = 2

Clock = Callable[[], float]


def describe_seconds(seconds: float) -> str:
    """:func:`format_duration`, with short budgets (tests, trials) not rounded to ``0 s``."""
    return format_duration(seconds) if seconds >= 10 else f"{seconds:.3g} s"


@dataclass(frozen=True)
class Budget:
    """The limits of one invocation: seconds and/or cost at ``hourly_cost`` per hour."""

    max_time: float | None
    max_cost: float | None
    hourly_cost: float | None

    @classmethod
    def of(cls, options: TrainingOptions) -> Budget | None:
        """The budget ``options`` set, or None when they set none."""
        if options.max_time is None and options.max_cost is None:
            return None
        return cls(options.max_time, options.max_cost, options.hourly_cost)

    def cost(self, seconds: float) -> float | None:
        """The price of ``seconds`` on this machine, if its hourly cost is known."""
        return None if self.hourly_cost is None else seconds / 3600 * self.hourly_cost

    def exceeded(self, seconds: float) -> str | None:
        """The limit ``seconds`` of running reaches (``max_time`` or ``max_cost``), or None."""
        if self.max_time is not None and seconds >= self.max_time:
            return "max_time"
        cost = self.cost(seconds)
        if self.max_cost is not None and cost is not None and cost >= self.max_cost:
            return "max_cost"
        return None

    def describe(self, limit: str) -> str:
        """``max_time 45 min`` or ``max_cost 2.00 (at 0.90 per hour)``."""
        if limit == "max_time" and self.max_time is not None:
            return f"max_time {describe_seconds(self.max_time)}"
        return f"max_cost {self.max_cost:,.2f} (at {self.hourly_cost:,.2f} per hour)"

    def as_dict(self) -> dict[str, Any]:
        """The limits as plain values."""
        return {
            "max_time": self.max_time,
            "max_cost": self.max_cost,
            "hourly_cost": self.hourly_cost,
        }


RESUME_ADVICE = (
    "To finish the run, rerun the same command with --resume-from-checkpoint (Python: "
    "resume_from_checkpoint=True) and a larger --max-time/--max-cost, or none."
)


@dataclass(frozen=True)
class BudgetStop:
    """Where and why a budget stopped a run."""

    limit: str
    step: int
    total_steps: int
    seconds: float
    cost: float | None
    budget: Budget

    def message(self, checkpoint_dir: Path | None) -> str:
        """What happened and how to go on."""
        spent = describe_seconds(self.seconds)
        if self.cost is not None:
            spent += f", costing {format_cost(self.cost)}"
        text = (
            f"The training budget ({self.budget.describe(self.limit)}) was reached after {spent}: "
            f"stopped at step {self.step} of {self.total_steps}."
        )
        if checkpoint_dir is None:
            return text + " No checkpoint was kept (the run had no output folder)."
        checkpoint = checkpoint_dir / f"checkpoint-{self.step}"
        model = checkpoint_dir.parent / "model"
        return f"{text} Saved {checkpoint}, and the partial model in {model}. {RESUME_ADVICE}"


class BudgetGuard(TrainerCallback):
    """Stops training, with a checkpoint, once this invocation has used its budget.

    ``clock`` gives seconds (monotonic); ``started`` is its reading when the run started.
    """

    def __init__(self, budget: Budget, *, started: float, clock: Clock = time.monotonic) -> None:
        self.budget = budget
        self.started = started
        self.clock = clock
        #: Seconds the run had used before this invocation (None: not recorded).
        self.previous_seconds: float | None = 0.0
        self.stop: BudgetStop | None = None

    def elapsed(self) -> float:
        """Seconds this invocation has run."""
        return self.clock() - self.started

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """On resume, read the time the run had used from the checkpoint it resumes from."""
        if state.global_step:
            record = Path(args.output_dir) / f"checkpoint-{state.global_step}" / BUDGET_FILE
            try:
                data = json.loads(record.read_text(encoding="utf-8"))
                self.previous_seconds = float(data["run_seconds"])
            except (OSError, ValueError, KeyError, TypeError):
                self.previous_seconds = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Past the budget (and not at the last step anyway): save, log and stop."""
        seconds = agreed_max(self.elapsed(), getattr(args, "device", None))
        limit = self.budget.exceeded(seconds)
        if limit is None or self.stop is not None or state.global_step >= state.max_steps:
            return control
        self.stop = BudgetStop(
            limit,
            state.global_step,
            state.max_steps,
            seconds,
            self.budget.cost(seconds),
            self.budget,
        )
        logger.warning(
            "budget reached (%s) at step %d of %d: saving a checkpoint and stopping",
            self.budget.describe(limit),
            state.global_step,
            state.max_steps,
        )
        control.should_save = True
        control.should_log = True  # so the loss sum saved with the checkpoint is whole
        control.should_training_stop = True
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Record the run's time so far in the checkpoint just saved."""
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            payload = {"run_seconds": self.run_seconds(), "invocation_seconds": self.elapsed()}
            (folder / BUDGET_FILE).write_text(json.dumps(payload) + "\n", encoding="utf-8")

    def run_seconds(self) -> float | None:
        """Seconds of the whole run, across resumes (None when an earlier part is unknown)."""
        return None if self.previous_seconds is None else self.previous_seconds + self.elapsed()

    def record(self) -> dict[str, Any]:
        """What ``metrics.json`` says about the budget."""
        seconds = self.elapsed()
        return {
            **self.budget.as_dict(),
            "seconds": seconds,
            "cost": self.budget.cost(seconds),
            "run_seconds": self.run_seconds(),
            "stopped": None
            if self.stop is None
            else {
                "limit": self.stop.limit,
                "step": self.stop.step,
                "total_steps": self.stop.total_steps,
                "seconds": self.stop.seconds,
                "cost": self.stop.cost,
            },
        }


def record_budget(guard: BudgetGuard, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
    """Write the budget's record into a run's ``metrics`` (``stopped: budget`` when it stopped
    the run) and warn, saying how to resume, when it did."""
    metrics["budget"] = guard.record()
    if guard.stop is not None:
        message = guard.stop.message(checkpoint_dir)
        metrics["stopped"] = "budget"
        metrics["budget"]["message"] = message
        logger.warning("%s", message)


def start_budget(
    plan: RunPlan, resume: Path | None, *, clock: Clock = time.monotonic
) -> BudgetGuard | None:
    """Check ``plan``'s budget before training; the guard that enforces it, or None.

    ``resume`` is the checkpoint the run continues from (None: a fresh run).

    Raises :class:`ConfigError` when the projected run exceeds the budget and ``force`` is off.
    """
    budget = Budget.of(plan.training)
    if budget is None:
        return None
    started = clock()
    if not plan.training.force:
        preflight(plan, budget, resume, started=started, clock=clock)
    return BudgetGuard(budget, started=started, clock=clock)


def preflight(
    plan: RunPlan, budget: Budget, resume: Path | None, *, started: float, clock: Clock
) -> None:
    """Measure a few steps and refuse a run projected past ``budget``.

    The measured steps train ``plan.module``; its trainable weights are put back afterwards,
    so the run that follows is the one that would have run without a budget.
    """
    from dialogsum.training.estimates import estimate_run

    remaining = plan.total_steps() - resumed_step(resume)
    if remaining <= PREFLIGHT_STEPS + 1:
        return  # measuring would cost as much as the run; the guard still applies
    logger.info(
        "budget check: timing %d training steps (after one to warm up) to project the run "
        "(force=True skips this)",
        PREFLIGHT_STEPS,
    )
    saved = _trainable_weights(plan.module)
    try:
        estimate = estimate_run(plan, steps=PREFLIGHT_STEPS)
    finally:
        _restore(plan.module, saved)
    spent = clock() - started  # the budget counts the measuring
    projected = agreed_max(spent + estimate.seconds_per_step * remaining)
    limit = budget.exceeded(projected)
    if limit is None:
        logger.info(
            "budget check: about %s projected, within %s",
            describe_seconds(projected),
            ", ".join(
                budget.describe(name)
                for name in ("max_time", "max_cost")
                if getattr(budget, name) is not None
            ),
        )
        return
    cost = budget.cost(projected)
    raise ConfigError(
        f"The run is projected to exceed its budget: {remaining:,} steps at "
        f"{estimate.seconds_per_step:.2f} s per step (measured over {estimate.measured_steps} "
        f"steps on {estimate.hardware}) take about {describe_seconds(projected)} with the "
        f"{describe_seconds(spent)} spent measuring"
        + (f" and cost about {format_cost(cost)}" if cost is not None else "")
        + f", over the budget of {budget.describe(limit)}. Nothing was trained. Raise the budget "
        f"(max_time/max_cost; CLI: --max-time, --max-cost), train fewer steps (epochs, "
        f"max_steps), or pass force=True (CLI: --force) to train anyway and stop at the budget "
        f"with a checkpoint to resume from."
    )


def agreed_max(seconds: float, device: Any = None) -> float:
    """The largest ``seconds`` over the processes of a distributed launch (else ``seconds``).

    Every process must take the same decision, or those that stop wait forever for those
    that go on: the slowest process's clock decides for all.
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return seconds
    if device is None:
        nccl = dist.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if nccl else "cpu"
    value = torch.tensor([seconds], dtype=torch.float64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value.item())


def resumed_step(checkpoint: Path | None) -> int:
    """The step a run resuming from ``checkpoint`` continues from (0 when starting fresh)."""
    if checkpoint is None:
        return 0
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        return int(state["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _trainable_weights(module: Any) -> dict[str, Any]:
    return {
        name: parameter.detach().clone()
        for name, parameter in module.named_parameters()
        if parameter.requires_grad
    }


def _restore(module: Any, saved: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name in saved:
                parameter.copy_(saved[name])
                parameter.grad = None
