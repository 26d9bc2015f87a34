"""``dialogsum train``: fine-tune a model (or ``--estimate`` what that would cost)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dialogsum.cli.config import (
    BUDGET_STOPPED,
    TrainConfig,
    add_config_flag,
    add_model_flags,
    backend_options,
    load_settings,
)
from dialogsum.data import DataOptions
from dialogsum.training.options import TrainingOptions


def add_parser(commands: Any) -> None:
    """Add the ``train`` command."""
    parser = commands.add_parser("train", help="Fine-tune a model.")
    parser.set_defaults(handler=run)
    add_config_flag(parser)
    keep = argparse.SUPPRESS  # unset flags must not override the config file
    parser.add_argument(
        "--model",
        default=keep,
        help="Hub id, bundled name or folder (default google/flan-t5-base).",
    )
    parser.add_argument(
        "--base-model", dest="base_model", default=keep, help="Local copy of an adapter's base."
    )
    parser.add_argument("--train", default=keep, help="Training data: file, folder or hub id.")
    parser.add_argument("--eval", default=keep, help="Validation data, scored with ROUGE after.")
    parser.add_argument(
        "--method", default=keep, help="full, lora (default), prompt_tuning, or a plugin's."
    )
    parser.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="A method option, e.g. r=16."
    )
    parser.add_argument(
        "--output-dir", dest="output_dir", default=keep, help="Run folder (checkpoints, model)."
    )
    parser.add_argument(
        "--overwrite", action="store_true", default=keep, help="Replace an existing run folder."
    )
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="Run a few real steps and project the whole run's time (and cost); do not train.",
    )
    parser.add_argument("--estimate-steps", type=int, default=5, help="Steps --estimate measures.")
    add_model_flags(parser, TrainingOptions, "training")
    add_model_flags(parser, DataOptions, "data")


def run(args: argparse.Namespace) -> int:
    """Validate everything cheap, load the model, then train (or estimate)."""
    from dialogsum.data import load_examples
    from dialogsum.registry import get_registry
    from dialogsum.summarizer import Summarizer
    from dialogsum.training.checkpoints import check_run_folder
    from dialogsum.training.distributed import (
        check_sharding,
        end_launched_worker,
        is_main_process,
        leave_process_group,
    )

    config = load_settings(TrainConfig, args)
    check_sharding()  # a launch that cannot be saved fails before the model loads
    # Validate everything cheap before the (slow) model load; the run folder before the data.
    options = get_registry().method_options(config.method, config.options)
    if not args.estimate:
        check_run_folder(
            Path(config.output_dir).expanduser(),
            overwrite=config.overwrite,
            resume=config.training.resume_from_checkpoint,
        )
    train_data = load_examples(config.train, "train")
    eval_data = load_examples(config.eval, "validation") if config.eval else None
    summarizer = Summarizer.from_pretrained(
        config.model, backend="torch", backend_options=backend_options(config)
    )
    if args.estimate:
        estimate = summarizer.estimate(
            train_data,
            method=config.method,
            options=options,
            training=config.training,
            data=config.data,
            steps=args.estimate_steps,
        )
        leave_process_group()
        if not is_main_process():
            end_launched_worker()
        print(estimate.message())
        print(json.dumps(estimate.as_dict(), indent=2))
        return 0
    tuned = summarizer.finetune(
        train_data,
        method=config.method,
        options=options,
        eval_data=eval_data,
        output_dir=config.output_dir,
        training=config.training,
        data=config.data,
        overwrite=config.overwrite,
    )
    leave_process_group()  # before a rank returns and exits; is_main_process reads RANK then
    if not is_main_process():
        end_launched_worker()  # rank 0 prints the run's result, once
    metrics = tuned.training.metrics if tuned.training else {}
    model = str(Path(config.output_dir) / "model")
    print(json.dumps({"model": model, **metrics}, indent=2, default=str))
    if metrics.get("stopped") == "budget":
        # Rank 0 alone (the others returned 0 above): a launcher such as torchrun stops every
        # process when one fails, and the others must not fail while rank 0 writes the run.
        print(f"dialogsum train: {metrics['budget']['message']}", file=sys.stderr)
        return BUDGET_STOPPED
    return 0
