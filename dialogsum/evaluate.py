"""ROUGE as DialogSum reports it: rouge-score with stemming, mean over several references.

DialogSum's test split has three human references per dialogue. A prediction's score is the mean
of its F1 against each reference (not the maximum), then averaged over dialogues; this is how
the corpus authors report it. Scores are percentages (0-100).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import fmean

from dialogsum.data import Example
from dialogsum.errors import ConfigError
from dialogsum.files import check_can_write, write_text

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sentences_on_lines(text: str) -> str:
    # rougeLsum scores sentence by sentence, split on newlines. A regex splitter instead of
    # nltk's punkt: punkt needs a data download, which offline machines cannot do.
    return "\n".join(part for part in _SENTENCE_END.split(text.strip()) if part)


def rouge(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean ROUGE F1 (percent) of ``predictions``, each against all its ``references``."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} reference lists; "
            "they must pair up."
        )
    if not predictions:
        raise ValueError("Cannot score zero predictions.")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals: dict[str, list[float]] = {name: [] for name in ROUGE_TYPES}
    for prediction, refs in zip(predictions, references, strict=True):
        if not refs:
            raise ValueError("Every prediction needs at least one reference to be scored.")
        per_reference = [
            scorer.score(_sentences_on_lines(ref), _sentences_on_lines(prediction)) for ref in refs
        ]
        for name in ROUGE_TYPES:
            totals[name].append(fmean(score[name].fmeasure for score in per_reference))
    return {name: 100.0 * fmean(values) for name, values in totals.items()}


def check_output_file(path: str | Path, *, overwrite: bool = True) -> None:
    """Fail before any work when ``path`` cannot be written (missing or read-only folder, a
    directory, or an existing file without ``overwrite``)."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(f"Output file {target} is a folder; give a file name.")
    if target.exists() and not overwrite:
        raise ConfigError(
            f"{target} already exists; choose another file or pass overwrite=True "
            f"(CLI: --overwrite) to replace it."
        )
    check_can_write(target)  # a read-only folder, or a file where a folder should be


def evaluate_summaries(
    summarize: Callable[[list[str]], list[str]],
    examples: Sequence[Example],
    *,
    predictions_file: str | Path | None = None,
    overwrite: bool = True,
) -> dict[str, float]:
    """Summarize ``examples`` with ``summarize`` and score the summaries with :func:`rouge`.

    Returns ``rouge1``, ``rouge2``, ``rougeL``, ``rougeLsum``, ``n`` (dialogues),
    ``references`` and timing; with ``predictions_file``, writes one JSON line per dialogue
    (id, dialogue, prediction, references).
    """
    if predictions_file is not None:
        check_output_file(predictions_file, overwrite=overwrite)  # before the work
    started = time.perf_counter()
    predictions = summarize([e.dialogue for e in examples])
    seconds = time.perf_counter() - started
    scores: dict[str, float] = rouge(predictions, [e.references for e in examples])
    scores.update(
        n=len(examples),
        references=sum(len(e.references) for e in examples),
        seconds=seconds,
        dialogues_per_second=len(examples) / seconds if seconds > 0 else float("inf"),
    )
    if predictions_file is not None:
        rows = [
            {"id": e.id, "dialogue": e.dialogue, "prediction": p, "references": list(e.references)}
            for e, p in zip(examples, predictions, strict=True)
        ]
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        write_text(Path(predictions_file), lines, overwrite=overwrite)
    return scores
