"""``dialogsum evaluate``: a model's ROUGE against the references of a data set."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dialogsum.cli.config import (
    EvaluateConfig,
    add_config_flag,
    add_model_flags,
    add_output_flags,
    add_serving_flags,
    load_settings,
    load_summarizer,
)
from dialogsum.generation import GenerationOptions


def add_parser(commands: Any) -> None:
    """Add the ``evaluate`` command."""
    parser = commands.add_parser("evaluate", help="Score a model with ROUGE against references.")
    parser.set_defaults(handler=run)
    add_config_flag(parser)
    add_serving_flags(parser, EvaluateConfig)
    keep = argparse.SUPPRESS
    parser.add_argument("--data", default=keep, help="File, folder or hub id, with references.")
    parser.add_argument("--split", default=keep, help="Split of a folder or hub id (test).")
    parser.add_argument(
        "--predictions", default=keep, help="Write each prediction (JSON lines) to this file."
    )
    parser.add_argument(
        "--limit", type=int, default=keep, help="Score only the first N dialogues (a quick look)."
    )
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    add_output_flags(parser, "an existing predictions file")
    add_model_flags(parser, GenerationOptions, "generation")


def run(args: argparse.Namespace) -> int:
    """Load the data, then the model, and print the scores."""
    from dialogsum.data import group_references, load_examples
    from dialogsum.evaluate import check_output_file

    config = load_settings(EvaluateConfig, args)
    if config.predictions is not None:  # before any work: a write that fails loses it
        check_output_file(config.predictions, overwrite=config.overwrite)
    # Grouped first, so the limit counts dialogues, not rows of one reference each.
    examples = group_references(load_examples(config.data, config.split))[: config.limit]
    summarizer = load_summarizer(config, config.model)
    scores = summarizer.evaluate(
        examples,
        predictions_file=config.predictions,
        overwrite=config.overwrite,
        **config.generation.model_dump(exclude_unset=True),
    )
    if args.json:
        print(json.dumps(scores, indent=2))
        return 0
    print(f"{'metric':<12} value")
    for key, value in scores.items():
        print(f"{key:<12} {value:.2f}" if isinstance(value, float) else f"{key:<12} {value}")
    return 0
