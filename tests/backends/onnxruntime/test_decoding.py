"""The numpy decoding helpers: partial top-k selection must equal a full stable sort."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dialogsum.backends.onnxruntime.decoding import _top

scores = arrays(
    np.float32,
    st.tuples(st.integers(1, 4), st.integers(1, 300)),
    # Few distinct values: ties at the k-th place are common, and so are -inf scores.
    elements=st.sampled_from([-np.inf, -3.0, -1.5, 0.0, 0.25, 2.0, 7.5]),
)


@settings(max_examples=200, deadline=2000, derandomize=True)
@given(values=scores, k=st.integers(1, 320))
def test_top_k_equals_a_stable_descending_sort(values: np.ndarray, k: int) -> None:
    expected = np.argsort(-values, axis=-1, kind="stable")[:, :k]
    assert np.array_equal(_top(values, k), expected)


def test_top_k_on_beam_sized_rows() -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal((8, 4 * 32128)).astype(np.float32)
    values[:, 100:200] = values[:, 300:400]  # repeated scores
    expected = np.argsort(-values, axis=-1, kind="stable")[:, :8]
    assert np.array_equal(_top(values, 8), expected)


class PlannedSteps:
    """Decoder steps whose logits are fixed per batch item: what ``greedy`` and
    ``beam_search`` need to be tested without a model. ``steps`` counts decoder calls."""

    def __init__(self, plans: list[np.ndarray], beams: int) -> None:
        self.plans, self.beams, self.items, self.steps = plans, beams, list(range(len(plans))), 0

    def _logits(self) -> np.ndarray:
        return np.stack([self.plans[item] for item in self.items for _ in range(self.beams)])

    def start(self, rows: int) -> tuple[np.ndarray, None]:
        return self._logits(), None

    def step(self, tokens: np.ndarray, cache: None) -> tuple[np.ndarray, None]:
        self.steps += 1
        return self._logits(), cache

    def reorder(self, cache: None, rows: np.ndarray) -> None:
        return cache

    def select(self, cache: None, rows: np.ndarray) -> None:
        self.items = [self.items[row // self.beams] for row in rows[:: self.beams]]
        return cache


# Vocabulary of 6; 1 is end-of-sequence. Item "quick" prefers to end, item "slow" never does.
QUICK = np.array([0.0, 5.0, 1.0, 0.5, 0.2, 0.1], dtype=np.float32)
SLOW = np.array([0.0, -50.0, 3.0, 2.0, 1.0, 0.5], dtype=np.float32)


def _decode(decoder: str, beams: int) -> tuple[list[list[int]], list[tuple[int, list[int], int]]]:
    from dialogsum.backends.onnxruntime.decoding import beam_search, greedy
    from dialogsum.generation import GenerationOptions

    steps = PlannedSteps([SLOW, QUICK, SLOW], beams)
    reported: list[tuple[int, list[int], int]] = []
    options = GenerationOptions(num_beams=beams, max_new_tokens=12)
    run = greedy if decoder == "greedy" else beam_search
    results = run(
        steps, 3, 12, options, 0, 1, 0, lambda row, ids: reported.append((row, ids, steps.steps))
    )
    return results, [*reported, (-1, [], steps.steps)]


def test_a_finished_row_is_reported_before_its_batch_ends() -> None:
    for decoder, beams in (("greedy", 1), ("beam", 4)):
        results, reported = _decode(decoder, beams)
        *early, (_, _, total_steps) = reported
        # The quick item first, while the slow ones went on; every item once.
        assert early[0][0] == 1 and sorted(row for row, _, _ in early) == [0, 1, 2], decoder
        _, ids, at_step = early[0]
        assert ids == results[1] and ids[-1] == 1, decoder
        assert at_step < total_steps, decoder  # reported while the slow items went on
        assert len(results[0]) == len(results[2]) == 12 and 1 not in results[0], decoder


def _reference_candidates(
    logits: np.ndarray,
    history: np.ndarray,
    generated: int,
    options: object,
    eos: int,
    running: np.ndarray,
    keep: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Process every score, then stably sort all of beams x vocabulary: the plain way."""
    from dialogsum.backends.onnxruntime.decoding import _log_softmax, process_scores

    items, beams = running.shape
    vocab = logits.shape[-1]
    scores = process_scores(_log_softmax(logits), history, generated, options, eos)  # type: ignore[arg-type]
    flat = (scores.reshape(items, beams, vocab) + running[:, :, None]).reshape(items, -1)
    order = np.argsort(-flat, axis=-1, kind="stable")[:, :keep]
    return np.take_along_axis(flat, order, axis=1), order // vocab, order % vocab


@settings(max_examples=150, deadline=4000, derandomize=True)
@given(
    seed=st.integers(0, 2**16),
    beams=st.integers(1, 4),
    vocab=st.integers(8, 40),
    length=st.integers(1, 9),
    ngram=st.sampled_from([0, 2, 3]),
    min_new=st.integers(0, 4),
    penalty=st.sampled_from([1.0, 1.3]),
    room=st.integers(1, 48),
)
def test_best_candidates_equal_a_stable_sort_of_every_score(
    seed: int,
    beams: int,
    vocab: int,
    length: int,
    ngram: int,
    min_new: int,
    penalty: float,
    room: int,
) -> None:
    from dialogsum.backends.onnxruntime.decoding import NEG, best_candidates, top_log_probs
    from dialogsum.generation import GenerationOptions

    rng = np.random.default_rng(seed)
    items = 3
    # Few distinct logits and a small alphabet in the history: ties and repeated n-grams.
    logits = rng.choice([-2.0, 0.0, 0.5, 3.0], size=(items * beams, vocab)).astype(np.float32)
    history = rng.integers(0, 4, size=(items * beams, length))
    running = rng.choice([0.0, -1.5, -4.0], size=(items, beams)).astype(np.float32)
    running[0, 1:] = NEG  # the first step's unused beams
    options = GenerationOptions(
        num_beams=beams,
        no_repeat_ngram_size=ngram,
        min_new_tokens=min_new,
        repetition_penalty=penalty,
    )
    keep = 2 * beams
    got = best_candidates(top_log_probs, logits, history, length - 1, options, 1, running, keep)
    expected = _reference_candidates(logits, history, length - 1, options, 1, running, keep)
    for name, value, want in zip(("scores", "beams", "tokens"), got, expected, strict=True):
        assert np.array_equal(value, want), name
    # The step's graph returns each row's best few (``ready``): the same candidates whether
    # they are enough or ``top`` is asked again, and ``ready`` is never changed.
    asked: list[int] = []

    def counted(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        asked.append(k)
        return top_log_probs(values, k)

    ready = top_log_probs(logits, min(room, vocab))
    before = (ready[0].copy(), ready[1].copy())
    got = best_candidates(
        counted, logits, history, length - 1, options, 1, running, keep, ready=ready
    )
    for name, value, want in zip(("scores", "beams", "tokens"), got, expected, strict=True):
        assert np.array_equal(value, want), name
    assert np.array_equal(ready[0], before[0]) and np.array_equal(ready[1], before[1])
    if penalty == 1.0 and room >= vocab:
        assert not asked  # every token is ready: top is never needed
    if asked and penalty == 1.0:
        assert min(asked[0], vocab) > room  # asked only when ready held too few


def test_top_log_probs_in_onnxruntime_match_numpy_and_ignore_the_batch() -> None:
    import onnxruntime as ort

    from dialogsum.backends.onnxruntime.decoding import top_log_probs
    from dialogsum.backends.onnxruntime.top_log_probs import TopLogProbsSession

    rng = np.random.default_rng(1)
    logits = rng.standard_normal((12, 8000)).astype(np.float32) * 4
    logits[:, 4000:4100] = logits[:, 100:200]  # ties: the lower token must come first
    top = TopLogProbsSession(ort.SessionOptions())
    values, tokens = top(logits, 10)
    want_values, want_tokens = top_log_probs(logits, 10)
    assert np.array_equal(tokens, want_tokens)
    assert np.allclose(values, want_values, atol=1e-5)
    for row in (0, 7, 11):  # a row alone gives exactly what it gives in a batch
        alone_values, alone_tokens = top(logits[row : row + 1], 10)
        assert np.array_equal(alone_values[0], values[row])
        assert np.array_equal(alone_tokens[0], tokens[row])
    # k beyond the vocabulary is cut to it.
    assert top(logits[:2, :5], 10)[1].shape == (2, 5)


def test_the_shipped_top_graph_is_the_one_build_top_model_writes() -> None:
    import pytest

    pytest.importorskip("onnx")
    from dialogsum.backends.onnxruntime.top_log_probs import TOP_MODEL, build_top_model

    assert TOP_MODEL.read_bytes() == build_top_model()


def _banned_by_hand(history: np.ndarray, size: int) -> set[tuple[int, int]]:
    """transformers' rule, row by row: every earlier n-gram that starts with the row's last
    n-1 tokens bans its last token (leading -1s are no tokens)."""
    banned = set()
    for row, tokens in enumerate(history.tolist()):
        tokens = [t for t in tokens if t >= 0]
        if len(tokens) < size:
            continue
        last = tuple(tokens[len(tokens) - size + 1 :])
        for start in range(len(tokens) - size + 1):
            if tuple(tokens[start : start + size - 1]) == last:
                banned.add((row, tokens[start + size - 1]))
    return banned


@settings(max_examples=300, deadline=2000, derandomize=True)
@given(
    rows=st.lists(st.lists(st.integers(2, 5), min_size=1, max_size=12), min_size=1, max_size=5),
    size=st.integers(1, 4),
    minimum=st.integers(0, 3),
    generated=st.integers(0, 4),
)
def test_banned_tokens_are_transformers_rules(
    rows: list[list[int]], size: int, minimum: int, generated: int
) -> None:
    from dialogsum.backends.onnxruntime.decoding import banned_tokens
    from dialogsum.plugin_api import GenerationOptions

    width = max(len(row) for row in rows)
    history = np.array([[-1] * (width - len(row)) + row for row in rows], dtype=np.int64)
    options = GenerationOptions(
        no_repeat_ngram_size=size, min_new_tokens=minimum, max_new_tokens=8, num_beams=1
    )
    banned_rows, banned = banned_tokens(history, generated, options, eos=1)
    assert banned_rows.dtype == np.int64 and banned.dtype == np.int64
    expected = _banned_by_hand(history, size)
    if generated < minimum:
        expected |= {(row, 1) for row in range(len(rows))}
    assert set(zip(banned_rows.tolist(), banned.tolist(), strict=True)) == expected
