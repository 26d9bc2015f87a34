"""The ``dialogsum`` command line: one module per command, all on the same settings models.

Each command module has ``add_parser(commands)``, which declares its flags, and ``run(args)``,
which reads its settings through :func:`dialogsum.cli.config.load_settings` (``--config`` file,
then flags, validated by one pydantic model) and does the work.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from dialogsum.cli import (
    batch,
    compare,
    evaluate,
    export,
    list_plugins,
    quickstart,
    serve,
    summarize,
    sweep,
    train,
)
from dialogsum.errors import DialogsumError
from dialogsum.training.distributed import quiet_other_ranks

Handler = Callable[[argparse.Namespace], int]

#: The commands, in the order ``dialogsum --help`` lists them.
COMMANDS = (
    list_plugins,
    train,
    sweep,
    export,
    evaluate,
    summarize,
    batch,
    serve,
    quickstart,
    compare,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``dialogsum`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="dialogsum", description="Fine-tune FLAN-T5 into a dialogue summarizer and serve it."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    for subparser in commands.choices.values():
        subparser.set_defaults(command_parser=subparser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    # dialogsum's own progress at INFO; other libraries' INFO chatter (onnxruntime's quantizer
    # logs dozens of lines to the root logger) stays below the threshold.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("dialogsum").setLevel(logging.INFO)
    quiet_other_ranks(logging.getLogger("dialogsum"))
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # said with the command's own usage, not the top-level one
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    handler: Handler = args.handler
    try:
        return handler(args)
    except DialogsumError as exc:
        print(f"dialogsum {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dialogsum {args.command}: interrupted", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main"]
