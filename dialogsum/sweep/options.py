"""The options of a sweep: how many trials, what they are scored on, how poor ones stop early,
where they run and what the whole sweep may spend. Only pydantic is imported here (and
SQLAlchemy, where installed, to check a ``storage`` URL)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dialogsum.training.options import check_cost_budget, parse_duration

#: A validation context key: the options come from the sweep's own process, where their
#: storage was checked (and a relative SQLite path made absolute). A worker process or Ray
#: trial takes them as they are: a Ray trial never opens the study, and its node need not
#: have the database's driver.
CHECKED_STORAGE = "storage_checked"

#: The objectives a sweep optimizes: a ROUGE score on the validation data (higher is better)
#: or the validation loss (lower is better).
Objective = Literal["rouge1", "rouge2", "rougeL", "rougeLsum", "loss"]


class SweepOptions(BaseModel):
    """How ``dialogsum sweep`` (and ``Summarizer.sweep``) searches; the sweep's own flags."""

    model_config = ConfigDict(extra="forbid")

    trials: int = Field(12, gt=0, description="Trials to run (pruned ones included).")
    objective: Objective = Field(
        "rouge1", description="Validation score to optimize: a ROUGE type, or loss (minimized)."
    )
    pruner: Literal["successive_halving", "hyperband", "none"] = Field(
        "successive_halving",
        description="How poor trials stop early, from the scores reported at each rung.",
    )
    min_steps: int | None = Field(
        None,
        gt=0,
        description="Steps of the first rung (default: a ninth of a trial's steps, so a trial "
        "has about three rungs).",
    )
    schedule: Literal["async", "sync"] = Field(
        "async",
        description="When successive halving compares trials. async: each trial trains on "
        "unless it ranks low among the trials that reached its rung before it (so the first "
        "trials, which meet no rivals, train to the end). sync: every trial trains to a rung "
        "and waits there (a checkpoint) until all have, then the best 1/reduction_factor "
        "resume; all trials are sampled before any is scored, so at random (seeded). Optuna "
        "engine, successive halving; with workers, the same trials and decisions as one.",
    )
    reduction_factor: int = Field(
        3, ge=2, description="Each rung keeps 1/reduction_factor of the trials reaching it."
    )
    random_trials: int | None = Field(
        None,
        ge=1,
        description="Trials sampled at random before TPE models the results (default: a third "
        "of the trials, at least 2).",
    )
    seed: int = Field(0, description="Seeds the sampler; trials train with the training seed.")
    engine: Literal["optuna", "ray"] = Field(
        "optuna", description="optuna: this machine; ray: Ray Tune, local or RAY_ADDRESS."
    )
    workers: int = Field(1, gt=0, description="Trials run at once (processes or Ray workers).")
    storage: str | None = Field(
        None,
        description="Optuna storage URL shared by a team (e.g. postgresql://...); default: "
        "SQLite in the sweep folder.",
    )
    cpus_per_trial: float = Field(1.0, gt=0, description="Ray: CPUs each trial asks for.")
    gpus_per_trial: float = Field(0.0, ge=0, description="Ray: GPUs each trial asks for.")
    ray_address: str | None = Field(None, description="Ray cluster to join (or RAY_ADDRESS).")
    eval_limit: int | None = Field(
        None, gt=0, description="Score trials on the first N validation dialogues only."
    )
    rung_decoding: Literal["model", "greedy"] = Field(
        "model",
        description="How a ROUGE objective decodes summaries at the rungs where trials are "
        "compared: model (the model's own settings, as the trials' own scores) or greedy (one "
        "beam: a rung costs a fraction of beam search, but ranks trials by another decoding). "
        "A trial's own score, at its end, always uses the model's own.",
    )
    hourly_cost: float | None = Field(
        None, ge=0, description="Price of the machine per hour: projections and reports show cost."
    )
    max_time: float | None = Field(
        None,
        gt=0,
        description="Time budget of this invocation (seconds or 90s, 45m, 2h): refused if even "
        "the first rung is projected over it; stopped with the best trial so far when reached.",
    )
    max_cost: float | None = Field(
        None, gt=0, description="Cost budget of this invocation (needs hourly_cost)."
    )
    keep_models: bool = Field(
        False, description="Keep every finished trial's model (default: only best/)."
    )
    progress: bool = Field(True, description="Show a progress bar over trials and rungs.")

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or (info.context or {}).get(CHECKED_STORAGE):
            return value
        from dialogsum.sweep.storage import check_storage

        return check_storage(value)

    @field_validator("max_time", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _cost_needs_price(self) -> SweepOptions:
        check_cost_budget(self.max_cost, self.hourly_cost)
        return self

    @model_validator(mode="after")
    def _sync_schedule(self) -> SweepOptions:
        if self.schedule != "sync":
            return self
        # Each refusal names what to change: a sync schedule is successive halving whose
        # rungs are whole, which these settings cannot give.
        if self.pruner != "successive_halving":
            raise ValueError(
                f"schedule 'sync' is successive halving with whole rungs; pruner "
                f"'{self.pruner}' cannot run that way. Use pruner 'successive_halving' "
                f"(--pruner successive_halving) or schedule 'async'"
            )
        if self.engine != "optuna":
            raise ValueError(
                "schedule 'sync' runs on the optuna engine; Ray Tune's ASHA scheduler is "
                "asynchronous. Use engine 'optuna' (--engine optuna) or schedule 'async'"
            )
        return self

    @property
    def maximize(self) -> bool:
        """Whether a higher objective is better (ROUGE) or a lower one (loss)."""
        return self.objective != "loss"

    @property
    def greedy_rungs(self) -> bool:
        """Whether rungs where trials are compared decode greedily (a ROUGE objective only)."""
        return self.rung_decoding == "greedy" and self.objective != "loss"

    def startup_trials(self) -> int:
        """Trials sampled at random before TPE takes over."""
        return self.random_trials or max(2, self.trials // 3)

    def check_installed(self) -> None:
        """Fail, naming the extra to install, when the engine's packages are missing."""
        from dialogsum.errors import require

        require("optuna", extra="sweep", purpose="A sweep")
        if self.engine == "ray":
            require("ray.tune", extra="sweep-ray", purpose="A sweep on Ray Tune (engine ray)")
