"""Which process of a distributed launch this is (torchrun, accelerate launch, Ray Train).

Every process of a launch runs the same command. Training is shared by all of them; what comes
after it (evaluation, the run folder, the result printed) is done once, by rank 0. Nothing here
imports torch: the CLI asks before it loads anything heavy.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from dialogsum.errors import ConfigError

#: FSDP sharding strategies that split the parameters (accelerate writes a name or a number).
PARAMETER_SHARDING = frozenset({"FULL_SHARD", "1", "HYBRID_SHARD", "4"})


def process_rank() -> int:
    """This process's global rank: 0 outside a distributed launch.

    The process group's own answer when one is running (Ray Train starts it itself), else the
    ``RANK`` that torchrun and accelerate launch set.
    """
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        return int(distributed.get_rank())
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes train together: 1 outside a distributed launch."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        return int(distributed.get_world_size())
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """False on every process but rank 0 of a distributed launch."""
    return process_rank() == 0


def leave_process_group() -> None:
    """Close this process's side of the launch's process group, if one is running.

    A process that exits with the group still open tears gloo's threads down unjoined during
    interpreter shutdown, which sometimes aborts it ("terminate called without an active
    exception"); the launcher then stops every process as failed, rank 0 in the middle of
    scoring. Closing it is local: the other processes are not waited for.
    """
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


def end_launched_worker() -> NoReturn:
    """End a command-line launch's process of rank > 0 now, its work done: output flushed,
    then ``os._exit(0)``.

    Closing the process group is not always enough: some of torch's native threads (gloo's,
    the distributed reducer's) may still be alive when the interpreter shuts down, and tearing
    them down unjoined aborts the process now and then ("terminate called without an active
    exception", about one launch in fifteen here), after which the launcher stops rank 0 as
    failed in the middle of scoring. Such a rank holds nothing to save (rank 0 writes the
    run), so it skips the shutdown. Only for processes a launcher started for this command:
    never inside a worker that lives on (Ray Train's).
    """
    for handler in logging.getLogger().handlers + logging.getLogger("dialogsum").handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cpu_only() -> bool:
    """True where torch sees no accelerator (CUDA, MPS, XPU, ...): training runs on the CPU.

    The Trainer must be told (``use_cpu``): on a machine without one, accelerate otherwise
    treats a torchrun launch as N unrelated single processes, each training alone.
    """
    import torch

    return not torch.accelerator.is_available()


def check_sharding() -> None:
    """Refuse a launch that shards the parameters (DeepSpeed ZeRO-3, FSDP full sharding).

    After training, rank 0 scores and saves the model it holds in memory; under parameter
    sharding that is only its shard, so the saved model would be wrong. accelerate launch
    describes its plan to the processes in environment variables, read here.
    """
    zero_stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "")
    use_deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    if use_deepspeed and zero_stage == "3":
        what = "DeepSpeed ZeRO stage 3"
    elif os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and (
        os.environ.get("FSDP_SHARDING_STRATEGY", "FULL_SHARD").upper() in PARAMETER_SHARDING
        or os.environ.get("FSDP_VERSION") == "2"
    ):
        what = "FSDP with parameter sharding"
    else:
        return
    raise ConfigError(
        f"This launch uses {what}, which splits the model's parameters across the processes; "
        f"dialogsum saves and scores the model rank 0 holds, which would be only its shard. "
        f"Use DeepSpeed ZeRO stage 2 (zero_stage: 2 in the accelerate config) or FSDP's "
        f"SHARD_GRAD_OP, which shard optimizer state and gradients only, or LoRA "
        f"(--method lora)."
    )


def quiet_other_ranks(logger: logging.Logger) -> None:
    """On ranks other than 0, keep ``logger`` to warnings and errors, marked with the rank.

    Rank 0 reports the run; the others train the same steps on other batches and would only
    repeat it. Their warnings still show, so a problem on one node is not hidden.
    """
    rank = process_rank()
    if rank == 0:
        return
    logger.setLevel(logging.WARNING)
    if not any(isinstance(existing, RankMarker) for existing in logger.filters):
        logger.addFilter(RankMarker(rank))


class RankMarker(logging.Filter):
    """Starts each message with ``[rank N]``, so interleaved output says who wrote it."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        """Mark ``record`` (it is never dropped)."""
        record.msg = f"[rank {self.rank}] {record.msg}"
        return True
