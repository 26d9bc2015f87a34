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
from dialogsum.errors import ConfigError
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
    # 'results.v2' writes results.v2.md, not results.md: only .md or .html is replaced.
    stem = output.with_suffix("") if output.suffix in (".md", ".html") else output
    pages = (Path(f"{stem}.md"), Path(f"{stem}.html"))
    repeated = sorted({name for name in config.model if config.model.count(name) > 1})
    if repeated:
        raise ConfigError(
            f"--model {', '.join(repeated)} is given more than once; compare each model once."
        )
    for page in pages:
        check_output_file(page, overwrite=config.overwrite)  # before any model loads
    loaded = load_examples(config.data, config.split)
    examples = group_references(loaded)
    available = len(examples)
    if config.limit:
        examples = examples[: config.limit]
    models = {name: load_summarizer(config, name) for name in config.model}
    result = compare(
        models,
        examples,
        data=loaded.provenance,
        available=available,
        **config.generation.model_dump(exclude_unset=True),
    )
    markdown = to_markdown(result, show=config.show)
    write_text(pages[0], markdown, overwrite=config.overwrite)
    write_text(pages[1], to_html(result, show=config.show), overwrite=True)
    print(markdown)
    print(f"wrote {pages[0]} and {pages[1]}", file=sys.stderr)
    return 0
