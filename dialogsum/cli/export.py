"""``dialogsum export``: a saved or tuned model to a self-contained folder a backend serves."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dialogsum.cli.config import (
    ExportConfig,
    add_config_flag,
    add_output_flags,
    backend_options,
    load_settings,
)


def add_parser(commands: Any) -> None:
    """Add the ``export`` command."""
    parser = commands.add_parser(
        "export", help="Export a model into a folder a backend serves (ONNX by default)."
    )
    parser.set_defaults(handler=run)
    add_config_flag(parser)
    keep = argparse.SUPPRESS
    parser.add_argument("--model", default=keep, help="Folder save() or train wrote.")
    parser.add_argument(
        "--base-model", dest="base_model", default=keep, help="Local copy of an adapter's base."
    )
    parser.add_argument("--output", default=keep, help="Export folder to create.")
    parser.add_argument(
        "--backend",
        default=keep,
        help="The backend that exports and serves the folder (default: onnxruntime; "
        "`dialogsum plugins` shows which can export).",
    )
    parser.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="An export option of the backend, e.g. quantize=int8.",
    )
    parser.add_argument(
        "--quantize", choices=["int8"], default=keep, help="Shorthand for --option quantize=int8."
    )
    parser.add_argument(
        "--adapter",
        dest="adapter_pairs",
        action="append",
        metavar="NAME=PATH",
        help="An adapter (LoRA or prompt-tuning run of --model) to serve unmerged beside it, "
        "chosen per request by NAME; repeat for more (onnxruntime).",
    )
    add_output_flags(parser, "an existing folder")


def run(args: argparse.Namespace) -> int:
    """Check the backend, its options and the output before loading; export; print the record."""
    from dialogsum.errors import require
    from dialogsum.modeling import check_writable, read_manifest
    from dialogsum.registry import get_registry
    from dialogsum.summarizer import Summarizer

    config = load_settings(ExportConfig, args)
    options = config.export_options()
    get_registry().export_options(config.backend, options)  # a bad backend or option: now
    # Exporting loads the PyTorch model first: without this check, a torch-free (serving)
    # install is told by the torch backend to install 'dialogsum[train]', which cannot export.
    require(
        ("torch", "transformers", "peft"),
        extra="export",
        purpose="Exporting (it loads the PyTorch model first)",
    )
    check_writable(Path(config.output).expanduser(), overwrite=config.overwrite)
    summarizer = Summarizer.from_pretrained(
        config.model, backend="torch", backend_options=backend_options(config)
    )
    folder = summarizer.export(
        config.output,
        backend=config.backend,
        overwrite=config.overwrite,
        adapters=config.adapters,
        progress=config.progress,
        **options,
    )
    export = read_manifest(folder).export
    print(json.dumps({"output": str(folder), **(export.model_dump() if export else {})}, indent=2))
    return 0
