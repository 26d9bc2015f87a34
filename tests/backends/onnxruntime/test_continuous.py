"""Continuous batching over an ONNX export: rows join a running decode, each answer as alone.

The decoder is driven step by step here, rows added between steps, so that rows of different
ages, lengths, limits, beam counts and adapters share steps; every summary must equal what
``summarize()`` gives that dialogue alone with the same options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dialogsum import Summarizer
from dialogsum.adapter_serving import UnknownAdapterError
from dialogsum.continuous import ContinuousDecoder, ContinuousRow, ContinuousSettings
from dialogsum.data import Example
from dialogsum.errors import ConfigError

pytest.importorskip("onnxruntime")
pytest.importorskip("optimum.exporters.onnx")


@pytest.fixture(scope="module")
def served(multi_adapter_export: Path) -> Summarizer:
    return Summarizer.from_pretrained(multi_adapter_export, backend_options={"progress": False})


class Collected:
    """Each row's answer (or error), and the rows in flight seen at every step."""

    def __init__(self) -> None:
        self.summaries: dict[int, str] = {}
        self.errors: dict[int, Exception] = {}
        self.partials: dict[int, list[str]] = {}

    def row(self, index: int, text: str, options: Any, partial: bool = False) -> ContinuousRow:
        def on_partial(value: str) -> None:
            self.partials.setdefault(index, []).append(value)

        return ContinuousRow(
            text,
            options,
            lambda value: self.summaries.__setitem__(index, value),
            lambda exc: self.errors.__setitem__(index, exc),
            on_partial if partial else None,
        )


def _drain(decoder: ContinuousDecoder, plan: dict[int, list[ContinuousRow]]) -> list[int]:
    """Step until idle, adding ``plan[step]`` before each step; the rows in flight per step."""
    in_flight = []
    step = 0
    while True:
        if step in plan:
            decoder.add(plan.pop(step))
        busy = decoder.step()
        in_flight.append(decoder.in_flight)
        step += 1
        if not busy and not plan:
            return in_flight


def test_rows_joining_at_different_steps_get_their_alone_answers(
    served: Summarizer, few_examples: list[Example]
) -> None:
    texts = [e.dialogue for e in few_examples]
    adapters = [None, "support", "sales", "prompted"]
    requests = []  # (text, options): beams, limits and adapters mixed
    for index, text in enumerate(texts * 2):
        requests.append(
            (
                text,
                served.generation_options(
                    num_beams=(1, 4)[index % 2],
                    max_new_tokens=(6, 12, 20)[index % 3],
                    no_repeat_ngram_size=3,
                    adapter=adapters[index % 4],
                ),
            )
        )
    decoder = served.continuous_decoder(ContinuousSettings(max_rows=5))
    assert decoder is not None
    collected = Collected()
    plan: dict[int, list[ContinuousRow]] = {}
    for index, (text, options) in enumerate(requests):
        plan.setdefault((index * 3) // 2, []).append(collected.row(index, text, options))
    in_flight = _drain(decoder, plan)
    assert not collected.errors
    assert max(in_flight) <= 5  # the settings' bound
    for index, (text, options) in enumerate(requests):
        alone = served.summarize([text], options=options)
        assert collected.summaries[index] == alone[0], index


@pytest.mark.parametrize("beams", [1, 4])
def test_a_row_joining_takes_a_finished_rows_place_and_answers_as_alone(
    served: Summarizer, few_examples: list[Example], beams: int, monkeypatch: Any
) -> None:
    # Two rows in flight at most: the third waits until the short one ends, then is written
    # over its rows (stale keys past its position, masked) instead of after them; the fourth
    # joins the emptied lane, over rows that decoded before.
    from dialogsum.backends.onnxruntime.row_buffers import RowBuffers

    appended: list[int] = []
    append = RowBuffers.append

    def counted(self: RowBuffers, values: dict[str, Any]) -> None:
        appended.append(len(next(iter(values.values()))))
        append(self, values)

    monkeypatch.setattr(RowBuffers, "append", counted)
    decoder = served.continuous_decoder(ContinuousSettings(max_rows=2))
    assert decoder is not None
    texts = [e.dialogue for e in few_examples]
    short = served.generation_options(num_beams=beams, max_new_tokens=3)
    long = served.generation_options(num_beams=beams, max_new_tokens=16, min_new_tokens=16)
    requests = [(texts[0], long), (texts[1], short), (texts[2], short), (texts[3], short)]
    collected = Collected()
    rows = [collected.row(i, text, options) for i, (text, options) in enumerate(requests)]
    _drain(decoder, {0: rows[:3]})
    _drain(decoder, {0: [rows[3]]})
    # The first two rows (other options: two joins) append their self- and cross-attention
    # caches and encoder mask; the next two write over finished rows.
    assert appended == [beams, 1, 1] * 2
    assert not collected.errors
    for index, (text, options) in enumerate(requests):
        assert collected.summaries[index] == served.summarize([text], options=options)[0]


def test_under_a_long_queue_rows_join_in_groups_not_one_by_one(
    served: Summarizer, few_examples: list[Example], monkeypatch: Any
) -> None:
    # Twelve rows at once, four in flight at most: the queue stays long while rows finish one
    # at a time. Each join runs the encoder and a first step, so a finished row's place waits
    # until half as many rows as are in flight can join, instead of being taken by one.
    from dialogsum.backends.onnxruntime.continuous import OnnxContinuous

    admitted: list[int] = []
    admit = OnnxContinuous._admit

    def counted(self: OnnxContinuous) -> None:
        before = self._rows_in_flight
        admit(self)
        if self._rows_in_flight > before:
            admitted.append(self._rows_in_flight - before)

    monkeypatch.setattr(OnnxContinuous, "_admit", counted)
    settings = ContinuousSettings(max_rows=4, join_ratio=0.5, max_waiting_steps=100)
    decoder = served.continuous_decoder(settings)
    assert decoder is not None
    texts = [e.dialogue for e in few_examples]
    requests = [
        (
            texts[index % len(texts)],
            served.generation_options(num_beams=1, max_new_tokens=limit, min_new_tokens=limit),
        )
        for index, limit in enumerate([3, 5, 7, 9] * 3)
    ]
    collected = Collected()
    _drain(decoder, {0: [collected.row(i, t, o) for i, (t, o) in enumerate(requests)]})
    assert sum(admitted) == len(requests)
    assert admitted[0] == 4
    assert all(count >= 2 for count in admitted[1:-1]), admitted
    assert not collected.errors
    for index, (text, options) in enumerate(requests):
        assert collected.summaries[index] == served.summarize([text], options=options)[0]


def test_greedy_rows_report_the_text_so_far(
    served: Summarizer, few_examples: list[Example]
) -> None:
    decoder = served.continuous_decoder()
    assert decoder is not None
    collected = Collected()
    options = served.generation_options(num_beams=1, max_new_tokens=8)
    _drain(decoder, {0: [collected.row(0, few_examples[0].dialogue, options, partial=True)]})
    final = collected.summaries[0]
    assert collected.partials[0], "no partial text"
    assert all(final.startswith(text) for text in collected.partials[0])


def test_a_bad_row_hears_why_and_its_neighbours_are_answered(
    served: Summarizer, few_examples: list[Example]
) -> None:
    decoder = served.continuous_decoder()
    assert decoder is not None
    collected = Collected()
    good = served.generation_options(num_beams=1, max_new_tokens=6)
    unknown = good.model_copy(update={"adapter": "nobody"})
    sampled = good.model_copy(update={"do_sample": True})
    text = few_examples[0].dialogue
    rows = [
        collected.row(0, text, good),
        collected.row(1, text, unknown),
        collected.row(2, text, sampled),
    ]
    _drain(decoder, {0: rows})
    assert collected.summaries[0] == served.summarize([text], num_beams=1, max_new_tokens=6)[0]
    assert isinstance(collected.errors[1], UnknownAdapterError)
    assert "nobody" in str(collected.errors[1])
    assert isinstance(collected.errors[2], ConfigError)
    assert decoder.in_flight == 0 and decoder.waiting == 0


def test_an_empty_dialogue_is_refused_when_added(served: Summarizer) -> None:
    from dialogsum.errors import DataError

    decoder = served.continuous_decoder()
    assert decoder is not None
    with pytest.raises(DataError):
        decoder.add([Collected().row(0, "  ", served.generation_options())])


def test_position_buckets_are_t5s(served: Summarizer) -> None:
    torch = pytest.importorskip("torch")
    from transformers.models.t5.modeling_t5 import T5Attention

    from dialogsum.backends.onnxruntime.step_slots import PositionBias

    bias = PositionBias(np.zeros((32, 1), np.float32), 128)
    distance = np.arange(0, 4000)
    expected = T5Attention._relative_position_bucket(
        torch.tensor(-distance), bidirectional=False, num_buckets=32, max_distance=128
    ).numpy()
    assert np.array_equal(bias.bucket(distance), expected)


def test_position_bias_feeds_are_the_same_kept_or_computed() -> None:
    """Feeds come from a table kept per capacity up to CACHED_CAPACITY, computed beyond it:
    a row's bias must be the same either way, whichever capacities came before."""
    from dialogsum.backends.onnxruntime.step_slots import (
        CACHED_BYTES,
        CACHED_CAPACITY,
        PositionBias,
    )

    rng = np.random.default_rng(3)
    table = rng.standard_normal((32, 3)).astype(np.float32)
    bias = PositionBias(table, 128)
    for capacity in (16, 48, 16, 32, 48, CACHED_CAPACITY, CACHED_CAPACITY + 16):
        positions = rng.integers(0, capacity, 7)
        got = bias.feeds(positions, capacity)
        for row, position in enumerate(positions):
            alone = bias._computed(np.array([position]), capacity)[0]
            np.testing.assert_array_equal(got[row], alone)
            visible = got[row, 0, 0] > np.finfo(np.float32).min
            # Slots before the row's position, and its own new key (the last), are visible.
            assert visible.tolist() == [j < position for j in range(capacity)] + [True]
        assert got.flags.c_contiguous and got.dtype == np.float32
    kept = bias._by_capacity
    assert sum(every.nbytes for every in kept.values()) <= CACHED_BYTES
    assert list(kept)[-1] == CACHED_CAPACITY  # the most recent is kept (the larger one is not)
    assert 48 in kept and 32 in kept  # lanes taking turns at a few capacities all hit


def test_position_bias_keeps_the_most_recent_capacities_within_its_bytes() -> None:
    from dialogsum.backends.onnxruntime import step_slots

    bias = step_slots.PositionBias(np.zeros((32, 12), np.float32), 128)
    for capacity in range(16, step_slots.CACHED_CAPACITY + 1, 16):
        bias.feeds(np.array([0]), capacity)
    kept = list(bias._by_capacity)
    assert kept[-1] == step_slots.CACHED_CAPACITY and 16 not in kept  # oldest went first
    held = sum(every.nbytes for every in bias._by_capacity.values())
    assert held <= step_slots.CACHED_BYTES
    # A capacity in use at every step stays while others come and go (least recently used
    # leaves first, not the first computed).
    bias = step_slots.PositionBias(np.zeros((32, 12), np.float32), 128)
    for capacity in range(32, step_slots.CACHED_CAPACITY + 1, 16):
        bias.feeds(np.array([0]), 16)  # a lane held at 16, taking turns with a growing one
        bias.feeds(np.array([0]), capacity)
    assert 16 in bias._by_capacity and 32 not in bias._by_capacity


def test_the_steps_own_top_log_probs_are_the_separate_graphs(onnx_export_dir: Path) -> None:
    """Beam search takes each row's best log-probabilities from the step's graph: they must be
    what the separate top-k graph gives on the same logits, values and tokens, in order."""
    from dialogsum.backends.onnxruntime.lanes import TOP_ROOM, Lane
    from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor
    from dialogsum.generation import GenerationOptions

    predictor = OnnxPredictor(onnx_export_dir, progress=False)
    options = GenerationOptions(num_beams=3, max_new_tokens=6, no_repeat_ngram_size=2)
    ids = [[5, 6, 7, 8, 1], [9, 10, 1, 0, 0]]
    mask = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    lane = Lane(predictor, options.num_beams)
    lane.join(predictor._items(ids, mask, None, None), predictor.search(len(ids), options))
    assert int(lane.top_k[0]) == 2 * options.num_beams + TOP_ROOM
    for _ in range(3):
        logits, (values, tokens), _ = lane._run()
        want_values, want_tokens = predictor.top(logits, int(lane.top_k[0]))
        assert values.shape == (len(logits), int(lane.top_k[0]))
        np.testing.assert_array_equal(values, want_values)
        np.testing.assert_array_equal(tokens, want_tokens)
        lane.step()
    # Greedy takes the logits: its steps compute no top-k at all.
    greedy = Lane(predictor, 1)
    plain = options.model_copy(update={"num_beams": 1})
    greedy.join(predictor._items(ids, mask, None, None), predictor.search(len(ids), plain))
    logits, top, _ = greedy._run()
    assert top is None and logits.shape[0] == len(ids)


def test_a_step_attends_to_its_buffer_without_copying_it(onnx_export_dir: Path) -> None:
    """The slotted step reads each layer's self-attention buffer in place: no node appends the
    step's key or value to it (that copy of every buffer cost a tenth of a batched step)."""
    import onnx

    from dialogsum.backends.onnxruntime.step_slots import slot_self_attention

    model = onnx.load(str(onnx_export_dir / "decoder_with_past_model.onnx"))
    slot_self_attention(model)
    buffers = {i.name for i in model.graph.input if ".decoder." in i.name}
    assert buffers
    readers = [n for n in model.graph.node if set(n.input) & buffers]
    assert readers and all(n.op_type in ("Transpose", "MatMul") for n in readers), [
        n.op_type for n in readers
    ]


@pytest.mark.parametrize("beams", [1, 3])
def test_a_search_others_keep_joining_holds_only_its_items_in_flight(
    served: Summarizer, few_examples: list[Example], beams: int
) -> None:
    """Rows joining a running search merge into it, so under steady load one search can run
    as long as the service: it must let go of every finished item (their dialogues and
    callbacks), not keep all it ever took."""
    from dialogsum.backends.onnxruntime.lanes import Lane

    texts = [e.dialogue for e in few_examples]
    options = served.generation_options(num_beams=beams, max_new_tokens=4)
    decoder = served.continuous_decoder(ContinuousSettings(max_rows=3))
    assert decoder is not None
    held: list[int] = []
    step = Lane.step

    def counted(lane: Lane, **kwargs: Any) -> None:
        held.append(max((len(entry.items) for entry in lane.entries), default=0))
        step(lane, **kwargs)

    collected = Collected()
    plan = {at: [collected.row(at, texts[at % len(texts)], options)] for at in range(0, 40, 2)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Lane, "step", counted)
        _drain(decoder, plan)
    assert not collected.errors and len(collected.summaries) == 20
    assert max(held) <= 3  # the rows in flight, never the 20 that passed through


def test_rows_whose_bans_outgrow_the_steps_top_k_still_answer_as_alone(
    served: Summarizer, few_examples: list[Example]
) -> None:
    """With no_repeat_ngram_size=1 every token a row has written is forbidden, so after a few
    steps a row's forbidden tokens among its best outnumber the room the step's own top-k
    leaves, and beam search asks the separate top-k graph: whether it does depends on the
    other rows of its search. Every answer must still be the one decoded alone."""
    from dialogsum.backends.onnxruntime.lanes import TOP_ROOM
    from dialogsum.backends.onnxruntime.top_log_probs import TopLogProbsSession

    texts = [e.dialogue for e in few_examples]
    options = served.generation_options(
        num_beams=4, max_new_tokens=TOP_ROOM + 8, min_new_tokens=TOP_ROOM + 4,
        no_repeat_ngram_size=1,
    )  # fmt: skip
    asked: list[int] = []
    call = TopLogProbsSession.__call__

    def counted(self: Any, logits: Any, k: int) -> Any:
        asked.append(k)
        return call(self, logits, k)

    decoder = served.continuous_decoder(ContinuousSettings(max_rows=4))
    assert decoder is not None
    collected = Collected()
    plan = {at * 3: [collected.row(at, text, options)] for at, text in enumerate(texts[:5])}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TopLogProbsSession, "__call__", counted)
        _drain(decoder, plan)
    assert not collected.errors
    assert any(k > 2 * options.num_beams + TOP_ROOM for k in asked)  # the separate graph ran
    for index, text in enumerate(texts[:5]):
        assert collected.summaries[index] == served.summarize([text], options=options)[0]
