"""Continuous batching over an ONNX export: rows join the running decode between steps.

Waiting rows are admitted in arrival order while the settings' budget allows; rows admitted
together with the same options form one search (:mod:`.decoding`) and join the lane of their
beam count (:mod:`.lanes`). Each :meth:`OnnxContinuous.step` runs one decoder step of one lane
(lanes take turns), so greedy and beam-search rows decode side by side on one thread. Rows of
different adapters, lengths and limits share a lane's steps; rows of different beam counts do
not (the decoder's cross-attention is laid out per item, with a fixed number of beams).

Every row's summary equals the one ``summarize()`` gives it alone: the slotted decoder's steps
do not depend on their batch, and each search's items are independent.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dialogsum.backends.onnxruntime.decoding import check_supported
from dialogsum.backends.onnxruntime.lanes import Item, Lane
from dialogsum.backends.onnxruntime.step_slots import CROSS_ATTENTION_TAIL
from dialogsum.plugin_api import (
    ContinuousDecoder,
    ContinuousRow,
    ContinuousSettings,
    encode_with_tokenizers,
)

if TYPE_CHECKING:
    from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor


@dataclass
class _Admitted:
    row: ContinuousRow
    source: list[int]
    cost: int
    limit: int
    #: Answered (summary or error): nothing more goes to the row.
    answered: bool = False


class OnnxContinuous(ContinuousDecoder):
    """A continuous-batching decoder over an :class:`OnnxPredictor` (see the module)."""

    def __init__(self, predictor: OnnxPredictor, settings: ContinuousSettings) -> None:
        self.predictor = predictor
        self.settings = settings
        self._waiting: deque[ContinuousRow] = deque()
        self._lock = threading.Lock()
        self._lanes: dict[int, Lane] = {}
        self._turn = 0
        self._rows_in_flight = 0
        self._tokens_in_flight = 0
        self._ready: deque[_Admitted] = deque()  # encoded, waiting for room
        self._waited = 0  # steps since the rows waiting were last looked at
        self._since = 0.0  # when the oldest row waiting was added

    @property
    def waiting(self) -> int:
        return len(self._waiting) + len(self._ready)

    @property
    def in_flight(self) -> int:
        return self._rows_in_flight

    def add(self, rows: list[ContinuousRow]) -> None:
        with self._lock:
            if not self._waiting:
                self._since = time.monotonic()
            self._waiting.extend(rows)

    def step(self) -> bool:
        self._admit()
        lanes = [lane for lane in self._lanes.values() if lane.rows]
        if not lanes:
            return bool(self.waiting)
        self._turn = (self._turn + 1) % len(lanes)
        lane = lanes[self._turn]
        try:
            # Rows about to join take finished rows' places: no compaction copy meanwhile.
            lane.step(compact=not self.waiting)
        except Exception as exc:  # the model failed: every row of the lane hears it
            self._fail(lane, exc)
        return True

    def _admit(self) -> None:
        """Encode waiting rows and admit them, in order, while there is room."""
        settings = self.settings
        if not self._rows_in_flight and not self._ready and settings.max_wait_s:
            with self._lock:
                waiting, since = len(self._waiting), self._since
            left = since + settings.max_wait_s - time.monotonic()
            if waiting and waiting < settings.max_rows and left > 0:
                time.sleep(left)  # nothing decodes meanwhile: this thread has nothing to do
        while True:
            with self._lock:
                row = self._waiting.popleft() if self._waiting else None
            if row is None:
                break
            try:
                check_supported(row.options)
                self._ready.append(self._encode(row))
            except Exception as exc:
                row.on_error(exc)
        if not self._ready:
            return
        self._waited += 1
        in_flight = self._rows_in_flight
        if (
            in_flight
            and self._joining() < in_flight * settings.join_ratio
            and self._waited <= settings.max_waiting_steps
        ):
            return
        self._waited = 0
        groups: dict[str, list[_Admitted]] = {}
        while self._ready:
            first = self._ready[0]
            rows = self._rows_in_flight + 1
            tokens = self._tokens_in_flight + first.cost
            empty = not self._rows_in_flight
            if not empty and (rows > settings.max_rows or tokens > settings.max_tokens):
                break  # in order: a big row is not overtaken for ever by small ones
            self._ready.popleft()
            self._rows_in_flight, self._tokens_in_flight = rows, tokens
            key = first.row.options.model_dump_json(exclude={"adapter"}) + f"/{first.limit}"
            groups.setdefault(key, []).append(first)
        for admitted in groups.values():
            self._join(admitted)

    def _joining(self) -> int:
        """How many ready rows would join now: in order, while the budget has room. Under
        saturation the queue is long but rows finish one at a time; counting the queue let
        each finished row's place be taken by one row, each with its own encoder pass and
        first step."""
        settings = self.settings
        rows, tokens, joining = self._rows_in_flight, self._tokens_in_flight, 0
        for admitted in self._ready:
            rows, tokens = rows + 1, tokens + admitted.cost
            if rows > settings.max_rows or tokens > settings.max_tokens:
                break
            joining += 1
        return joining

    def _encode(self, row: ContinuousRow) -> _Admitted:
        predictor = self.predictor
        adapter = row.options.adapter
        manifest = predictor._manifest(adapter, predictor._adapter_set)
        source = encode_with_tokenizers(
            [row.dialogue],
            predictor.tokenizer,
            predictor.eos_token_id,
            manifest.data,
            warn=False,  # a server counts and reports truncation itself, once per input
        )[0]
        limit = row.options.max_new_tokens or manifest.data.max_target_length
        cost = row.options.num_beams * (len(source) + limit)
        return _Admitted(row, source, cost, limit)

    def _join(self, admitted: list[_Admitted]) -> None:
        predictor = self.predictor
        options = admitted[0].row.options.model_copy(
            update={"max_new_tokens": admitted[0].limit, "adapter": None}
        )
        items = []
        served = predictor._adapter_set
        for one in admitted:
            adapter = one.row.options.adapter
            try:
                if adapter is not None and served is None:
                    predictor._manifest(adapter, None)  # fails: no adapters here
                weights = None if adapter is None or served is None else served.get(adapter)
            except Exception as exc:  # unloaded since it was encoded
                self._error(one)(exc)
                continue
            partial = None if one.row.on_partial is None else self._partial(one)
            items.append(
                Item(one.source, self._done(one), adapter, weights, partial, self._error(one))
            )
        if not items:
            return
        lane = self._lanes.get(options.num_beams)
        if lane is None:
            lane = self._lanes[options.num_beams] = Lane(predictor, options.num_beams)
            data = predictor.manifest.data
            lane.reserve(
                self.settings.max_rows,
                data.max_source_length + predictor.prompt_tokens + CROSS_ATTENTION_TAIL,
                data.max_target_length + 1,
            )
        try:
            lane.join(items, predictor.search(len(items), options))
        except Exception as exc:  # the new rows' encoder or first step failed: they hear it
            for item in items:
                if item.on_error is not None:
                    item.on_error(exc)

    def _done(self, one: _Admitted) -> Any:
        decode = self.predictor.tokenizer.decode

        def done(tokens: list[int]) -> None:
            if self._release(one):
                one.row.on_summary(decode(tokens))

        return done

    def _partial(self, one: _Admitted) -> Any:
        decode = self.predictor.tokenizer.decode
        listener = one.row.on_partial
        assert listener is not None

        def partial(tokens: list[int]) -> None:
            listener(decode(tokens))

        return partial

    def _error(self, one: _Admitted) -> Any:
        def error(exc: Exception) -> None:
            if self._release(one):
                one.row.on_error(exc)

        return error

    def _release(self, one: _Admitted) -> bool:
        """Free the row's room; False when it was answered already (it hears nothing more)."""
        if one.answered:
            return False
        one.answered = True
        self._rows_in_flight -= 1
        self._tokens_in_flight -= one.cost
        return True

    def _fail(self, lane: Lane, exc: Exception) -> None:
        """Every row of ``lane`` hears ``exc``; the lane starts afresh."""
        self._lanes.pop(lane.beams, None)
        for item in lane.items:
            if item.on_error is not None:
                item.on_error(exc)
