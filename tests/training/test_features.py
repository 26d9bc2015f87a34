"""Tokenization for training: truncation counted and reported, label padding masked, batching."""

from __future__ import annotations

import logging

import pytest
from transformers import AutoTokenizer, DataCollatorForSeq2Seq

from dialogsum.data import DataOptions, Example
from dialogsum.generation import length_sorted_batches
from dialogsum.training.features import IGNORE_INDEX, tokenize_examples


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):  # type: ignore[no-untyped-def]
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_truncation_is_counted_and_logged(tokenizer, caplog) -> None:  # type: ignore[no-untyped-def]
    examples = [
        Example("#Person1#: hello there " * 40, ("short",)),
        Example("#Person1#: hi", ("a " * 50,)),
    ]
    options = DataOptions(max_source_length=32, max_target_length=8)
    with caplog.at_level(logging.WARNING, logger="dialogsum"):
        features, report = tokenize_examples(examples, tokenizer, options)
    assert (report.dialogues_truncated, report.summaries_truncated) == (1, 1)
    assert "1 of 2 prompted dialogues" in caplog.text and "max_target_length=8" in caplog.text
    assert len(features[0]["input_ids"]) == 32
    assert features[0]["input_ids"][-1] == tokenizer.eos_token_id  # eos survives the cut
    assert len(features[1]["labels"]) == 8


def test_one_training_pair_per_reference(tokenizer) -> None:  # type: ignore[no-untyped-def]
    features, report = tokenize_examples(
        [Example("d", ("r1", "r2", "r3"))], tokenizer, DataOptions()
    )
    assert len(features) == 3 and report.examples == 3 and not report.any


def test_collator_pads_per_batch_and_masks_labels(tokenizer) -> None:  # type: ignore[no-untyped-def]
    examples = [
        Example("#Person1#: Hi.", ("Hello there, how are you",)),
        Example("#Person1#: A much longer hello to you.", ("Hi",)),
    ]
    features, _ = tokenize_examples(examples, tokenizer, DataOptions())
    batch = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, padding="longest")(
        features
    )
    longest = max(len(f["input_ids"]) for f in features)
    assert batch["input_ids"].shape[1] == longest < 512  # per batch, never to a fixed 512
    assert (batch["labels"][1] == IGNORE_INDEX).sum() > 0
    assert tokenizer.pad_token_id not in batch["labels"][1].tolist()


def test_length_sorted_batches() -> None:
    assert length_sorted_batches([3, 9, 1, 7, 5], 2) == [[1, 3], [4, 0], [2]]
