"""ROUGE as DialogSum reports it: rouge-score with stemming, mean over several references.

DialogSum's test split has three human references per dialogue. A prediction's score is the mean
of its F1 against each reference (not the maximum), then averaged over dialogues; this is how
the corpus authors report it. Scores are percentages (0-100).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from statistics import fmean

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
