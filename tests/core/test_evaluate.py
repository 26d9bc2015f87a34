"""ROUGE as DialogSum reports it: stemmed, mean over references, percentages."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from dialogsum.evaluate import rouge


def test_identical_prediction_scores_100() -> None:
    scores = rouge(["The cat sat on the mat."], [["The cat sat on the mat."]])
    assert all(value == pytest.approx(100.0) for value in scores.values())


def test_mean_over_references_not_max() -> None:
    prediction = "Tom buys a red car."
    refs = ["Tom buys a red car.", "Mary sells her old house."]
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    expected = 100 * sum(scorer.score(r, prediction)["rouge1"].fmeasure for r in refs) / 2
    assert rouge([prediction], [refs])["rouge1"] == pytest.approx(expected)
    assert rouge([prediction], [refs])["rouge1"] < 100


def test_stemming_is_on() -> None:
    assert rouge(["She was running."], [["She runs."]])["rouge1"] > 60


def test_rouge_lsum_splits_sentences() -> None:
    one_line = rouge(["c d. a b."], [["a b. c d."]])
    assert one_line["rougeLsum"] > one_line["rougeL"]


def test_mismatched_lengths_rejected() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 reference lists"):
        rouge(["a", "b"], [["a"]])
