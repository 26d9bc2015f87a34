"""``dialogsum summarize``: JSON lines of dialogues in, JSON lines of summaries out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dialogsum.cli.config import (
    SummarizeConfig,
    add_config_flag,
    add_model_flags,
    add_output_flags,
    add_serving_flags,
    load_settings,
    load_summarizer,
)
from dialogsum.generation import GenerationOptions


def add_parser(commands: Any) -> None:
    """Add the ``summarize`` command."""
    parser = commands.add_parser("summarize", help="Summarize JSON lines of dialogues.")
    parser.set_defaults(handler=run)
    add_config_flag(parser)
    add_serving_flags(parser, SummarizeConfig)
    keep = argparse.SUPPRESS
    parser.add_argument(
        "--input", default=keep, help="JSON lines, JSON or CSV file; or - for stdin (default)."
    )
    parser.add_argument("--output", default=keep, help="JSON lines file, or - for stdout.")
    add_output_flags(parser, "an existing output file")
    add_model_flags(parser, GenerationOptions, "generation")


def run(args: argparse.Namespace) -> int:
    """Read every dialogue first (a bad line fails before the model loads), then summarize."""
    from dialogsum.data import read_dialogues
    from dialogsum.evaluate import check_output_file
    from dialogsum.files import write_text

    config = load_settings(SummarizeConfig, args)
    if config.output != "-":
        check_output_file(config.output, overwrite=config.overwrite)
    examples = read_dialogues(config.input)
    summarizer = load_summarizer(config, config.model)
    summaries = summarizer.summarize(
        [e.dialogue for e in examples], **config.generation.model_dump(exclude_unset=True)
    )
    # A row's own id (fname or id) when it has one, else its position in the input.
    lines = "".join(
        json.dumps(
            {"id": e.id if e.id is not None else index, "summary": summary}, ensure_ascii=False
        )
        + "\n"
        for index, (e, summary) in enumerate(zip(examples, summaries, strict=True), start=1)
    )
    if config.output == "-":
        sys.stdout.write(lines)
    else:
        write_text(Path(config.output), lines, overwrite=config.overwrite)
    return 0
