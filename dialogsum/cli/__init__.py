"""The ``dialogsum`` command line: plugins, train, evaluate, summarize."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from dialogsum.cli.config import (
    EvaluateConfig,
    SummarizeConfig,
    TrainConfig,
    add_model_flags,
    build_config,
    flags_to_settings,
)
from dialogsum.data import DataOptions, json_lines
from dialogsum.errors import DataError, DialogsumError
from dialogsum.generation import GenerationOptions
from dialogsum.registry import Registered
from dialogsum.training.options import TrainingOptions

Handler = Callable[[argparse.Namespace], int]


def _plugins(args: argparse.Namespace) -> int:
    from dialogsum.registry import get_registry

    registry = get_registry()
    entries: list[tuple[str, Registered[Any]]] = [
        *(("method", entry) for entry in registry.methods.values()),
        *(("backend", entry) for entry in registry.backends.values()),
    ]
    rows: list[dict[str, Any]] = [
        {
            "kind": kind,
            "name": entry.name,
            "source": entry.source,
            "options": list(entry.obj.Options.model_fields),
        }
        for kind, entry in sorted(entries, key=lambda pair: (pair[0] != "method", pair[1].name))
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = ("kind", "name", "source", "options")
    cells: list[tuple[str, ...]] = [
        (r["kind"], r["name"], r["source"], ", ".join(r["options"]) or "-") for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    for line in (headers, tuple("-" * w for w in widths), *cells):
        print(
            "  ".join(
                value.ljust(width) for value, width in zip(line, widths, strict=True)
            ).rstrip()
        )
    return 0


def _backend_options(
    base_model: str | None, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Backend options with ``--base-model`` folded in (for an adapter whose base moved)."""
    result = dict(options or {})
    if base_model is not None:
        result["base_model"] = base_model
    return result


def _train(args: argparse.Namespace) -> int:
    from dialogsum.data import load_examples
    from dialogsum.modeling import check_writable
    from dialogsum.registry import get_registry
    from dialogsum.summarizer import Summarizer

    config: TrainConfig = build_config(TrainConfig, args.config, flags_to_settings(args))
    # Validate everything cheap before the (slow) model load.
    registry = get_registry()
    options = registry.method_options(config.method, config.options)
    train_data = load_examples(config.train, "train")
    eval_data = load_examples(config.eval, "validation") if config.eval else None
    if not config.training.resume_from_checkpoint and not args.estimate:
        check_writable(Path(config.output_dir), overwrite=config.overwrite)
    backend_options = _backend_options(config.base_model)
    summarizer = Summarizer.from_pretrained(config.model, backend_options=backend_options)
    if args.estimate:
        estimate = summarizer.estimate(
            train_data,
            method=config.method,
            options=options,
            training=config.training,
            data=config.data,
            steps=args.estimate_steps,
        )
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
    metrics = tuned.training.metrics if tuned.training else {}
    print(
        json.dumps(
            {"model": str(Path(config.output_dir) / "model"), **metrics}, indent=2, default=str
        )
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from dialogsum.summarizer import Summarizer

    config: EvaluateConfig = build_config(EvaluateConfig, args.config, flags_to_settings(args))
    from dialogsum.data import load_examples

    examples = load_examples(config.data, config.split)
    summarizer = Summarizer.from_pretrained(
        config.model,
        backend=config.backend,
        backend_options=_backend_options(config.base_model, config.backend_options),
    )
    scores = summarizer.evaluate(
        examples,
        predictions_file=config.predictions,
        **config.generation.model_dump(exclude_unset=True),
    )
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        print(f"{'metric':<12} value")
        for key, value in scores.items():
            print(f"{key:<12} {value:.2f}" if isinstance(value, float) else f"{key:<12} {value}")
    return 0


def read_dialogue_lines(handle: IO[str], name: str) -> Iterator[tuple[Any, str]]:
    """``(id, dialogue)`` pairs from JSON lines of objects with ``dialogue`` (or plain strings)."""
    for number, value in json_lines(handle, name):
        row = {"dialogue": value} if isinstance(value, str) else value
        if not isinstance(row, dict) or not isinstance(row.get("dialogue"), str):
            raise DataError(
                f"{name}:{number}: expected an object with a string field 'dialogue' "
                f"(or a JSON string), got {json.dumps(value)[:60]!r}."
            )
        if not row["dialogue"].strip():
            raise DataError(f"{name}:{number}: field 'dialogue' is empty.")
        yield row.get("id", row.get("fname", number)), row["dialogue"]


def _summarize(args: argparse.Namespace) -> int:
    from dialogsum.evaluate import check_output_file
    from dialogsum.summarizer import Summarizer

    config: SummarizeConfig = build_config(SummarizeConfig, args.config, flags_to_settings(args))
    if config.output != "-":
        check_output_file(config.output)
    if config.input == "-":
        rows = list(read_dialogue_lines(sys.stdin, "<stdin>"))
    else:
        path = Path(config.input)
        if not path.is_file():
            raise DataError(f"Input file {path} does not exist.")
        with path.open(encoding="utf-8") as handle:
            rows = list(read_dialogue_lines(handle, str(path)))
    summarizer = Summarizer.from_pretrained(
        config.model,
        backend=config.backend,
        backend_options=_backend_options(config.base_model, config.backend_options),
    )
    summaries = summarizer.summarize(
        [dialogue for _, dialogue in rows], **config.generation.model_dump(exclude_unset=True)
    )
    lines = "".join(
        json.dumps({"id": key, "summary": summary}, ensure_ascii=False) + "\n"
        for (key, _), summary in zip(rows, summaries, strict=True)
    )
    if config.output == "-":
        sys.stdout.write(lines)
    else:
        Path(config.output).write_text(lines, encoding="utf-8")
    return 0


def _export(args: argparse.Namespace) -> int:
    from dialogsum.modeling import check_writable
    from dialogsum.onnx.export import check_quantize
    from dialogsum.summarizer import Summarizer

    check_quantize(args.quantize)
    check_writable(Path(args.output), overwrite=args.overwrite)
    backend_options = _backend_options(args.base_model)
    summarizer = Summarizer.from_pretrained(args.model, backend_options=backend_options)
    folder = summarizer.export(args.output, quantize=args.quantize, overwrite=args.overwrite)
    from dialogsum.modeling import read_manifest

    export = read_manifest(folder).export
    print(json.dumps({"output": str(folder), **(export.model_dump() if export else {})}, indent=2))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from dialogsum.compare import compare, to_html, to_markdown
    from dialogsum.data import group_references, load_examples
    from dialogsum.generation import parse_generation
    from dialogsum.summarizer import Summarizer

    generation = parse_generation(
        {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith("generation.")}
    )
    examples = group_references(load_examples(args.data, args.split))
    if args.limit:
        examples = examples[: args.limit]
    models = {}
    for name in args.model:
        backend = "onnxruntime" if (Path(name) / "encoder_model.onnx").exists() else "torch"
        models[name] = Summarizer.from_pretrained(name, backend=backend)
    result = compare(models, examples, **generation.model_dump(exclude_unset=True))
    markdown = to_markdown(result, show=args.show)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".md").write_text(markdown, encoding="utf-8")
    output.with_suffix(".html").write_text(to_html(result, show=args.show), encoding="utf-8")
    print(markdown)
    print(f"wrote {output.with_suffix('.md')} and {output.with_suffix('.html')}", file=sys.stderr)
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from dialogsum.quickstart import main_quickstart

    print(
        main_quickstart(
            model=args.model,
            data=args.data,
            output_dir=args.output,
            overwrite=args.overwrite,
            train_samples=args.train_samples,
            test_samples=args.test_samples,
            epochs=args.epochs,
            show=args.show,
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``dialogsum`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="dialogsum", description="Fine-tune FLAN-T5 into a dialogue summarizer and serve it."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    plugins = commands.add_parser(
        "plugins", help="List fine-tuning methods and inference backends."
    )
    plugins.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    plugins.set_defaults(handler=_plugins)

    train = commands.add_parser("train", help="Fine-tune a model.")
    train.set_defaults(handler=_train)
    train.add_argument("--config", help="YAML or JSON file mirroring these flags.")
    train.add_argument(
        "--model", default=argparse.SUPPRESS, help="Hub id or folder (default google/flan-t5-base)."
    )
    train.add_argument("--base-model", dest="base_model", default=argparse.SUPPRESS)
    train.add_argument(
        "--train", default=argparse.SUPPRESS, help="Training data: file, folder or hub id."
    )
    train.add_argument("--eval", default=argparse.SUPPRESS, help="Validation data.")
    train.add_argument(
        "--method", default=argparse.SUPPRESS, help="full, lora, prompt_tuning, or a plugin's."
    )
    train.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="A method option, e.g. r=16."
    )
    train.add_argument("--output-dir", dest="output_dir", default=argparse.SUPPRESS)
    train.add_argument("--overwrite", action="store_true", default=argparse.SUPPRESS)
    train.add_argument(
        "--estimate",
        action="store_true",
        help="Run a few real steps and project the whole run's time (and cost); do not train.",
    )
    train.add_argument("--estimate-steps", type=int, default=5, help="Steps --estimate measures.")
    add_model_flags(train, TrainingOptions, "training")
    add_model_flags(train, DataOptions, "data")

    export = commands.add_parser("export", help="Export a model to ONNX for CPU serving.")
    export.set_defaults(handler=_export)
    export.add_argument("--model", required=True, help="Folder save() or train wrote.")
    export.add_argument("--base-model", dest="base_model", help="Local copy of an adapter's base.")
    export.add_argument("--output", required=True, help="Export folder to create.")
    export.add_argument(
        "--quantize", choices=["int8"], help="onnxruntime dynamic int8 quantization."
    )
    export.add_argument("--overwrite", action="store_true", help="Replace an existing folder.")

    for name, handler, help_text in (
        ("evaluate", _evaluate, "Score a model with ROUGE against references."),
        ("summarize", _summarize, "Summarize JSON lines of dialogues."),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument("--config", help="YAML or JSON file mirroring these flags.")
        sub.add_argument("--model", default=argparse.SUPPRESS)
        sub.add_argument("--base-model", dest="base_model", default=argparse.SUPPRESS)
        sub.add_argument(
            "--backend", default=argparse.SUPPRESS, help="torch (default) or a plugin's."
        )
        sub.add_argument(
            "--backend-option", dest="backend_option", action="append", metavar="KEY=VALUE"
        )
        add_model_flags(sub, GenerationOptions, "generation")
    quickstart = commands.add_parser(
        "quickstart",
        help="Offline demo: evaluate, LoRA-tune, export int8 ONNX, serve, compare side by side.",
    )
    quickstart.set_defaults(handler=_quickstart)
    quickstart.add_argument(
        "--model", default="dialogsum-tiny", help="Bundled name, folder or hub id."
    )
    quickstart.add_argument("--data", help="DialogSum folder or hub id (default: bundled sample).")
    quickstart.add_argument("--output", default="dialogsum-quickstart", help="Folder for the run.")
    quickstart.add_argument("--overwrite", action="store_true", help="Replace an earlier run.")
    quickstart.add_argument("--train-samples", type=int, default=400)
    quickstart.add_argument("--test-samples", type=int, default=40)
    quickstart.add_argument("--epochs", type=float, default=2.0)
    quickstart.add_argument("--show", type=int, default=3, help="Dialogues shown side by side.")

    compare = commands.add_parser("compare", help="Compare models side by side with ROUGE.")
    compare.set_defaults(handler=_compare)
    compare.add_argument("--model", action="append", required=True, help="Repeat per model.")
    compare.add_argument("--data", required=True, help="Data with references.")
    compare.add_argument("--split", default="test")
    compare.add_argument("--limit", type=int, help="Score only the first N dialogues.")
    compare.add_argument("--show", type=int, default=3, help="Dialogues shown side by side.")
    compare.add_argument("--output", default="comparison", help="Writes OUTPUT.md and OUTPUT.html.")
    add_model_flags(compare, GenerationOptions, "generation")

    evaluate = commands.choices["evaluate"]
    evaluate.add_argument("--data", default=argparse.SUPPRESS, help="File, folder or hub id.")
    evaluate.add_argument("--split", default=argparse.SUPPRESS, help="Split of a folder or hub id.")
    evaluate.add_argument(
        "--predictions", default=argparse.SUPPRESS, help="Write predictions here."
    )
    evaluate.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    summarize = commands.choices["summarize"]
    summarize.add_argument(
        "--input", default=argparse.SUPPRESS, help="JSON lines file, or - for stdin."
    )
    summarize.add_argument(
        "--output", default=argparse.SUPPRESS, help="JSON lines file, or - for stdout."
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except DialogsumError as exc:
        print(f"dialogsum {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dialogsum {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
