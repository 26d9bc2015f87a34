"""``dialogsum sweep``: search fine-tuning settings under a budget (or ``--estimate`` it)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dialogsum.cli.config import (
    BUDGET_STOPPED,
    SweepConfig,
    add_config_flag,
    add_model_flags,
    backend_options,
    load_settings,
    read_config_file,
)
from dialogsum.data import DataOptions
from dialogsum.errors import ConfigError
from dialogsum.sweep.options import SweepOptions
from dialogsum.training.options import TrainingOptions

#: Training flags the sweep owns (its budget, seed, progress) or that make no sense per trial.
SWEEP_OWNED = (
    "seed",
    "progress",
    "hourly_cost",
    "max_time",
    "max_cost",
    "force",
    "resume_from_checkpoint",
    "save_strategy",
    "save_steps",
    "save_total_limit",
    "eval_strategy",
    "eval_steps",
)


def add_parser(commands: Any) -> None:
    """Add the ``sweep`` command."""
    parser = commands.add_parser(
        "sweep",
        help="Search fine-tuning settings (Optuna or Ray Tune) under a budget.",
        description="Train trials with settings drawn from a search space, stop poor ones "
        "early, and keep the best as a run folder (OUTPUT_DIR/best). Running the same command "
        "again resumes the sweep.",
    )
    parser.set_defaults(handler=run)
    add_config_flag(parser)
    keep = argparse.SUPPRESS  # unset flags must not override the config file
    parser.add_argument("--model", default=keep, help="Hub id, bundled name or folder.")
    parser.add_argument(
        "--base-model", dest="base_model", default=keep, help="Local copy of an adapter's base."
    )
    parser.add_argument("--train", default=keep, help="Training data: file, folder or hub id.")
    parser.add_argument("--eval", default=keep, help="Validation data: trials are scored on it.")
    parser.add_argument("--method", default=keep, help="lora (default), full, prompt_tuning...")
    parser.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="A fixed method option."
    )
    parser.add_argument(
        "--search",
        action="append",
        metavar="KEY=SPEC",
        help="A setting to search: KEY=LOW..HIGH[:log] or KEY=A,B,C, e.g. "
        "learning_rate=1e-5..1e-2:log, r=4,8,16, target_modules=[[q,v],[q,k,v,o]].",
    )
    parser.add_argument(
        "--output-dir", dest="output_dir", default=keep, help="Sweep folder (resumed if it exists)."
    )
    parser.add_argument(
        "--overwrite", action="store_true", default=keep, help="Start the sweep in it over."
    )
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="Measure a few steps and one scoring; print the projected time and cost per rung.",
    )
    parser.add_argument("--json", action="store_true", help="Print sweep.json's content.")
    add_model_flags(parser, SweepOptions, "sweep")
    add_model_flags(parser, TrainingOptions, "training", skip=SWEEP_OWNED)
    add_model_flags(parser, DataOptions, "data")


def run(args: argparse.Namespace) -> int:
    """Validate everything (the space included) before the model loads, then sweep."""
    from dialogsum.data import load_examples
    from dialogsum.registry import get_registry
    from dialogsum.summarizer import Summarizer
    from dialogsum.sweep.space import resolve_space

    config = load_settings(SweepConfig, args)
    config.sweep.check_installed()
    registry = get_registry()
    # The space is checked against the method's options before the (slow) model load.
    options = registry.method_options(config.method, config.options)
    try:
        resolve_space(
            config.space,
            method=config.method,
            method_options=options,
            training=config.training,
            validate_method=lambda values: registry.method_options(config.method, values),
        )
    except ConfigError as exc:
        file = getattr(args, "config", None)
        if file is None or "space" not in read_config_file(file):
            raise
        where = f"in the space of config file {file}, with any --search flags"
        raise ConfigError(f"{str(exc).rstrip('.')} ({where}).") from None
    train_data = load_examples(config.train, "train")
    eval_data = load_examples(config.eval, "validation")
    summarizer = Summarizer.from_pretrained(
        config.model, backend="torch", backend_options=backend_options(config)
    )
    arguments: dict[str, Any] = {
        "space": config.space,
        "output_dir": config.output_dir,
        "method": config.method,
        "options": options,
        "training": config.training,
        "data": config.data,
        "sweep": config.sweep,
    }
    if args.estimate:
        projection = summarizer.estimate_sweep(train_data, eval_data, **arguments)
        print(projection.message())
        if args.json:
            print(json.dumps(projection.as_dict(), indent=2))
        return 0
    _, result = summarizer.sweep(train_data, eval_data, overwrite=config.overwrite, **arguments)
    summary = result.summary
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(describe(summary, str(result.folder)))
    if summary["state"] == "stopped":
        print(f"dialogsum sweep: {summary['stop_reason']}", file=sys.stderr)
        return BUDGET_STOPPED
    return 0


def describe(summary: dict[str, Any], folder: str) -> str:
    """A few lines for people: the best trial, its score and settings, where things are."""
    from dialogsum.sweep.report import trial_counts

    metric = summary["objective"]["metric"]
    counted, counts = trial_counts(summary["trials"])
    lines = [f"Sweep in {folder}: {counted} trial{'' if counted == 1 else 's'} ({counts})."]
    best = summary["best"]
    if best is None:
        lines.append("No trial finished, so there is no best model yet.")
    else:
        settings = ", ".join(
            f"{key.split('.', 1)[1]}={value:.3g}"
            if isinstance(value, float)
            else f"{key.split('.', 1)[1]}={value}"
            for key, value in best["params"].items()
        )
        lines.append(f"Best: trial {best['number']}, {metric} {best['score']:.4g} ({settings}).")
        if summary.get("default_score") is not None:
            lines.append(f"Before tuning: {metric} {summary['default_score']:.4g}.")
        lines.append(f"Its model: {folder}/best (evaluate, export and serve take it).")
    lines.append(f"Report: {folder}/report.html")
    return "\n".join(lines)
