"""Training features: (dialogue, reference) pairs as token ids, with truncation counted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dialogsum.data import DataOptions, Example
from dialogsum.errors import logger
from dialogsum.generation import cut_to_length, encode_sources

#: Label id the loss ignores; padding in labels is set to it.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class TruncationReport:
    """How many inputs and targets were cut to the configured limits."""

    examples: int
    dialogues_truncated: int
    summaries_truncated: int
    max_source_length: int
    max_target_length: int

    @property
    def any(self) -> bool:
        """Whether anything was truncated."""
        return bool(self.dialogues_truncated or self.summaries_truncated)

    def message(self) -> str:
        """A sentence for the user saying what was cut and how to avoid it."""
        parts = []
        if self.dialogues_truncated:
            parts.append(
                f"{self.dialogues_truncated} of {self.examples} prompted dialogues were longer "
                f"than max_source_length={self.max_source_length} tokens and were truncated"
            )
        if self.summaries_truncated:
            parts.append(
                f"{self.summaries_truncated} of {self.examples} summaries were longer than "
                f"max_target_length={self.max_target_length} tokens and were truncated"
            )
        return "; ".join(parts) + " (raise the limits to keep them whole)."

    def as_dict(self) -> dict[str, int]:
        """The counts, for metrics files."""
        return {
            "examples": self.examples,
            "dialogues_truncated": self.dialogues_truncated,
            "summaries_truncated": self.summaries_truncated,
        }


def tokenize_examples(
    examples: Sequence[Example], tokenizer: Any, options: DataOptions, what: str = "training"
) -> tuple[list[dict[str, list[int]]], TruncationReport]:
    """Training features, one per (dialogue, reference) pair, unpadded.

    An example with several references yields one training pair per reference. Truncation is
    counted and logged, never silent, naming ``what`` data it is ("training", "validation").
    """
    dialogues = [e.dialogue for e in examples for _ in e.references]
    summaries = [r for e in examples for r in e.references]
    sources, sources_cut = encode_sources(dialogues, tokenizer, options)
    # verbose=False: lengths are checked and reported here, not by the tokenizer's own warning.
    targets = tokenizer(summaries, add_special_tokens=True, verbose=False)["input_ids"]
    cut_targets = [
        cut_to_length(ids, options.max_target_length, tokenizer.eos_token_id) for ids in targets
    ]
    features = [
        {"input_ids": src, "attention_mask": [1] * len(src), "labels": tgt}
        for src, (tgt, _) in zip(sources, cut_targets, strict=True)
    ]
    report = TruncationReport(
        examples=len(features),
        dialogues_truncated=sources_cut,
        summaries_truncated=sum(flag for _, flag in cut_targets),
        max_source_length=options.max_source_length,
        max_target_length=options.max_target_length,
    )
    if report.any:
        logger.warning("%s data: %s", what, report.message())
    return features, report
