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

from dialogsum._version import __version__
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
from dialogsum.errors import BackendError, DialogsumError
from dialogsum.training.distributed import quiet_other_ranks

Handler = Callable[[argparse.Namespace], int]

#: Set (to anything but 0) to print an error's whole traceback, its causes included.
TRACEBACK_ENV = "DIALOGSUM_TRACEBACK"

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
    parser.add_argument("--version", action="version", version=f"dialogsum {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    for subparser in commands.choices.values():
        subparser.set_defaults(command_parser=subparser)
        # No abbreviations: --lr would be taken for --lr-scheduler, --epoch for whatever
        # flag a later release adds beside --epochs. An unknown flag is told its likely one.
        subparser.allow_abbrev = False
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    # dialogsum's own progress at INFO; other libraries' INFO chatter (onnxruntime's quantizer
    # logs dozens of lines to the root logger) stays below the threshold.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("dialogsum").setLevel(logging.INFO)
    quiet_other_ranks(logging.getLogger("dialogsum"))
    parser = build_parser()
    _check_command(parser, list(sys.argv[1:] if argv is None else argv))
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said with the command's own usage, not the top-level one
        args.command_parser.error(unrecognized(args.command_parser, args, unknown))
    handler: Handler = args.handler
    try:
        return handler(args)
    except DialogsumError as exc:
        import os

        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            import traceback

            traceback.print_exc()
        elif isinstance(exc, BackendError) and exc.__cause__ is not None:
            # A backend's own failure (a plugin's, often): where it happened is in its code.
            print(f"(set {TRACEBACK_ENV}=1 to see where it failed)", file=sys.stderr)
        print(f"dialogsum {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dialogsum {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (dialogsum plugins --json | head): no traceback. Python's own
        # flush of stdout at exit would raise again, so stdout goes nowhere from here.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _check_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """A misspelt command (``dialogsum sumarize``) is told the one likely meant; argparse only
    lists them all. A command's flags given before it (``dialogsum --model m summarize``) are
    told to go after it: argparse took the flag's value for the command, or blamed the
    command for a flag it never saw."""
    import difflib

    choices = [
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    ]
    top_level = {flag for action in parser._actions for flag in action.option_strings}
    command_at = next((i for i, token in enumerate(argv) if token in choices), None)
    leading = argv[: len(argv) if command_at is None else command_at]
    misplaced = [token for token in leading if token.partition("=")[0] not in top_level]
    if command_at is not None and any(token.startswith("-") for token in misplaced):
        command = argv[command_at]
        parser.error(
            f"{' '.join(misplaced)} comes before the command: a command's flags go after it "
            f"(dialogsum {command} {' '.join(misplaced)} ...)."
        )
    given = next((token for token in argv if not token.startswith("-")), None)
    if given is None or given in choices:
        return
    if misplaced and misplaced[0].startswith("-") and misplaced[0] != given:
        # ``dialogsum --model m``: the flag's value is no command; the command is missing.
        parser.error(
            f"no command before {misplaced[0]}: the command comes first "
            f"(dialogsum COMMAND {' '.join(misplaced)}). The commands: {', '.join(choices)}."
        )
    close = difflib.get_close_matches(given, choices, n=1, cutoff=0.6)
    meant = f"did you mean '{close[0]}'? " if close else ""
    parser.error(f"unknown command {given!r}: {meant}The commands: {', '.join(choices)}.")


def unrecognized(
    parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]
) -> str:
    """argparse's message for ``unknown`` arguments, and what each most likely meant: the
    closest flag (``--nmu-beams``, ``--max_new_tokens``), a method option given as a flag
    (``--lora_r 8`` is ``--option r=8``), or, for a bare path, the flag that takes it
    (``dialogsum serve served/`` is ``--model served/``)."""
    from pathlib import Path

    from dialogsum.cli.config import other_flags
    from dialogsum.validation import likely_key

    flags = [
        flag for action in parser._actions for flag in action.option_strings if flag[:2] == "--"
    ]
    # Compared without the dashes, which every flag shares and which make any two look alike.
    names = [flag[2:] for flag in flags if flag != "--help"]
    # export has --option too, for the backend's options: only where --method chooses them.
    method_options = _method_options(args) if "--method" in flags else {}
    others = other_flags(parser)  # other tools' names for the flags
    hints = []
    index = 0
    while index < len(unknown):
        token = unknown[index]
        index += 1
        if token.startswith("-"):
            flag, _, value = token.partition("=")
            if "=" not in token and index < len(unknown) and not unknown[index].startswith("-"):
                value = unknown[index]  # the unknown flag's value, not a stray argument
                index += 1
            name = flag.lstrip("-").replace("-", "_")
            option = method_options.get(name)
            other = others.get(name)
            guess = likely_key(name.replace("_", "-"), names, {})
            if other is not None:
                hints.append(f"{flag}: did you mean {other}?")
            elif option is not None:
                hints.append(f"{flag} is a method option: --option {option}={value or '...'}")
            elif guess is not None:
                hints.append(f"{flag}: did you mean --{guess}?")
            continue
        try:
            folder, file = Path(token).is_dir(), Path(token).is_file()
        except OSError:  # a dialogue pasted as an argument: too long a name to be a path
            continue
        # A model is a folder; an input a file or (batch) a folder of them.
        takers = ["--model", "--input"] if folder else ["--input"] if file else []
        unset = [flag for flag in takers if flag in flags and getattr(args, flag[2:], None) is None]
        if unset:
            hints.append(f"{' or '.join(unset)} takes a path: {unset[0]} {token}")
    message = f"unrecognized arguments: {' '.join(unknown)}"
    return message if not hints else f"{message} ({'; '.join(hints)})"


def _method_options(args: argparse.Namespace) -> dict[str, str]:
    """The chosen method's options by every name a user may give them (the fields, and the
    names other tools use for them), each to the field's name; empty where the method is
    unknown (its own error comes later)."""
    from dialogsum.cli.config import read_config_file
    from dialogsum.registry import get_registry
    from dialogsum.validation import every_name

    try:
        method = getattr(args, "method", None)
        config = getattr(args, "config", None)
        if method is None and config is not None:  # the method a --config file chooses
            method = read_config_file(config).get("method")
        options = get_registry().method(str(method or "lora")).Options
    except DialogsumError:  # a bad file or method: its own error comes later
        return {}
    return every_name(options)


__all__ = ["build_parser", "main", "unrecognized"]
