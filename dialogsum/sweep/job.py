"""A sweep's inputs as plain values (:class:`SweepJob`) and the context its trials share,
built in the process that runs the sweep or rebuilt in a worker process or a Ray worker."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dialogsum.data import DataOptions, Example, examples_digest
from dialogsum.errors import ConfigError, logger
from dialogsum.interfaces import Predictor
from dialogsum.modeling import ModelManifest, TorchModel
from dialogsum.processes import die_with_parent
from dialogsum.registry import Registry
from dialogsum.sweep.options import CHECKED_STORAGE, SweepOptions
from dialogsum.sweep.space import SearchSpace, resolve_space
from dialogsum.sweep.study import open_study
from dialogsum.training.options import TrainingOptions
from dialogsum.training.planning import total_steps


@dataclass
class SweepContext:
    """What every trial of a sweep shares: the model, the data and the fixed settings."""

    model: Any
    tokenizer: Any
    manifest: ModelManifest
    source: str | None
    registry: Registry
    serve: Callable[[TorchModel], Predictor]
    method: str
    method_options: BaseModel
    training: TrainingOptions
    data: DataOptions
    train: Sequence[Example]
    eval: Sequence[Example]
    space: SearchSpace
    options: SweepOptions
    folder: Path
    #: The step of the first rung, the same for every trial (so their scores compare).
    first_rung: int = 1
    #: Steps of the longest trial the space allows (the last rung of the schedulers).
    longest_steps: int = 1
    #: Wall-clock time (``time.time()``) at which the sweep's budget runs out (None: none);
    #: wall-clock, not monotonic, because Ray runs trials in other processes and machines.
    deadline: float | None = None

    def compared_at(self, step: int) -> bool:
        """Whether the pruner (or ASHA) may compare trials at ``step``: a rung
        (``first_rung * reduction_factor**k``) short of the longest trial's end."""
        rung = self.first_rung
        while rung < step:
            rung *= self.options.reduction_factor
        return rung == step < self.longest_steps

    @property
    def out_of_time(self) -> bool:
        """Whether the sweep's budget is spent."""
        return past(self.deadline)


def past(deadline: float | None) -> bool:
    """Whether ``deadline`` (wall-clock; None: no deadline) has passed."""
    return deadline is not None and time.time() >= deadline


@dataclass
class SweepJob:
    """A sweep's inputs as plain values: what a worker process or a Ray worker needs to
    rebuild the sweep's context (it loads the model from ``source`` itself)."""

    source: str | None
    backend_options: dict[str, Any]
    method: str
    method_options: dict[str, Any]
    training: dict[str, Any]
    data: dict[str, Any]
    space: dict[str, Any]
    options: dict[str, Any]
    train: list[Example]
    eval: list[Example]
    folder: str
    deadline: float | None = None
    #: Torch threads each process training trials uses (None: torch's own count), set by
    #: :func:`sharing_cores` for the worker processes.
    threads: int | None = None

    def sweep_options(self) -> SweepOptions:
        """The sweep's options, as the sweep's process validated them."""
        return SweepOptions.model_validate(self.options, context={CHECKED_STORAGE: True})

    def settings(self) -> dict[str, Any]:
        """What decides the trials; a resumed sweep must have the same."""
        options = self.sweep_options()
        return {
            "source": self.source,
            "method": self.method,
            "method_options": self.method_options,
            "training": self.training,
            "data": self.data,
            "space": self.space,
            "train_data": examples_digest(self.train),
            "eval_data": examples_digest(self.eval),
            **options.model_dump(
                include={
                    "trials",
                    "objective",
                    "pruner",
                    "min_steps",
                    "reduction_factor",
                    "random_trials",
                    "seed",
                    "eval_limit",
                    "rung_decoding",
                    "schedule",
                }
            ),
        }


def build_context(
    job: SweepJob,
    *,
    registry: Registry,
    model: TorchModel,
    serve: Callable[[TorchModel], Predictor],
) -> SweepContext:
    """The context trials share, from ``job`` and a loaded model."""
    method_options = registry.method_options(job.method, job.method_options)
    training = TrainingOptions.model_validate(job.training)
    options = job.sweep_options()
    space = resolve_space(
        job.space,
        method=job.method,
        method_options=method_options,
        training=training,
        validate_method=lambda values: registry.method_options(job.method, values),
    )
    # The longest trial the space allows sets the rungs: the first is a ninth of it (about
    # three rungs), unless min_steps says otherwise.
    _, longest = space.settings(costliest(space), method_options, training)
    longest_steps = total_steps(longest, len(job.train))
    first = options.min_steps or max(1, longest_steps // options.reduction_factor**2)
    return SweepContext(
        model=model.model,
        tokenizer=model.tokenizer,
        manifest=model.manifest,
        source=job.source,
        registry=registry,
        serve=serve,
        method=job.method,
        method_options=method_options,
        training=training,
        data=DataOptions.model_validate(job.data),
        train=job.train,
        eval=job.eval,
        space=space,
        options=options,
        folder=Path(job.folder),
        first_rung=first,
        longest_steps=longest_steps,
        deadline=job.deadline,
    )


def load_context(job: SweepJob) -> SweepContext:
    """Rebuild the sweep's context in another process: load the model from ``job.source``
    with the registry's torch backend."""
    from dialogsum.registry import get_registry

    check_loadable(job.source, job.sweep_options())
    assert job.source is not None  # only trials in other processes are rebuilt
    registry = get_registry()
    backend = registry.backend("torch")
    options = registry.backend_options("torch", job.backend_options)
    source = Path(job.source)
    predictor = backend.load(source if source.exists() else job.source, options)
    model = predictor.torch_model
    assert model is not None, "the torch backend serves a torch model"
    return build_context(
        job,
        registry=registry,
        model=model,
        serve=lambda tuned: backend.from_torch_model(tuned, options),
    )


def check_loadable(source: str | None, options: SweepOptions) -> None:
    """Refuse, before anything trains, a sweep whose trials run in other processes on a model
    they cannot load: one that exists only in memory."""
    if source is None and (options.workers > 1 or options.engine == "ray"):
        raise ConfigError(
            "Trials in other processes (workers > 1, or engine ray) load the model from where "
            "it was loaded; this one exists only in memory. Save it first (save(dir)) and "
            "sweep the model loaded from that folder."
        )


def costliest(space: SearchSpace) -> dict[str, Any]:
    """Settings whose trial costs the most: the largest batch, the most steps or epochs; for
    other settings, any value (the first choice, the low bound)."""
    costly = {"training.batch_size", "training.max_steps", "training.epochs"}
    params: dict[str, Any] = {}
    for parameter in space.parameters:
        dimension = parameter.dimension
        if dimension.choices is not None:
            choices = dimension.choices
            params[parameter.key] = max(choices) if parameter.key in costly else choices[0]
        else:
            value = dimension.high if parameter.key in costly else dimension.low
            assert value is not None
            params[parameter.key] = int(value) if parameter.integer else value
    return params


def join_sweep(job: SweepJob, parent_pid: int) -> tuple[SweepContext, Any]:
    """A worker process's start (either schedule): it ends with the sweep's process,
    ``parent_pid``, however that ends (left running after a kill -9, a worker went on asking
    the study for trials while a rerun of the sweep reran the one it was training), loads the
    model once, and opens the shared study. Its context and study."""
    die_with_parent(parent_pid)
    if job.threads is not None:
        import torch

        torch.set_num_threads(job.threads)
    context = load_context(job)
    study = open_study(context.folder, context.options, job.settings(), context.first_rung)
    return context, study


def threads_per_process(workers: int) -> int | None:
    """Torch threads each of ``workers`` processes training trials on this machine uses: the
    cores torch is given, shared out (N processes each using every core ran slower than one,
    each waiting on the others' threads). None with one worker, or where ``OMP_NUM_THREADS``
    is set: that is the user's own choice, kept."""
    if workers <= 1 or os.environ.get("OMP_NUM_THREADS"):
        return None
    import torch

    return max(1, torch.get_num_threads() // workers)


@contextlib.contextmanager
def sharing_cores(job: SweepJob, workers: int) -> Iterator[None]:
    """While inside, this process and the workers started with ``job`` use
    :func:`threads_per_process` torch threads each; this process's count is restored after
    (a sweep called from a notebook leaves its threads as they were)."""
    threads = threads_per_process(workers)
    job.threads = threads
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    logger.info(
        "%d processes train trials side by side, %d torch thread(s) each (the %d cores torch "
        "is given, shared; set OMP_NUM_THREADS to choose another count)",
        workers,
        threads,
        before,
    )
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
