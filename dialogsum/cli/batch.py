"""``dialogsum batch``: summarize JSON Lines of any size, streaming and resumable, on this
machine (``--engine local``) or on Ray (``--engine ray``, ``pip install 'dialogsum[ray]'``)."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import Field

from dialogsum.batch.settings import BatchSettings
from dialogsum.cli.config import (
    _Serving,
    add_config_flag,
    add_model_flags,
    add_serving_flags,
    backend_options,
    load_settings,
)
from dialogsum.generation import GenerationOptions


class BatchConfig(_Serving):
    """``dialogsum batch``: what to summarize, with which model, how."""

    model: str = Field("dialogsum-tiny", description="Bundled name, model folder or export.")
    input: str = Field(description="JSON Lines file, or a folder of them (local or s3://...).")
    output: str = Field(description="JSON Lines file (local engine) or folder (ray engine).")
    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    overwrite: bool = Field(False, description="Start the output again instead of resuming it.")


def add_parser(commands: Any) -> None:
    """Add the ``batch`` command."""
    parser = commands.add_parser(
        "batch",
        help="Summarize a JSON Lines file (or folder) of any size; a rerun resumes.",
    )
    parser.set_defaults(handler=run)
    add_config_flag(parser)
    add_serving_flags(parser, BatchConfig)
    keep = argparse.SUPPRESS
    parser.add_argument(
        "--input", default=keep, help="JSON Lines file, or a folder of .jsonl/.json files."
    )
    parser.add_argument(
        "--output",
        default=keep,
        help="JSON Lines file (local engine) or folder of part files (ray engine).",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        default=keep,
        help="Start the output again (default: resume, skipping the ids already written).",
    )
    add_model_flags(parser, BatchSettings, "batch")
    add_model_flags(parser, GenerationOptions, "generation")


def run(args: argparse.Namespace) -> int:
    """Check input and output, then summarize what is not done yet; print the report.

    Ctrl-C or SIGTERM stops the job, keeping what is written: it says to rerun the same command
    and exits 128 + the signal's number (130, 143).
    """
    from dialogsum.batch.fingerprint import model_fingerprints
    from dialogsum.batch.job import run_batch
    from dialogsum.batch.lifetime import Stopped, stop_on_signals
    from dialogsum.batch.output import FINGERPRINTS
    from dialogsum.modeling import default_backend
    from dialogsum.registry import get_registry

    config = load_settings(BatchConfig, args)
    backend = config.backend or default_backend(config.model)
    options = backend_options(config, backend)
    fields = get_registry().backend(backend).Options.model_fields
    if "progress" in fields:
        options["progress"] = False  # the job has one bar over all rows
    if "threads" in fields:
        options.setdefault("threads", config.batch.worker_threads())
    load = functools.partial(load_model, config.model, backend, options)
    job = {
        # What makes the summaries, recorded with the output: a rerun must match it.
        "model": _resolved(config.model),
        "backend": backend,
        "backend_options": {
            key: _resolved(value) if key == "base_model" else value
            for key, value in options.items()
            if key not in ("progress", "threads")
        },
        "decoding": _decoding(config.model, config.generation.model_dump(exclude_unset=True)),
        # The model's files as they are: a model retrained or exported again to the same path
        # (or an adapter changed) is refused on a resume, like any other setting.
        FINGERPRINTS: model_fingerprints(config.model, options),
    }
    try:
        with stop_on_signals():
            report = run_batch(
                config.input,
                config.output,
                load,
                config.generation.model_dump(exclude_unset=True),
                config.batch,
                overwrite=config.overwrite,
                job=job,
            )
    except Stopped as stop:
        print(
            f"dialogsum batch: stopped by {stop.signal_name}; the summaries written to "
            f"{config.output} are kept. Rerun the same command to go on from there.",
            file=sys.stderr,
        )
        return stop.exit_status
    print(json.dumps(report.as_dict(), indent=2))
    return 0


def _resolved(value: Any) -> Any:
    """A local path as an absolute one (the same model from another folder is the same)."""
    if isinstance(value, str) and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def _decoding(model: str, generation: dict[str, Any]) -> dict[str, Any]:
    """The decoding in effect: the flags over the model's saved defaults (when it is local),
    so leaving out a flag that only restated a default is the same job."""
    from dialogsum.errors import DialogsumError
    from dialogsum.generation import parse_generation
    from dialogsum.modeling import local_manifest

    try:
        manifest = local_manifest(model)
        defaults = manifest.generation if manifest is not None else {}
    except DialogsumError:  # the model fails to load later, with its own message
        defaults = {}
    return parse_generation(generation, defaults).model_dump(exclude={"batch_size"})


def load_model(model: str, backend: str, options: dict[str, Any]) -> Any:
    """Load ``model`` for a batch worker (a module-level function: workers import it)."""
    from dialogsum.summarizer import Summarizer

    return Summarizer.from_pretrained(model, backend=backend, backend_options=options)
