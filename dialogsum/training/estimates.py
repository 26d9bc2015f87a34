"""Estimates before training: time a few real steps of the planned run and project the whole."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

from dialogsum.errors import ConfigError
from dialogsum.files import temporary_folder
from dialogsum.training.planning import RunPlan


@dataclass(frozen=True)
class Estimate:
    """A projection of a run's wall time (and price) from a few measured steps."""

    measured_steps: int
    seconds_per_step: float
    total_steps: int
    examples: int
    hardware: str
    hourly_cost: float | None = None
    #: 1-minute load average when measuring started (other work skews the projection).
    load_before: float | None = None

    @property
    def seconds(self) -> float:
        """Projected wall time of the training steps."""
        return self.seconds_per_step * self.total_steps

    @property
    def cost(self) -> float | None:
        """Projected price at ``hourly_cost`` per hour, if one was given."""
        return None if self.hourly_cost is None else self.seconds / 3600 * self.hourly_cost

    def as_dict(self) -> dict[str, Any]:
        """The estimate as plain values (for ``--json``)."""
        return {
            "measured_steps": self.measured_steps,
            "seconds_per_step": self.seconds_per_step,
            "total_steps": self.total_steps,
            "examples": self.examples,
            "projected_seconds": self.seconds,
            "hourly_cost": self.hourly_cost,
            "projected_cost": self.cost,
            "hardware": self.hardware,
            "load_before": self.load_before,
        }

    def message(self) -> str:
        """One paragraph for the user, before they spend the time."""
        text = (
            f"Measured {self.seconds_per_step:.2f} s per step over {self.measured_steps} steps on "
            f"{self.hardware}. The run is {self.total_steps:,} steps ({self.examples:,} training "
            f"pairs): about {format_duration(self.seconds)} of training"
        )
        if self.cost is not None:
            text += f", costing about {format_cost(self.cost)} at {self.hourly_cost:,.2f} per hour"
        text += " (evaluation and saving not included)."
        cores = os.cpu_count() or 1
        if self.load_before is not None and self.load_before >= 0.5 * cores:
            text += (
                f" The machine was already busy when measuring (load average "
                f"{self.load_before:.1f} on {cores} cores): other work slows training steps, so "
                f"this projection is likely too long; measure again on an idle machine."
            )
        return text


def format_cost(amount: float) -> str:
    """``1234.5`` -> ``1,234.50``; an amount under a cent with its first two digits (``0.0018``),
    not ``0.00`` (a short run at a low hourly cost)."""
    return f"{amount:,.2f}" if amount == 0 or abs(amount) >= 0.01 else f"{amount:.2g}"


def format_duration(seconds: float) -> str:
    """``5412`` -> ``1 h 30 min``, ``90`` -> ``1 min 30 s``; under a minute in seconds (a
    budget of 90 s must not read as 2 min)."""
    if seconds >= 3600:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours} h {rest} min"
    if seconds >= 600:
        return f"{seconds / 60:.0f} min"
    if seconds >= 60:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return f"{seconds:.0f} s"


def estimate_run(plan: RunPlan, *, steps: int = 5) -> Estimate:
    """Train ``steps`` (+1 warm-up) real steps of ``plan`` and project the whole run."""
    from transformers import TrainerCallback

    from dialogsum.training.reports import hardware_description
    from dialogsum.training.trainer import train

    if steps < 1:
        raise ConfigError(f"An estimate needs at least one measured step, got steps={steps}.")
    durations: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            durations.append(time.perf_counter() - self.started)

    options = plan.training.model_copy(
        update={
            "max_steps": steps + 1,
            "save_strategy": "no",
            "eval_strategy": "no",
            "resume_from_checkpoint": False,
            "report_to": [],
        }
    )
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with temporary_folder("dialogsum-estimate-") as scratch:
        train(
            plan.module,
            plan.tokenizer,
            plan.train_features,
            None,
            options,
            learning_rate=plan.learning_rate,
            checkpoint_dir=scratch,
            max_target_length=plan.data.max_target_length,
            callbacks=[StepTimer()],
        )
    measured = durations[1:] or durations  # the first step pays for warm-up
    return Estimate(
        measured_steps=len(measured),
        seconds_per_step=statistics.median(measured),
        total_steps=plan.total_steps(),
        examples=len(plan.train_features),
        hardware=hardware_description(),
        hourly_cost=plan.training.hourly_cost,
        load_before=load_before,
    )
