"""Turning examples into token ids: prompting, truncation that is counted, per-batch padding."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dialogsum.data import DataOptions, Example

logger = logging.getLogger("dialogsum")

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


def _cut(ids: list[int], limit: int, eos_id: int | None) -> tuple[list[int], bool]:
    if len(ids) <= limit:
        return ids, False
    # Keep the end-of-sequence token: T5 was trained to see it closing every input and target.
    if eos_id is not None and ids and ids[-1] == eos_id:
        return [*ids[: limit - 1], eos_id], True
    return ids[:limit], True


def encode_sources(
    dialogues: Sequence[str], tokenizer: Any, options: DataOptions
) -> tuple[list[list[int]], int]:
    """Token ids of the prompted dialogues, cut to ``max_source_length``; and how many were cut."""
    encoded = tokenizer(
        [options.render(d) for d in dialogues], add_special_tokens=True, verbose=False
    )["input_ids"]
    cut = [_cut(ids, options.max_source_length, tokenizer.eos_token_id) for ids in encoded]
    return [ids for ids, _ in cut], sum(flag for _, flag in cut)


def warn_truncated_inputs(truncated: int, total: int, options: DataOptions) -> None:
    """Log how many dialogues were cut before summarizing (never silent)."""
    if truncated:
        logger.warning(
            "%d of %d dialogues were longer than max_source_length=%d tokens and were "
            "truncated before summarizing.",
            truncated,
            total,
            options.max_source_length,
        )


def tokenize_examples(
    examples: Sequence[Example], tokenizer: Any, options: DataOptions
) -> tuple[list[dict[str, list[int]]], TruncationReport]:
    """Training features, one per (dialogue, reference) pair, unpadded.

    An example with several references yields one training pair per reference. Truncation is
    counted and logged, never silent.
    """
    dialogues = [e.dialogue for e in examples for _ in e.references]
    summaries = [r for e in examples for r in e.references]
    sources, sources_cut = encode_sources(dialogues, tokenizer, options)
    # verbose=False: lengths are checked and reported here, not by the tokenizer's own warning.
    targets = tokenizer(summaries, add_special_tokens=True, verbose=False)["input_ids"]
    cut_targets = [_cut(ids, options.max_target_length, tokenizer.eos_token_id) for ids in targets]
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
        logger.warning(report.message())
    return features, report


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first, to waste little padding."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def summarize_batches(
    sources: Sequence[list[int]],
    batch_size: int,
    pad_id: int,
    run_batch: Callable[[list[list[int]], list[list[int]]], list[str]],
    *,
    progress: bool = True,
) -> list[str]:
    """Summaries of ``sources`` in input order, generated in length-sorted, padded batches.

    ``run_batch(ids, mask)`` generates and decodes one padded batch; every backend's
    ``summarize`` shares this loop and its progress bar.
    """
    from tqdm.auto import tqdm

    summaries = [""] * len(sources)
    batches = length_sorted_batches([len(s) for s in sources], batch_size)
    disable = not progress or len(batches) < 2
    with tqdm(total=len(sources), desc="summarizing", unit="dialogue", disable=disable) as bar:
        for batch in batches:
            ids, mask = pad_batch([sources[i] for i in batch], pad_id)
            for index, text in zip(batch, run_batch(ids, mask), strict=True):
                summaries[index] = text.strip()
            bar.update(len(batch))
    return summaries


def pad_batch(
    sequences: Sequence[list[int]], pad_id: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Right-pad ``sequences`` to the longest in the batch; returns ids and attention mask."""
    width = max(len(s) for s in sequences)
    ids = [list(s) + [pad_id] * (width - len(s)) for s in sequences]
    mask = [[1] * len(s) + [0] * (width - len(s)) for s in sequences]
    return ids, mask
