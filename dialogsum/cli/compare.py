"""``dialogsum compare``: models side by side against the human summaries, with ROUGE each."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dialogsum.cli.config import (
    CompareConfig,
    add_config_flag,
    add_model_flags,
    add_output_flags,
    load_settings,
    load_summarizer,
)
from dialogsum.generation import GenerationOptions


def add_parser(commands: Any) -> None:
    """Add the ``compare`` command."""
    parser = commands.add_parser("compare", help="Compare models side by side with ROUGE.")
    parser.set_defaults(handler=run)
    add_config_flag(parser)
    keep = argparse.SUPPRESS
    parser.add_argument(
        "--model", action="append", default=keep, help="A model to compare; repeat per model."
    )
    parser.add_argument(
        "--base-model", dest="base_model", default=keep, help="Local copy of adapters' base."
    )
    parser.add_argument("--data", default=keep, help="Data with references.")
    parser.add_argument("--split", default=keep, help="Split of a folder or hub id (test).")
    parser.add_argument("--limit", type=int, default=keep, help="Score only the first N.")
    parser.add_argument("--show", type=int, default=keep, help="Dialogues shown side by side.")
    parser.add_argument("--output", default=keep, help="Writes OUTPUT.md and OUTPUT.html.")
    add_output_flags(parser, "existing OUTPUT.md and OUTPUT.html")
    add_model_flags(parser, GenerationOptions, "generation")


def run(args: argparse.Namespace) -> int:
    """Load the data, then every model (backend from its manifest), compare and write."""
    from dialogsum.compare import compare, to_html, to_markdown
    from dialogsum.data import group_references, load_examples
    from dialogsum.evaluate import check_output_file
    from dialogsum.files import write_text

    config = load_settings(CompareConfig, args)
    output = Path(config.output).expanduser()
    for page in (output.with_suffix(".md"), output.with_suffix(".html")):
        check_output_file(page, overwrite=config.overwrite)  # before any model loads
    examples = group_references(load_examples(config.data, config.split))
    if config.limit:
        examples = examples[: config.limit]
    models = {name: load_summarizer(config, name) for name in config.model}
    result = compare(models, examples, **config.generation.model_dump(exclude_unset=True))
    markdown = to_markdown(result, show=config.show)
    write_text(output.with_suffix(".md"), markdown, overwrite=config.overwrite)
    write_text(output.with_suffix(".html"), to_html(result, show=config.show), overwrite=True)
    print(markdown)
    print(f"wrote {output.with_suffix('.md')} and {output.with_suffix('.html')}", file=sys.stderr)
    return 0
