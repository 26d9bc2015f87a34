"""Greedy and beam-search decoding in numpy, over any encoder-decoder step functions.

These mirror transformers' ``generate`` for the options dialogsum exposes (greedy, beam search
with length penalty and early stopping, min_new_tokens, no_repeat_ngram_size,
repetition_penalty), so an ONNX export decodes as its PyTorch original did. Only numpy is used:
they run where torch is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dialogsum.plugin_api import ConfigError, GenerationOptions, cut_at_eos

#: Called with a batch row and its final token ids (cut after eos) as soon as they are final.
Finished = Callable[[int, list[int]], None]
#: Called after each greedy step with an unfinished row and its token ids so far.
Progress = Callable[[int, list[int]], None]
#: ``top(logits, k)``: each row's ``k`` best log-probabilities (log-softmax of ``logits``) and
#: their tokens, best first, ties to the lower token; a ``k`` past the vocabulary gives all of
#: it. See :func:`top_log_probs`.
TopLogProbs = Callable[[Any, int], tuple[Any, Any]]

#: transformers' stand-in for "impossible" in beam scores.
NEG = -1.0e9
#: Rows up to this wide are fully sorted by :func:`_top`.
SMALL_WIDTH = 64


class Steps(Protocol):
    """The model calls decoding needs; arrays are numpy, rows are batch (x beams).

    Steps may also have ``top(logits, k)`` (:data:`TopLogProbs`), for beam search to find each
    row's best log-probabilities in the model's runtime; :func:`top_log_probs` serves otherwise.
    """

    def start(self, rows: int) -> tuple[Any, Any]:
        """First decoder step for ``rows`` rows: (last-position logits, cache)."""
        ...

    def step(self, tokens: Any, cache: Any) -> tuple[Any, Any]:
        """Next decoder step given each row's newest token: (logits, cache)."""
        ...

    def reorder(self, cache: Any, rows: Any) -> Any:
        """The cache with its rows picked (and repeated) by index."""
        ...

    def select(self, cache: Any, rows: Any) -> Any:
        """Like :meth:`reorder`, where ``rows`` also drops whole items (all their beams):
        every per-row state, cross-attention included, keeps only ``rows``."""
        ...


def process_scores(
    scores: Any, history: Any, generated: Any, options: GenerationOptions, eos: int
) -> Any:
    """Apply transformers' logits processors for ``options`` to ``scores`` (rows x vocab).

    ``history`` holds each row's decoder tokens so far, start token included (rows x length),
    right-aligned: a row shorter than the others starts with -1s, which match nothing;
    ``generated`` is how many tokens have been generated so far (one number, or one per row).
    float32 ``scores`` are changed in place: callers pass arrays of their own, and a copy per
    step is not free.
    """
    import numpy as np

    scores = scores.astype(np.float32, copy=False)
    if options.repetition_penalty != 1.0:
        rows, columns = np.nonzero(history >= 0)
        seen_tokens = history[rows, columns]
        seen = scores[rows, seen_tokens]
        scores[rows, seen_tokens] = np.where(
            seen < 0, seen * options.repetition_penalty, seen / options.repetition_penalty
        )
    banned_rows, banned = banned_tokens(history, generated, options, eos)
    scores[banned_rows, banned] = -np.inf
    return scores


def banned_tokens(
    history: Any, generated: Any, options: GenerationOptions, eos: int
) -> tuple[Any, Any]:
    """The (row, token) pairs the processors forbid at this step, as two index arrays.

    A repeated n-gram's last token (``no_repeat_ngram_size``), and end-of-sequence in every
    row while fewer than ``min_new_tokens`` are generated. Pairs may repeat. ``history`` and
    ``generated`` are as :func:`process_scores` takes them: a row's leading -1s (a shorter
    row) never match a real n-gram, since its real tokens only ever end the history.
    """
    import numpy as np

    rows = []
    tokens = []
    size = options.no_repeat_ngram_size
    length = history.shape[1]
    if size and length >= size:
        # Every n-gram of the history whose first n-1 tokens equal the row's last n-1 bans its
        # last token; all rows and positions at once, one comparison per token of the n-gram
        # (a loop per row cost more than the model for batched beam search on a small model).
        starts = length - size + 1  # the n-grams' first positions
        matches = np.ones((history.shape[0], starts), dtype=bool)
        for offset in range(size - 1):
            matches &= history[:, offset : offset + starts] == history[:, starts + offset, None]
        if size == 1:  # every token is a 1-gram, but a shorter row's leading -1s are none
            matches &= history >= 0
        match_rows, match_positions = np.nonzero(matches)
        rows.append(match_rows)
        tokens.append(history[match_rows, match_positions + size - 1])
    if options.min_new_tokens:
        early = np.flatnonzero(
            np.broadcast_to(generated, (history.shape[0],)) < options.min_new_tokens
        )
        rows.append(early)
        tokens.append(np.full(len(early), eos, dtype=np.int64))
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(rows) == 1:
        return rows[0], tokens[0].astype(np.int64, copy=False)
    return np.concatenate(rows), np.concatenate(tokens).astype(np.int64, copy=False)


def right_aligned(tokens: Any, lengths: Any) -> Any:
    """Each row's first ``lengths[row]`` tokens (rows x width, left-aligned), right-aligned to
    the longest, shorter rows led by -1s: the history the processors read."""
    import numpy as np

    longest = int(lengths.max())
    if (lengths == longest).all():
        return tokens[:, :longest]
    columns = np.arange(longest)[None, :] - (longest - lengths[:, None])
    picked = np.take_along_axis(tokens, np.maximum(columns, 0), axis=1)
    return np.where(columns >= 0, picked, -1)


def top_log_probs(logits: Any, k: int) -> tuple[Any, Any]:
    """Each row's ``k`` best log-probabilities and their tokens, best first (ties: lower token).

    The numpy reference of what a backend's ``Steps.top`` computes, and the fallback for
    steps that have none.
    """
    import numpy as np

    scores = _log_softmax(logits)
    tokens = _top(scores, k)  # k past the vocabulary: all of it
    return np.take_along_axis(scores, tokens, axis=-1), tokens


def greedy(
    steps: Steps,
    rows: int,
    limit: int,
    options: GenerationOptions,
    start: int,
    eos: int,
    pad: int,
    on_finished: Finished | None = None,
    on_progress: Progress | None = None,
) -> list[list[int]]:
    """Greedy decoding: each row's tokens, cut after its end-of-sequence token.

    A row that emits its end-of-sequence token is reported to ``on_finished`` at once; every
    other row to ``on_progress`` after each step, with its tokens so far (for streaming)."""
    search = GreedySearch(rows, limit, options, start, eos)
    return run_search(steps, search, on_finished, on_progress)


def beam_search(
    steps: Steps,
    batch: int,
    limit: int,
    options: GenerationOptions,
    start: int,
    eos: int,
    pad: int,
    on_finished: Finished | None = None,
) -> list[list[int]]:
    """Beam search as transformers (4.5x) runs it; the best sequence per batch item.

    Items whose search is over are reported to ``on_finished`` when they leave the batch."""
    top: TopLogProbs = getattr(steps, "top", top_log_probs)
    search = BeamSearch(batch, limit, options, start, eos, pad, top)
    return run_search(steps, search, on_finished)


def run_search(
    steps: Steps,
    search: Search,
    on_finished: Finished | None = None,
    on_progress: Progress | None = None,
) -> list[list[int]]:
    """Drive ``search`` over ``steps`` until every item is final; each item's tokens."""
    results: dict[int, list[int]] = {}
    logits, cache = steps.start(search.rows)
    while True:
        advance = search.advance(logits)
        for item, tokens in advance.finished:
            results[item] = tokens
            if on_finished is not None:
                on_finished(item, tokens)
        if not len(advance.items):
            break
        if on_progress is not None:
            for item, tokens in search.partial():
                on_progress(item, tokens)
        if advance.dropped:
            cache = steps.select(cache, advance.rows)
        else:
            cache = steps.reorder(cache, advance.rows)
        logits, cache = steps.step(advance.tokens, cache)
    return [results[item] for item in range(len(results))]


@dataclass(frozen=True)
class Advance:
    """What one step of a search decided, for the rows of its next step."""

    #: The search's rows of the next step, as indices into this step's rows (beams of an item
    #: together, items in order): the caches follow them.
    rows: Any
    #: Each of those rows' next input token.
    tokens: Any
    #: The items still searching (their ids), in order.
    items: Any
    #: Whether any item left at this step (its rows, cross-attention included, go).
    dropped: bool
    #: Items final at this step: (id, tokens cut after end-of-sequence).
    finished: list[tuple[int, list[int]]]


class Search(Protocol):
    """A search over a fixed set of items, one step at a time: greedy or beam search.

    Items are independent: an item's tokens do not depend on the others searched with it, nor
    on when it leaves. That is what lets many searches share the model's steps.
    """

    #: Rows per item (1 for greedy).
    beams: int

    @property
    def rows(self) -> int:
        """The rows of the step whose logits :meth:`advance` takes next."""
        ...

    def advance(self, logits: Any, ready: Any = None) -> Advance:
        """Take a step's logits (rows x vocabulary): choose the next tokens.

        ``ready``, where the step's graph computed them: each row's best log-probabilities
        and their tokens (two rows x k arrays, as :data:`TopLogProbs` gives them), which beam
        search uses instead of computing them where they are enough."""
        ...

    def partial(self) -> list[tuple[int, list[int]]]:
        """Each running item's tokens so far, where final (greedy); none for beam search."""
        ...


class GreedySearch:
    """Greedy decoding of ``items`` items up to ``limit`` tokens (see :class:`Search`)."""

    beams = 1

    def __init__(
        self, items: int, limit: int, options: GenerationOptions, start: int, eos: int
    ) -> None:
        import numpy as np

        self.options, self.eos = options, eos
        self.ids = np.arange(items)
        self.limits = np.full(items, limit, dtype=np.int64)
        self.history = np.full((items, limit + 1), start, dtype=np.int64)
        self.lengths = np.ones(items, dtype=np.int64)  # the start token

    @property
    def rows(self) -> int:
        return len(self.ids)

    def absorb(self, other: GreedySearch, offset: int) -> None:
        """Take ``other``'s items (ids shifted by ``offset``) after this search's own."""
        self.ids, self.limits, self.lengths, self.history = _joined(
            (self.ids, other.ids + offset),
            (self.limits, other.limits),
            (self.lengths, other.lengths),
            history=(self.history, other.history),
        )

    def advance(self, logits: Any, ready: Any = None) -> Advance:
        import numpy as np

        generated = self.lengths - 1
        history = right_aligned(self.history, self.lengths)
        scores = process_scores(logits, history, generated, self.options, self.eos)
        chosen = scores.argmax(axis=-1)
        rows = np.arange(len(self.ids))
        self.history[rows, self.lengths] = chosen
        self.lengths += 1
        ended = (chosen == self.eos) | (generated + 1 >= self.limits)
        finished = [
            (int(self.ids[row]), cut_at_eos(self.history[row, 1 : self.lengths[row]].tolist(),
                                            self.eos))
            for row in np.flatnonzero(ended)
        ]  # fmt: skip
        kept = np.flatnonzero(~ended)
        if len(kept) < len(rows):
            self.ids, self.history = self.ids[kept], self.history[kept]
            self.limits, self.lengths = self.limits[kept], self.lengths[kept]
        return Advance(kept, chosen[kept], self.ids, bool(ended.any()), finished)

    def partial(self) -> list[tuple[int, list[int]]]:
        return [
            (int(item), row[1:length].tolist())
            for item, row, length in zip(self.ids, self.history, self.lengths, strict=True)
        ]


class BeamSearch:
    """Beam search as transformers (4.5x) runs it, over ``items`` items (see :class:`Search`).

    Items may be at different steps (a search absorbs another's items, see :meth:`absorb`):
    lengths, limits and length penalties are per item, and the processors read each row's own
    history, right-aligned. An item's result does not depend on the others."""

    def __init__(
        self,
        items: int,
        limit: int,
        options: GenerationOptions,
        start: int,
        eos: int,
        pad: int,
        top: TopLogProbs = top_log_probs,
    ) -> None:
        import numpy as np

        beams = self.beams = options.num_beams
        self.options, self.eos, self.top = options, eos, top
        self.keep = 2 * beams  # max(2, 1 + number of eos tokens) * beams
        self.top_mask = np.arange(self.keep) < beams
        self.max_length = np.full(items, 1 + limit, dtype=np.int64)
        self.running = np.full((items, beams, 1 + limit), pad, dtype=np.int64)
        self.running[:, :, 0] = start
        self.sequences = self.running.copy()
        self.running_scores = np.zeros((items, beams), dtype=np.float32)
        self.running_scores[:, 1:] = NEG
        self.beam_scores = np.full((items, beams), NEG, dtype=np.float32)
        self.finished = np.zeros((items, beams), dtype=bool)
        self.improvable = np.ones((items, 1), dtype=bool)
        self.cur_len = np.ones(items, dtype=np.int64)
        self.ids = np.arange(items)

    @property
    def rows(self) -> int:
        return len(self.ids) * self.beams

    def partial(self) -> list[tuple[int, list[int]]]:
        return []  # a beam may still be overtaken: nothing is final before the end

    def absorb(self, other: BeamSearch, offset: int) -> None:
        """Take ``other``'s items (ids shifted by ``offset``) after this search's own."""
        (
            self.ids,
            self.max_length,
            self.cur_len,
            self.running_scores,
            self.beam_scores,
            self.finished,
            self.improvable,
            self.running,
            self.sequences,
        ) = _joined(
            (self.ids, other.ids + offset),
            (self.max_length, other.max_length),
            (self.cur_len, other.cur_len),
            (self.running_scores, other.running_scores),
            (self.beam_scores, other.beam_scores),
            (self.finished, other.finished),
            (self.improvable, other.improvable),
            history=(self.running, other.running),
            sequences=(self.sequences, other.sequences),
        )

    def advance(self, logits: Any, ready: Any = None) -> Advance:
        import numpy as np

        beams, cur_len, options = self.beams, self.cur_len, self.options
        items = len(self.ids)
        # Picks along the beam axis index by (item, beam) pairs: take_along_axis builds the
        # same index arrays at every call, a measurable share of a small model's step.
        item_rows = np.arange(items)[:, None]
        flat_lengths = np.repeat(cur_len, beams)
        flat_history = right_aligned(self.running.reshape(items * beams, -1), flat_lengths)
        candidate_scores, source_beam, tokens = best_candidates(
            self.top,
            logits,
            flat_history,
            flat_lengths - 1,
            options,
            self.eos,
            self.running_scores,
            self.keep,
            ready,
        )
        candidate_seqs = self.running[item_rows, source_beam]  # a copy (fancy indexing)
        candidate_seqs[item_rows, np.arange(self.keep)[None, :], cur_len[:, None]] = tokens
        hits = (tokens == self.eos) | (cur_len + 1 >= self.max_length)[:, None]

        alive_scores = candidate_scores + hits.astype(np.float32) * NEG
        chosen = _top(alive_scores, beams)
        running = candidate_seqs[item_rows, chosen]
        running_scores = alive_scores[item_rows, chosen]
        parent = source_beam[item_rows, chosen]

        just_finished = hits & self.top_mask[None, :]
        # Each item's penalty in float64, then float32: what float32 scores divided by a
        # Python float give.
        penalty = ((cur_len + 1 - 1).astype(np.float64) ** options.length_penalty).astype(
            np.float32
        )
        final_scores = candidate_scores / penalty[:, None]
        if options.early_stopping is True:
            final_scores = final_scores + (self.finished.all(axis=1, keepdims=True) * NEG)
        final_scores = final_scores + (~self.improvable) * NEG + (~just_finished) * NEG
        merged_scores = np.concatenate([self.beam_scores, final_scores.astype(np.float32)], 1)
        best = _top(merged_scores, beams)
        sequences = np.concatenate([self.sequences, candidate_seqs], axis=1)[item_rows, best]
        beam_scores = merged_scores[item_rows, best]
        finished = np.concatenate([self.finished, just_finished], axis=1)[item_rows, best]

        cur_len = cur_len + 1
        penalty = ((cur_len - 1).astype(np.float64) ** options.length_penalty).astype(np.float32)
        best_possible = running_scores[:, :1] / penalty[:, None]
        worst_finished = np.where(finished, beam_scores.min(axis=1, keepdims=True), NEG)
        improvable = self.improvable & (best_possible > worst_finished).any(axis=-1, keepdims=True)
        # An item is final when it cannot improve, when (early_stopping=True) all its beams
        # are finished, or when every candidate ended (its length limit).
        done = ~improvable[:, 0] | hits.all(axis=1)
        if options.early_stopping is True:
            done |= finished.all(axis=1)
        final = [
            (
                int(self.ids[index]),
                cut_at_eos(sequences[index, 0, 1 : self.max_length[index]].tolist(), self.eos),
            )
            for index in np.flatnonzero(done)
        ]
        if final:
            alive = np.flatnonzero(~done)
            rows = (alive[:, None] * beams + parent[alive]).reshape(-1)
            self.ids, self.max_length = self.ids[alive], self.max_length[alive]
            running, running_scores = running[alive], running_scores[alive]
            sequences, beam_scores = sequences[alive], beam_scores[alive]
            finished, improvable = finished[alive], improvable[alive]
            cur_len = cur_len[alive]
        else:  # every item goes on: no copies to make
            rows = (item_rows * beams + parent).reshape(-1)
        self.running, self.running_scores = running, running_scores
        self.sequences, self.beam_scores = sequences, beam_scores
        self.finished, self.improvable = finished, improvable
        self.cur_len = cur_len
        newest = running[np.arange(len(cur_len))[:, None], np.arange(beams), cur_len[:, None] - 1]
        return Advance(rows, newest.reshape(-1), self.ids, bool(final), final)


def _joined(*pairs: tuple[Any, Any], **wide: tuple[Any, Any]) -> list[Any]:
    """Each pair's arrays one after the other along the first axis; the ``wide`` ones (token
    histories) first padded at the end of their last axis to the wider of the two."""
    import numpy as np

    joined = [np.concatenate(pair) for pair in pairs]
    for first, second in wide.values():
        width = max(first.shape[-1], second.shape[-1])
        padded = [
            np.pad(part, [(0, 0)] * (part.ndim - 1) + [(0, width - part.shape[-1])])
            for part in (first, second)
        ]
        joined.append(np.concatenate(padded))
    return joined


def _log_softmax(logits: Any) -> Any:
    import numpy as np

    shifted = logits.astype(np.float32) - logits.max(axis=-1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted


def _top(values: Any, k: int) -> Any:
    """Indices of each row's ``k`` largest values, largest first; ties go to the lower index.

    That is exactly a stable descending sort cut to ``k`` (what transformers' ``topk`` gives in
    practice), without sorting the whole row: a partition finds the ``k``-th largest value, and
    only the values at or above it (``k``, or a few more on ties) are sorted. Beam search asks
    for the top ``2 * beams`` of ``beams * vocabulary`` scores per item at every step, where a
    full sort cost more than the model itself. Narrow rows (the candidates' own ranking) are
    sorted whole: cheaper than a Python loop over the rows.
    """
    import numpy as np

    width = values.shape[-1]
    if width <= SMALL_WIDTH or k >= width:  # a full sort of a few values costs least
        return np.argsort(-values, axis=-1, kind="stable")[:, :k]
    kth = -np.partition(-values, k - 1, axis=-1)[:, k - 1 : k]  # each row's k-th largest
    rows = []
    for row, threshold in zip(values, kth[:, 0], strict=True):
        candidates = np.flatnonzero(row >= threshold)
        order = np.argsort(-row[candidates], kind="stable")  # candidates are in index order
        rows.append(candidates[order[:k]])
    return np.stack(rows)


def best_candidates(
    top: TopLogProbs,
    logits: Any,
    history: Any,
    generated: Any,
    options: GenerationOptions,
    eos: int,
    running_scores: Any,
    keep: int,
    ready: Any = None,
) -> tuple[Any, Any, Any]:
    """Each item's best ``keep`` continuations: their scores, source beams and tokens.

    A continuation's score is its beam's running score plus the token's processed
    log-probability; the best come first, ties to the lower index in ``beams x vocabulary``:
    what a stable sort of all ``items x (beams x vocabulary)`` scores gives, from each row's
    best few only.

    The processors of beam search only forbid tokens, so a row's best allowed ``keep`` are
    among its best ``keep`` plus as many as it has forbidden: ``top`` finds those (in the
    model's own runtime where it can) and the forbidden ones drop to -inf. The whole
    vocabulary is processed and sorted only with a repetition penalty, which can lift a seen
    token into the best. ``ready`` (see :meth:`Search.advance`) serves instead of ``top``
    where it holds as many as are needed: the first ``k`` of a sorted top-k are the top ``k``.
    """
    import numpy as np

    items, beams = running_scores.shape
    if options.repetition_penalty != 1.0:
        processed = process_scores(_log_softmax(logits), history, generated, options, eos)
        words = _top(processed, keep)
        values = np.take_along_axis(processed, words, axis=-1)
    else:
        rows, banned = banned_tokens(history, generated, options, eos)
        vocab = logits.shape[-1]
        extra = 0
        if len(rows):
            extra = int(np.bincount(np.unique(rows * vocab + banned) // vocab).max())
        needed = min(keep + extra, vocab)
        if ready is not None and ready[0].shape[-1] >= needed:
            values, words = ready[0][:, :needed].copy(), ready[1][:, :needed]
        else:
            values, words = top(logits, keep + extra)
        if extra:
            hit_pairs, hit_columns = np.nonzero(words[rows] == banned[:, None])
            values[rows[hit_pairs], hit_columns] = -np.inf
    width = values.shape[-1]
    scores = (values.reshape(items, beams, width) + running_scores[:, :, None]).reshape(items, -1)
    words = words.reshape(items, beams * width)
    flat_ids = (np.arange(beams * width) // width) * logits.shape[-1] + words
    order = np.lexsort((flat_ids, -scores), axis=-1)[:, :keep]
    # Fancy indexing by (item, column): take_along_axis builds the same index arrays per
    # call, a measurable share of a step for a small model.
    item_rows = np.arange(items)[:, None]
    return scores[item_rows, order], order // width, words[item_rows, order]


def check_supported(options: GenerationOptions) -> None:
    """Refuse options this decoding cannot honour (sampling)."""
    if options.do_sample:
        raise ConfigError(
            "The onnxruntime backend decodes deterministically (greedy or beam search); "
            "do_sample is not supported. Use backend='torch' for sampling."
        )
