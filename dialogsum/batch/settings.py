"""The settings of ``dialogsum batch`` that are not the model's: engine, workers, chunks."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BatchSettings(BaseModel):
    """How a batch job runs: which engine, how many model copies, how rows are handed out."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["local", "ray"] = Field(
        "local",
        description="local: worker processes on this machine, output in input order. ray: Ray "
        "Data on a local Ray or the cluster at --ray-address / RAY_ADDRESS.",
    )
    workers: int = Field(
        1, gt=0, description="Model copies summarizing at once (processes, or Ray actors)."
    )
    threads: int | None = Field(
        None, gt=0, description="Threads per worker (default: this machine's cores / workers)."
    )
    chunk_size: int = Field(64, gt=0, description="Dialogues handed to a worker at a time.")
    rejects: str | None = Field(
        None,
        description="Write malformed rows to this JSON Lines file and go on (default: a "
        "malformed row fails the job, naming its file and line).",
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster to run on (default: RAY_ADDRESS, else a local Ray started "
        "for the job).",
    )
    progress: bool = Field(True, description="Show a progress bar.")

    def worker_threads(self) -> int:
        """Threads each worker uses: ``threads``, else an even share of this machine's cores."""
        if self.threads is not None:
            return self.threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, (cores or 1) // self.workers)
