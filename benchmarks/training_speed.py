"""Training speed on a CPU: real tokens per second of dialogsum's training path against the
common course notebook's way, on the FLAN-T5-small architecture and real DialogSum rows.

    python benchmarks/training_speed.py            # about 10 minutes on 2 cores
    python benchmarks/training_speed.py --quick    # a smoke run at toy size, seconds

The model is FLAN-T5-small's exact architecture with seeded random weights
(``../shared/models/flan-t5-small.config.json``); the tokenizer is the bundled dialogsum-tiny's
(8,000 pieces trained on DialogSum: a prompted train dialogue is 180 tokens on average, its
summary 28, close to T5's own SentencePiece). Every contender trains the same seeded sample of
train rows, batch 8, 2 threads, in one process; rounds alternate the contenders, and each
contender's figure is the median of its rounds.

LoRA (r=32, alpha 32, dropout 0.05, on q and v, learning rate 1e-3) is trained five ways:

- ``notebook``: the course notebook's way. Every prompt and every summary is tokenized with
  ``padding="max_length"`` to 512 tokens, no attention mask is kept and the label padding is
  left as pad ids (so the loss counts it too, as in the notebook), batched by transformers'
  default collator into a plain ``Trainer`` without length grouping.
- ``notebook, labels per batch``: a gentler baseline: prompts still padded to 512, summaries
  padded per batch with -100 (what padding only the inputs costs).
- ``per-batch padding``: dialogsum's features (unpadded; labels padded with -100 by
  ``DataCollatorForSeq2Seq(padding="longest")``) in a plain ``Seq2SeqTrainer``, no grouping.
- ``+ group_by_length``: the same with transformers' ``group_by_length=True``.
- ``dialogsum``: dialogsum's own path, ``plan_run`` and ``train`` exactly as ``finetune`` calls
  them.

Full fine-tuning and prompt tuning are timed on dialogsum's path too (``--methods``).

Real tokens are the non-pad input tokens plus the non-pad label tokens of the rows trained; a
rate is the real tokens of one epoch over the wall time of its training steps (data collation,
forward, backward and optimizer step; not the model load, not the Trainer's set-up). Each
round trains every contender one epoch over the rows, except the notebook: every one of its
batches is 8 x 512 input and 8 x 512 label tokens whatever rows it holds, so it costs the same,
and its epoch is timed as (steps per epoch) x (median of ``--notebook-steps`` step times); that
keeps the run within 10 minutes. Before the timed rounds each contender trains two warm-up
steps on other rows. Writes ``benchmarks/results/training_speed.json``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, ROOT, config_path

#: The course notebook's prompt, as it builds it (dialogsum's default prompt is the same text).
NOTEBOOK_PROMPT = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "
LORA = {"r": 32, "alpha": 32, "dropout": 0.05, "target_modules": ["q", "v"]}
BATCH = 8
MAX_LENGTH = 512


def step_clock() -> Any:
    """A Trainer callback recording when the epoch began and when each step ended."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.began = 0.0
            self.ends: list[float] = []

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.began = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.ends.append(time.perf_counter())

        def seconds(self) -> float:
            return self.ends[-1] - self.began

        def steps(self) -> list[float]:
            marks = [self.began, *self.ends]
            return [later - earlier for earlier, later in itertools.pairwise(marks)]

    return Clock()


def notebook_features(rows: list[Any], tokenizer: Any) -> list[dict[str, list[int]]]:
    """The notebook's features: prompt and summary each padded to 512, labels keep pad ids."""
    prompts = [NOTEBOOK_PROMPT.replace("{dialogue}", row.dialogue) for row in rows]
    summaries = [row.summary for row in rows]
    padding = {"padding": "max_length", "truncation": True, "max_length": MAX_LENGTH}
    inputs = tokenizer(prompts, **padding)["input_ids"]
    labels = tokenizer(summaries, **padding)["input_ids"]
    return [{"input_ids": i, "labels": t} for i, t in zip(inputs, labels, strict=True)]


def notebook_inputs_only(
    notebook: list[dict[str, list[int]]], features: list[dict[str, list[int]]]
) -> list[dict[str, list[int]]]:
    """A gentler notebook: prompts still padded to 512, but summaries unpadded, so the collator
    pads labels per batch with -100 (the variant that padding the inputs alone costs)."""
    return [
        {"input_ids": padded["input_ids"], "labels": own["labels"]}
        for padded, own in zip(notebook, features, strict=True)
    ]


def real_tokens(features: list[dict[str, list[int]]], pad_id: int) -> int:
    """Non-pad input ids plus non-pad, non-ignored label ids."""
    return sum(
        sum(1 for i in f["input_ids"] if i != pad_id)
        + sum(1 for i in f["labels"] if i not in (pad_id, -100))
        for f in features
    )


class Contender:
    """One way of training, run an epoch at a time on its own copy of the model."""

    def __init__(self, name: str, run: Callable[[list[Any], int | None, Any], None]) -> None:
        self.name = name
        self.run = run  # run(features or None for all, max_steps, clock)
        self.rates: list[float] = []
        self.step_seconds: list[float] = []


def plain_trainer_run(
    module: Any,
    tokenizer: Any,
    features: list[dict[str, list[int]]],
    *,
    notebook: bool,
    group_by_length: bool,
) -> Callable[[list[Any] | None, int | None, Any], None]:
    """A run of a hand-built transformers Trainer, the way a user writes one."""
    from transformers import (
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )
    from transformers.trainer_callback import PrinterCallback

    def run(subset: list[Any] | None, max_steps: int | None, clock: Any) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            common = {
                "output_dir": scratch,
                "learning_rate": 1e-3,
                "num_train_epochs": 1,
                "max_steps": max_steps or -1,
                "per_device_train_batch_size": BATCH,
                "logging_steps": 10,
                "save_strategy": "no",
                "report_to": "none",
                "disable_tqdm": True,
                "seed": 42,
                "remove_unused_columns": False,
                "group_by_length": group_by_length,
                "dataloader_pin_memory": False,
            }
            dataset = subset if subset is not None else features
            trainer: Any
            if notebook:
                trainer = Trainer(
                    model=module,
                    args=TrainingArguments(**common),
                    train_dataset=dataset,
                    data_collator=default_data_collator,
                    callbacks=[clock],
                )
            else:
                base = module.get_base_model()
                trainer = Seq2SeqTrainer(
                    model=module,
                    args=Seq2SeqTrainingArguments(**common, label_names=["labels"]),
                    train_dataset=dataset,
                    data_collator=DataCollatorForSeq2Seq(
                        tokenizer, model=base, label_pad_token_id=-100, padding="longest"
                    ),
                    callbacks=[clock],
                )
            trainer.remove_callback(PrinterCallback)  # keep the benchmark's output readable
            trainer.train()

    return run


def dialogsum_run(plan: Any) -> Callable[[list[Any] | None, int | None, Any], None]:
    """A run of dialogsum's own training code, as ``finetune`` calls it."""
    from dialogsum.training.trainer import train

    def run(subset: list[Any] | None, max_steps: int | None, clock: Any) -> None:
        options = plan.training.model_copy(update={"max_steps": max_steps})
        with tempfile.TemporaryDirectory() as scratch:
            train(
                plan.module,
                plan.tokenizer,
                subset if subset is not None else plan.train_features,
                None,
                options,
                learning_rate=plan.learning_rate,
                checkpoint_dir=Path(scratch),
                max_target_length=plan.data.max_target_length,
                callbacks=[clock],
            )

    return run


def build(args: argparse.Namespace) -> tuple[list[Contender], int, dict[str, Any]]:
    """Every contender on the same rows; the rows' real tokens; facts about the setup."""
    import random

    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from dialogsum import Summarizer
    from dialogsum.data import load_examples
    from dialogsum.modeling import bundled_model_dir
    from dialogsum.registry import get_registry
    from dialogsum.training.planning import plan_run, validate_run

    config = T5Config.from_json_file(str(config_path("small")))
    if args.quick:  # the same code paths at toy size
        config.update(
            {
                "d_model": 64,
                "d_kv": 16,
                "d_ff": 128,
                "num_layers": 2,
                "num_decoder_layers": 2,
                "num_heads": 4,
            }
        )
    tokenizer_dir = bundled_model_dir("dialogsum-tiny")
    assert tokenizer_dir is not None
    folder = Path(tempfile.mkdtemp(prefix="training-speed-model-"))
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    base = Summarizer.from_pretrained(folder, backend_options={"progress": False})
    tokenizer = base.tokenizer

    everything = load_examples(args.data, "train")
    picked = random.Random(args.seed).sample(everything, args.rows + 2 * BATCH)
    rows, warm_rows = picked[: args.rows], picked[args.rows :]

    def plan(method: str, options: dict[str, Any], examples: list[Any]) -> Any:
        method_options, training_options, data_options = validate_run(
            get_registry(),
            method,
            options,
            {
                "epochs": 1,
                "batch_size": BATCH,
                "save_strategy": "no",
                "eval_strategy": "no",
                "progress": False,
            },
            {"max_source_length": MAX_LENGTH, "max_target_length": 128},
            base.manifest.data.model_copy,
        )
        return plan_run(
            model=base.model,
            tokenizer=tokenizer,
            manifest=base.manifest,
            source=base.source,
            registry=get_registry(),
            train=examples,
            method=method,
            method_options=method_options,
            training_options=training_options,
            data_options=data_options,
        )

    lora_plan = plan("lora", LORA, rows)
    features = lora_plan.train_features
    tokens = real_tokens(features, tokenizer.pad_token_id)
    notebook = notebook_features(rows, tokenizer)
    if real_tokens(notebook, tokenizer.pad_token_id) != tokens:
        # Both truncate to 512 and keep the closing </s>; any difference is a bug here.
        raise SystemExit("the notebook's features hold other real tokens than dialogsum's")
    warm = {
        "dialogsum": plan("lora", LORA, warm_rows).train_features,
        "notebook": notebook_features(warm_rows, tokenizer),
    }

    def lora_copy() -> Any:
        from peft import LoraConfig, TaskType, get_peft_model

        torch.manual_seed(42)
        return get_peft_model(
            copy.deepcopy(base.model),
            LoraConfig(
                task_type=TaskType.SEQ_2_SEQ_LM,
                r=32,
                lora_alpha=32,
                lora_dropout=0.05,
                target_modules=["q", "v"],
                bias="none",
            ),
        )

    contenders = [
        Contender(
            "notebook",
            plain_trainer_run(
                lora_copy(), tokenizer, notebook, notebook=True, group_by_length=False
            ),
        ),
        Contender(
            "notebook, labels per batch",
            plain_trainer_run(
                lora_copy(),
                tokenizer,
                notebook_inputs_only(notebook, features),
                notebook=False,
                group_by_length=False,
            ),
        ),
        Contender(
            "per-batch padding",
            plain_trainer_run(
                lora_copy(), tokenizer, features, notebook=False, group_by_length=False
            ),
        ),
        Contender(
            "+ group_by_length",
            plain_trainer_run(
                lora_copy(), tokenizer, features, notebook=False, group_by_length=True
            ),
        ),
        Contender("dialogsum", dialogsum_run(lora_plan)),
    ]
    for contender in contenders:
        contender.warm = warm["notebook" if contender.name == "notebook" else "dialogsum"]
        if contender.name == "notebook, labels per batch":
            contender.warm = notebook_inputs_only(  # type: ignore[attr-defined]
                warm["notebook"], warm["dialogsum"]
            )  # type: ignore[attr-defined]
    for method, options in (("full", {}), ("prompt_tuning", {"num_virtual_tokens": 20})):
        if method in args.methods:
            other = dialogsum_run(plan(method, options, rows))
            contenders.append(Contender(f"dialogsum {method}", other))
            contenders[-1].warm = warm["dialogsum"]  # type: ignore[attr-defined]
    setup = {
        "rows": len(rows),
        "steps_per_epoch": -(-len(rows) // BATCH),
        "mean_input_tokens": statistics.fmean(len(f["input_ids"]) for f in features),
        "mean_label_tokens": statistics.fmean(len(f["labels"]) for f in features),
        "parameters": sum(p.numel() for p in base.model.parameters()),
    }
    return contenders, tokens, setup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dialogsum"))
    parser.add_argument("--rows", type=int, default=160, help="Train rows (one epoch a round).")
    parser.add_argument("--rounds", type=int, default=2, help="Timed epochs per contender.")
    parser.add_argument(
        "--notebook-steps",
        type=int,
        default=4,
        help="Steps timed of the notebook's way each round.",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="Picks the rows.")
    parser.add_argument(
        "--methods",
        nargs="*",
        default=["full", "prompt_tuning"],
        help="Other methods timed on dialogsum's path.",
    )
    parser.add_argument("--quick", action="store_true", help="Toy model, few rows: a smoke run.")
    parser.add_argument("--out", type=Path, default=RESULTS / "training_speed.json")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds, args.notebook_steps = 16, 1, 2

    import torch
    import transformers

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    started = time.perf_counter()
    load_before = os.getloadavg()
    contenders, tokens, setup = build(args)
    print(
        f"{setup['rows']} rows, {tokens} real tokens, built in "
        f"{time.perf_counter() - started:.0f}s",
        flush=True,
    )
    for contender in contenders:
        contender.run(contender.warm, 2, step_clock())  # type: ignore[attr-defined]
    for round_index in range(args.rounds):
        for contender in contenders:
            clock = step_clock()
            if contender.name.startswith("notebook"):
                # Every batch is 8 x 512 inputs whatever rows it holds: time a few steps.
                contender.run(None, args.notebook_steps, clock)
                seconds = setup["steps_per_epoch"] * statistics.median(clock.steps())
            else:
                contender.run(None, None, clock)
                seconds = clock.seconds()
            contender.rates.append(tokens / seconds)
            contender.step_seconds.extend(clock.steps())
            print(
                f"round {round_index + 1} {contender.name}: {contender.rates[-1]:.0f} "
                f"tokens/s ({seconds:.1f}s an epoch)",
                flush=True,
            )
    notebook = statistics.median(contenders[0].rates)
    rows = []
    for contender in contenders:
        rate = statistics.median(contender.rates)
        rows.append(
            {
                "contender": contender.name,
                "tokens_per_s": rate,
                "rates": contender.rates,
                "median_step_s": statistics.median(contender.step_seconds),
                "vs_notebook": rate / notebook,
                # The same round's notebook figure, measured minutes apart: robust to load drift.
                "vs_notebook_by_round": [
                    mine / theirs
                    for mine, theirs in zip(contender.rates, contenders[0].rates, strict=True)
                ],
            }
        )
        print(f"{contender.name:24s} {rate:8.0f} tokens/s  {rate / notebook:5.2f}x notebook")
    results = {
        "model": "flan-t5-small" if not args.quick else "toy",
        "batch_size": BATCH,
        "threads": args.threads,
        "rounds": args.rounds,
        "real_tokens_per_epoch": tokens,
        **setup,
        "rows_timed": rows,
        "seconds": time.perf_counter() - started,
        # Other work on the machine slows some rounds more than others: report how busy it was.
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} in {results['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
