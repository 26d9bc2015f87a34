"""``dialogsum quickstart``: the whole story, offline, in a few minutes.

Load a model (the bundled ``dialogsum-tiny`` by default), score it on a DialogSum test sample,
LoRA-tune it on a train sample, score it again, export it to int8 ONNX, serve the export with
the onnxruntime backend, and print human / original / tuned summaries side by side with a ROUGE
table and what each stage cost.
"""

from __future__ import annotations

import json
import shlex
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dialogsum.data import DataSource, Example, group_references, load_examples
from dialogsum.errors import ConfigError, logger
from dialogsum.evaluate import ROUGE_TYPES
from dialogsum.files import write_text

T = TypeVar("T")
DEFAULT_MODEL = "dialogsum-tiny"
#: Written last into the output folder: the scores, timings and summaries of the run.
RESULTS_FILE = "quickstart.json"
#: Dialogues tuned on and scored when the user does not say (the shipped sample has 200 and 40).
DEFAULT_SAMPLES = {"train": 400, "test": 40}


@dataclass
class Stage:
    """One step of the quickstart and how long it took."""

    name: str
    seconds: float


@dataclass
class QuickstartResult:
    """What the quickstart measured."""

    examples: list[Example]
    predictions: dict[str, list[str]]
    scores: dict[str, dict[str, float]]
    stages: list[Stage] = field(default_factory=list)
    export_dir: Path | None = None


def _timed(stages: list[Stage], name: str, work: Callable[[], T]) -> T:
    print(f"\n== {name}", flush=True)
    started = time.perf_counter()
    result = work()
    stages.append(Stage(name, time.perf_counter() - started))
    return result


def _first(examples: list[Example], asked: int | None, split: str, flag: str) -> list[Example]:
    """The first ``asked`` examples (all, up to the default's number, when None), saying so
    when the data holds fewer than the user asked for: never a silent cap."""
    default = DEFAULT_SAMPLES[split]
    if asked is not None and asked > len(examples):
        print(
            f"note: {flag} {asked}, but the data holds {len(examples)} {split} dialogues; "
            f"using all {len(examples)}.",
            flush=True,
        )
    return examples[: asked or default]


def run_quickstart(
    *,
    model: str = DEFAULT_MODEL,
    data: DataSource | None = None,
    output_dir: str | Path = "dialogsum-quickstart",
    train_samples: int | None = None,
    test_samples: int | None = None,
    epochs: float = 2.0,
    overwrite: bool = False,
) -> QuickstartResult:
    """Run the quickstart; ``data`` defaults to the DialogSum sample shipped in the package.

    ``train_samples`` and ``test_samples`` default to the first 400 and 40 (fewer when the
    data holds fewer); a number above what the data holds is said, then all of it is used.
    """
    from dialogsum.data import sample_path
    from dialogsum.modeling import check_writable
    from dialogsum.summarizer import Summarizer

    output = Path(output_dir).expanduser()
    # Running the quickstart again replaces its own earlier results (marked by quickstart.json),
    # so the README's command can be repeated; any other folder is refused unless overwrite.
    replacing = (output / RESULTS_FILE).is_file() and not overwrite
    overwrite = overwrite or replacing
    check_writable(output, overwrite=overwrite, in_place=True)  # before anything loads
    if isinstance(data, (str, Path)) and Path(data).expanduser().is_file():
        raise ConfigError(
            f"The quickstart's data is a folder with train and test files (or a hub id); "
            f"{data} is one file, which would be both what the model is tuned on and what it "
            f"is scored on. Give its folder."
        )
    source: DataSource = data if data is not None else sample_path("train").parent
    train = _first(load_examples(source, "train"), train_samples, "train", "--train-samples")
    test = _first(
        group_references(load_examples(source, "test")), test_samples, "test", "--test-samples"
    )
    if replacing:  # said once the settings and data are known good: now it will be replaced
        logger.warning("replacing the earlier quickstart run in %s", output)
    stages: list[Stage] = []
    original = _timed(stages, f"load {model}", lambda: Summarizer.from_pretrained(model))
    texts = [e.dialogue for e in test]
    predictions: dict[str, list[str]] = {}
    predictions["original"] = _timed(
        stages,
        f"summarize {len(test)} test dialogues (original)",
        lambda: original.summarize(texts),
    )
    tuned = _timed(
        stages,
        f"LoRA-tune on {len(train)} train dialogues",
        lambda: original.finetune(
            train,
            method="lora",
            output_dir=output / "lora-run",
            overwrite=overwrite,
            training={
                "epochs": epochs,
                "batch_size": 8,
                "save_strategy": "no",
            },
        ),
    )
    predictions["tuned (PyTorch)"] = _timed(
        stages, "summarize again (tuned)", lambda: tuned.summarize(texts)
    )
    export_dir = _timed(
        stages,
        "merge and export to ONNX int8",
        lambda: tuned.export(output / "onnx-int8", quantize="int8", overwrite=overwrite),
    )
    served = Summarizer.from_pretrained(export_dir, backend="onnxruntime")
    predictions["tuned (ONNX int8)"] = _timed(
        stages, "serve with onnxruntime (int8)", lambda: served.summarize(texts)
    )
    from dialogsum.evaluate import rouge

    references = [e.references for e in test]
    scores = {name: rouge(texts_, references) for name, texts_ in predictions.items()}
    record = {
        "model": str(model),
        "data": str(source),
        "train_dialogues": len(train),
        "test_dialogues": len(test),
        "summaries_changed_by_tuning": most_changed(predictions, 0)[1],
        "rouge": scores,
        "seconds": {stage.name: round(stage.seconds, 2) for stage in stages},
        "predictions": predictions,
    }
    write_text(output / RESULTS_FILE, json.dumps(record, indent=2) + "\n")
    return QuickstartResult(test, predictions, scores, stages, export_dir)


def change(before: str, after: str) -> float:
    """How much ``after`` differs from ``before``: 0 for the same words, 1 for none shared."""
    import difflib

    return 1.0 - difflib.SequenceMatcher(None, before.split(), after.split()).ratio()


def most_changed(predictions: dict[str, list[str]], show: int) -> tuple[list[int], int]:
    """The indices of the ``show`` summaries tuning changed most, the first model's against the
    second's (most changed first, ties in input order), and how many it changed at all."""
    names = list(predictions)
    if len(names) < 2:
        return list(range(min(show, len(predictions[names[0]]) if names else 0))), 0
    before, after = predictions[names[0]], predictions[names[1]]
    changes = [change(old, new) for old, new in zip(before, after, strict=True)]
    order = sorted(range(len(changes)), key=lambda index: -changes[index])
    return order[:show], sum(1 for value in changes if value > 0)


def render(result: QuickstartResult, show: int = 3, width: int = 100) -> str:
    """The summaries tuning changed most side by side, the ROUGE table and each stage's cost."""
    wrap = textwrap.TextWrapper(width=width, initial_indent="    ", subsequent_indent="    ")
    lines: list[str] = []
    shown, changed = most_changed(result.predictions, show)
    total = len(result.examples)
    if shown and len(result.predictions) > 1:
        first, second = list(result.predictions)[:2]
        lines += [
            "",
            f"Tuning changed {changed} of the {total} test summaries ('{first}' against "
            f"'{second}')" + ("; the most changed first:" if changed else "."),
        ]
    for index in shown:
        example = result.examples[index]
        label = f" ({example.id})" if example.id is not None else ""
        lines += ["", "-" * width, f"Dialogue {index + 1} of {total}{label}:", ""]
        lines += [wrap.fill(turn) for turn in example.dialogue.splitlines()[:12]]
        if len(example.dialogue.splitlines()) > 12:
            lines.append("    ...")
        lines += ["", "Human baseline summary:", wrap.fill(example.references[0])]
        for name, predictions in result.predictions.items():
            lines += [f"Model summary, {name}:", wrap.fill(predictions[index] or "(empty)")]
    lines += [
        "",
        "=" * width,
        f"ROUGE on {len(result.examples)} test dialogues "
        "(percent; stemmed; mean over each dialogue's references):",
        "",
    ]
    header = f"{'model':<22}" + "".join(f"{key:>11}" for key in ROUGE_TYPES)
    lines.append(header)
    for name, scores in result.scores.items():
        lines.append(f"{name:<22}" + "".join(f"{scores[key]:>11.2f}" for key in ROUGE_TYPES))
    lines += ["", "What it cost (wall time on this machine):"]
    lines += [f"  {stage.name:<50} {stage.seconds:>8.1f} s" for stage in result.stages]
    lines.append(f"  {'total':<50} {sum(s.seconds for s in result.stages):>8.1f} s")
    if result.export_dir is not None:
        lines += [
            "",
            f"The int8 ONNX export is in {result.export_dir}; serve it with",
            f"  {command_name()} summarize --model {result.export_dir}",
        ]
    return "\n".join(lines)


def command_name() -> str:
    """How the user can run ``dialogsum`` again: the name when it is on PATH, else its path.

    The README installs into ``.venv``, whose ``bin`` is usually not on PATH.
    """
    import shutil
    import sys

    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    on_path = shutil.which("dialogsum")
    if script is not None and script.name == "dialogsum":
        if on_path and Path(on_path).resolve() == script:
            return "dialogsum"
        return shlex.quote(str(script))
    if on_path:
        return "dialogsum"
    return f"{shlex.quote(sys.executable)} -m dialogsum"


def main_quickstart(**kwargs: Any) -> str:
    """Run and render (what the CLI prints)."""
    show = kwargs.pop("show", 3)
    return render(run_quickstart(**kwargs), show=show)
