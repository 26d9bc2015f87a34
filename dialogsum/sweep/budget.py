"""What a sweep will cost, projected before it starts from measured times, as
``dialogsum train --estimate`` does for one run.

Times are measured on this machine with the sweep's own model and data: one training step (at
the space's largest batch size), one scoring of the validation data (and one greedy scoring,
where rungs before the last decode greedily), and the start of a trial (its planning: the model
copied, the method applied, the data tokenized). Rung ``k`` trains ``ceil(trials / factor**k)``
trials (successive halving keeps that many) from the previous rung's step to its own, and
scores each once; without a pruner every trial reaches every rung. With the sync schedule a
rung keeps ``floor(n / factor)`` (at least one) of the ``n`` that reached the one before, and
each of them starts again there (from its checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dialogsum.errors import ConfigError
from dialogsum.sweep.options import SweepOptions
from dialogsum.sweep.trials import rung_steps
from dialogsum.training.estimates import format_cost, format_duration


@dataclass(frozen=True)
class RungProjection:
    """One rung: its step, how many trials reach it, and what training to it costs."""

    rung: int
    steps: int
    trials: int
    seconds: float
    cost: float | None


@dataclass(frozen=True)
class SweepProjection:
    """A sweep's projected time and cost, per rung and in total."""

    seconds_per_step: float
    seconds_per_score: float
    seconds_per_start: float
    rungs: list[RungProjection]
    #: A scoring at a rung before the last (greedy with rung_decoding greedy, else the same
    #: as seconds_per_score).
    seconds_per_rung_score: float
    hourly_cost: float | None
    #: Trials trained side by side (the projection is of one at a time).
    workers: int = 1

    @property
    def seconds(self) -> float:
        """Projected wall time of the whole sweep."""
        return sum(rung.seconds for rung in self.rungs)

    @property
    def cost(self) -> float | None:
        """Projected price, with an hourly cost."""
        return None if self.hourly_cost is None else self.seconds / 3600 * self.hourly_cost

    def cost_of(self, seconds: float) -> float:
        """The price of ``seconds`` at the hourly cost (0 without one)."""
        return 0.0 if self.hourly_cost is None else seconds / 3600 * self.hourly_cost

    def as_dict(self) -> dict[str, Any]:
        """The projection as plain values (``--json``, ``sweep.json``)."""
        return {
            "seconds_per_step": self.seconds_per_step,
            "seconds_per_score": self.seconds_per_score,
            "seconds_per_rung_score": self.seconds_per_rung_score,
            "seconds_per_start": self.seconds_per_start,
            "rungs": [rung.__dict__ for rung in self.rungs],
            "projected_seconds": self.seconds,
            "projected_cost": self.cost,
            "hourly_cost": self.hourly_cost,
        }

    def message(self) -> str:
        """A table people read: each rung's trials, steps, time and cost, then the total."""
        greedy = (
            f" ({self.seconds_per_rung_score:.2f} s greedy, at the rungs before the last)"
            if self.seconds_per_rung_score != self.seconds_per_score
            else ""
        )
        lines = [
            f"Measured: {self.seconds_per_step:.3f} s per step, "
            f"{self.seconds_per_score:.2f} s per validation score{greedy}, "
            f"{self.seconds_per_start:.2f} s to start a trial.",
            "rung  steps  trials  time" + ("  cost" if self.hourly_cost is not None else ""),
        ]
        for rung in self.rungs:
            cost = f"  {format_cost(rung.cost)}" if rung.cost is not None else ""
            lines.append(
                f"{rung.rung:>4}  {rung.steps:>5}  {rung.trials:>6}  "
                f"{format_duration(rung.seconds)}{cost}"
            )
        total = f"Projected total: {format_duration(self.seconds)}"
        if self.cost is not None:
            total += f", cost {format_cost(self.cost)} at {self.hourly_cost:g} per hour"
        total += ", one trial at a time"
        if self.workers > 1:
            total += f" (with {self.workers} workers, up to {self.workers} times less wall time"
            total += " where the machine has the cores for them)"
        return "\n".join([*lines, total + "."])


def project_sweep(
    options: SweepOptions,
    *,
    trials: int,
    total_steps: int,
    first_rung: int,
    seconds_per_step: float,
    seconds_per_score: float,
    seconds_per_start: float,
    seconds_per_rung_score: float | None = None,
) -> SweepProjection:
    """Project ``trials`` more trials of at most ``total_steps`` steps each; a rung before the
    last is scored in ``seconds_per_rung_score`` (default: ``seconds_per_score``)."""
    factor = options.reduction_factor
    rung_score = seconds_per_score if seconds_per_rung_score is None else seconds_per_rung_score
    projected = []
    previous = 0
    steps_at = rung_steps(total_steps, first_rung, factor)
    reaching = trials
    for index, steps in enumerate(steps_at):
        if options.schedule == "sync":
            reaching = reaching if index == 0 else min(reaching, max(1, reaching // factor))
        else:
            reaching = trials if options.pruner == "none" else math.ceil(trials / factor**index)
        score = seconds_per_score if index == len(steps_at) - 1 else rung_score
        seconds = reaching * ((steps - previous) * seconds_per_step + score)
        # Every trial starts once; with the sync schedule, each again at every later rung.
        if index == 0 or options.schedule == "sync":
            seconds += reaching * seconds_per_start
        cost = None if options.hourly_cost is None else seconds / 3600 * options.hourly_cost
        projected.append(RungProjection(index, steps, reaching, seconds, cost))
        previous = steps
    return SweepProjection(
        seconds_per_step=seconds_per_step,
        seconds_per_score=seconds_per_score,
        seconds_per_start=seconds_per_start,
        seconds_per_rung_score=rung_score,
        rungs=projected,
        hourly_cost=options.hourly_cost,
        workers=options.workers,
    )


def check_budget(projection: SweepProjection, options: SweepOptions, spent: float = 0.0) -> None:
    """Refuse a sweep whose first rung alone is projected over its budget, after the
    ``spent`` seconds this run of the sweep has taken already (measuring for the projection:
    the budget counts them)."""
    if not projection.rungs:
        return
    first = projection.rungs[0]
    # The projection is of one trial at a time. Workers train side by side, by up to as many
    # at once as there are workers (where the machine has the cores): only a first rung that
    # even that cannot finish is refused. Where they share the cores the projection was
    # measured with (sharing_cores), side by side is no faster than one after another.
    from dialogsum.sweep.job import threads_per_process

    at_once = max(1, min(options.workers, first.trials))
    if options.engine == "optuna" and threads_per_process(at_once) is not None:
        at_once = 1
    seconds = spent + first.seconds / at_once
    cost = None if first.cost is None else first.cost / at_once + projection.cost_of(spent)
    over = []
    if options.max_time is not None and seconds > options.max_time:
        over.append(f"the time budget of {format_duration(options.max_time)}")
    if options.max_cost is not None and cost is not None and cost > options.max_cost:
        over.append(f"the cost budget of {options.max_cost:g}")
    if over:
        side_by_side = f", {at_once} at a time" if at_once > 1 else ""
        measuring = f" with the {format_duration(spent)} spent measuring" if spent >= 1 else ""
        raise ConfigError(
            f"This sweep cannot finish even its first rung ({first.trials} trials to step "
            f"{first.steps}{side_by_side}, projected {format_duration(seconds)}{measuring}) "
            f"within "
            f"{' and '.join(over)}.\n{projection.message()}\nRaise the budget (--max-time, "
            f"--max-cost), or ask for fewer trials (--trials) or a shorter first rung "
            f"(--min-steps)."
        )


def budget_seconds(options: SweepOptions) -> float | None:
    """The budget as seconds of wall time: the time budget, or the cost budget's hours."""
    limits = []
    if options.max_time is not None:
        limits.append(options.max_time)
    if options.max_cost is not None and options.hourly_cost:
        limits.append(options.max_cost / options.hourly_cost * 3600)
    return min(limits) if limits else None
