"""``dialogsum quickstart``: the offline demo (evaluate, LoRA-tune, export int8, serve)."""

from __future__ import annotations

import argparse
from typing import Any

from dialogsum.cli.config import QuickstartConfig, add_config_flag, load_settings


def add_parser(commands: Any) -> None:
    """Add the ``quickstart`` command."""
    parser = commands.add_parser(
        "quickstart",
        help="Offline demo: evaluate, LoRA-tune, export int8 ONNX, serve, compare side by side.",
    )
    parser.set_defaults(handler=run)
    add_config_flag(parser)
    keep = argparse.SUPPRESS
    parser.add_argument(
        "--model", default=keep, help="Bundled name (dialogsum-tiny), folder or hub id."
    )
    parser.add_argument(
        "--data", default=keep, help="DialogSum folder or hub id (default: sample)."
    )
    parser.add_argument("--output", default=keep, help="Folder for the run (dialogsum-quickstart).")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        default=keep,
        help="Replace a folder that is not a quickstart run (an earlier quickstart run in "
        "--output is replaced without it).",
    )
    parser.add_argument(
        "--train-samples",
        dest="train_samples",
        type=int,
        default=keep,
        help="Train dialogues for the LoRA tune (default: up to 400).",
    )
    parser.add_argument(
        "--test-samples",
        dest="test_samples",
        type=int,
        default=keep,
        help="Test dialogues scored before and after (default: up to 40).",
    )
    parser.add_argument("--epochs", type=float, default=keep, help="Epochs of the LoRA tune (2).")
    parser.add_argument("--show", type=int, default=keep, help="Dialogues shown side by side (3).")


def run(args: argparse.Namespace) -> int:
    """Run the quickstart and print its side-by-side report."""
    from dialogsum.quickstart import main_quickstart

    config = load_settings(QuickstartConfig, args)
    print(
        main_quickstart(
            model=config.model,
            data=config.data,
            output_dir=config.output,
            overwrite=config.overwrite,
            train_samples=config.train_samples,
            test_samples=config.test_samples,
            epochs=config.epochs,
            show=config.show,
        )
    )
    return 0
