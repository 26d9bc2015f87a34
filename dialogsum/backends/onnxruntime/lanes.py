"""Rows in flight in the slotted decoder: searches join between steps and leave when final.

A :class:`Lane` holds every row decoding with one beam count: each row's self-attention cache
(a buffer of ``capacity`` positions, see :mod:`.step_slots`), each item's cross-attention
cache and encoder mask (padded to the longest in flight, plus ``CROSS_ATTENTION_TAIL``), each
row's position and next token, and the searches (:mod:`.decoding`) the rows belong to. One
:meth:`Lane.step` runs the decoder once over all of them; each search takes its own rows'
logits and says which rows go on. :meth:`Lane.join` runs new items' encoder and first decoder
step and adds them: a search that joins later writes at earlier positions than its
neighbours, which the slotted graph allows, and no row's numbers depend on the others, so
every item decodes exactly as it does alone.

Offline decoding is the case where one search joins an empty lane and runs to its end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dialogsum.backends.onnxruntime.adapter_tables import AdapterSet, ServedAdapter, lora_feeds
from dialogsum.backends.onnxruntime.decoding import BeamSearch, GreedySearch, Search
from dialogsum.backends.onnxruntime.row_buffers import RowBuffers, pad_axis
from dialogsum.backends.onnxruntime.step_slots import (
    CROSS_ATTENTION_TAIL,
    SELF_ATTENTION_BIAS,
    SLOT_CHUNK,
    TOP_INDICES,
    TOP_K,
    TOP_VALUES,
    TOP_WANTED,
)

if TYPE_CHECKING:
    from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor

#: The cross-attention width grows in steps of this many positions (see RowBuffers.grain).
CROSS_WIDTH_GRAIN = 64
#: A beam-search step's graph returns each row's best ``2 x beams`` log-probabilities and
#: this many more: room for the tokens the processors forbid among them (a repeated n-gram's
#: end, end-of-sequence before the minimum length); a row with more asks again.
TOP_ROOM = 8

#: Called with an item's final token ids (cut after end-of-sequence).
Done = Callable[[list[int]], None]
#: Called with an unfinished item's token ids so far, after each step (greedy only).
Partial = Callable[[list[int]], None]


@dataclass
class Item:
    """One dialogue to decode: its prompted token ids and adapter, and where its tokens go."""

    source: list[int]
    on_done: Done
    adapter: str | None = None
    #: The adapter's weights as served when the item joined (None: the base).
    served: ServedAdapter | None = None
    on_partial: Partial | None = None
    #: Hears why the item cannot be decoded (the model failed under it).
    on_error: Callable[[Exception], None] | None = None


@dataclass
class _Entry:
    """A search in the lane and its items (by the search's item ids)."""

    search: Search
    #: The items still running, by the search's item id: an item leaves when it is final (a
    #: search that other searches keep joining may run as long as the service does).
    items: dict[int, Item]
    #: The search's item ids still running, in its order.
    ids: Any
    #: Where those items are in the lane's buffers (their rows: ``item x beams + beam``).
    lane_items: Any = None
    #: The id the next item to join this search takes (ids are never reused).
    next_id: int = 0


class Lane:
    """Rows of one beam count decoding together in ``predictor``'s slotted decoder."""

    def __init__(self, predictor: OnnxPredictor, beams: int) -> None:
        import numpy as np

        self.predictor = predictor
        self.beams = beams
        self.entries: list[_Entry] = []
        self.positions = np.zeros(0, np.int64)
        self.tokens = np.zeros(0, np.int64)
        #: Each row's self-attention buffers (rows x heads x capacity x size).
        self.self_cache = RowBuffers(width_axis=2)
        #: Each item's cross-attention keys and values, and its encoder mask.
        self.cross_cache = RowBuffers(width_axis=2, grain=CROSS_WIDTH_GRAIN)
        self.encoder_mask = RowBuffers(width_axis=1, grain=CROSS_WIDTH_GRAIN)
        #: Each item's real encoder positions (what the cross-attention width must cover).
        self.encoder_lengths = np.zeros(0, np.int64)
        #: Whether each item in the buffers still decodes: a finished item's rows stay (and
        #: run, ignored) until a quarter of the items are finished, then all leave at once;
        #: compacting at every departure copied every cache at almost every step.
        self.live = np.zeros(0, bool)
        self.item_served: list[ServedAdapter | None] = []
        self.step_lora: dict[str, Any] = {}
        #: ``top_k`` for the step's graph (known once the first items' logits are seen), and
        #: whether its top-k is wanted (beam search; greedy takes the logits).
        self.top_k = np.ones(1, np.int64)
        self.top_wanted = np.array(beams > 1)

    def reserve(self, items: int, encoder_width: int, decoder_width: int) -> None:
        """Make the buffers, when the first items join, large enough for ``items`` items
        whose dialogues (prompt and tail included) and summaries are this long at most: a
        long-lived lane then never reallocates them (see RowBuffers.reserve)."""
        rows = items * self.beams
        self.self_cache.reserve(rows, -(-decoder_width // SLOT_CHUNK) * SLOT_CHUNK)
        self.cross_cache.reserve(items, encoder_width)
        self.encoder_mask.reserve(items, encoder_width)

    @property
    def rows(self) -> int:
        """Decoder rows in flight (of items still decoding)."""
        return int(self.live.sum()) * self.beams

    @property
    def capacity(self) -> int:
        """The self-attention buffers' length (a multiple of ``SLOT_CHUNK``)."""
        return self.self_cache.width

    @property
    def items(self) -> list[Item]:
        """The items in flight."""
        return [entry.items[int(i)] for entry in self.entries for i in entry.ids]

    def join(self, items: list[Item], search: Search) -> None:
        """Run ``items``' encoder and first step, and add them as ``search`` (which must be
        fresh, over exactly these items). Items final at once are reported before it returns."""
        import numpy as np

        predictor = self.predictor
        feeds = self._feeds([item.served for item in items])
        ids, mask = _padded([item.source for item in items], predictor.pad_token_id)
        hidden, encoder_mask = predictor._encode_batch(ids, mask, feeds)
        lengths = encoder_mask.sum(axis=1).astype(np.int64)
        logits, self_present, cross, encoder_mask = predictor.first_step(
            hidden, encoder_mask, feeds
        )
        beams = self.beams
        if beams > 1:  # every beam starts from the same token: computed once per item
            self.top_k[0] = min(2 * beams + TOP_ROOM, logits.shape[-1])  # (greedy: logits)
            logits = np.repeat(logits, beams, axis=0)
            self_present = {k: np.repeat(v, beams, axis=0) for k, v in self_present.items()}
        entry = _Entry(search, dict(enumerate(items)), np.arange(len(items)), None, len(items))
        advance = search.advance(logits)
        self._report(entry, advance.finished)
        if not len(advance.items):
            return
        kept = advance.rows[::beams] // beams
        entry.ids = np.asarray(advance.items)
        if len(kept) < len(items):
            cross = {k: v[kept] for k, v in cross.items()}
            encoder_mask, lengths = encoder_mask[kept], lengths[kept]
        self._grow(2)
        entry.lane_items = self._place(
            {k: v[advance.rows] for k, v in self_present.items()}, cross, encoder_mask
        )
        self.live[entry.lane_items] = True
        self.encoder_lengths[entry.lane_items] = lengths
        for slot, item in zip(entry.lane_items, kept, strict=True):
            self.item_served[slot] = items[int(item)].served
        rows = self._rows(entry.lane_items)
        self.positions[rows] = 1
        self.tokens[rows] = advance.tokens
        self._partials(entry)
        self._adapters_changed()
        for other in self.entries:
            if _mergeable(other.search, search):
                # One search for both: a step costs one pass over its items, not one per join.
                offset = other.next_id
                other.search.absorb(search, offset)  # type: ignore[attr-defined]
                other.items.update((offset + key, item) for key, item in entry.items.items())
                other.next_id += len(items)
                other.ids = np.concatenate([other.ids, entry.ids + offset])
                other.lane_items = np.concatenate([other.lane_items, entry.lane_items])
                return
        self.entries.append(entry)

    def step(self, *, compact: bool = True) -> None:
        """One decoder step over every row in flight; final items are reported and leave.

        Finished items' rows leave in one copy once they are a quarter of the lane; with
        ``compact`` False (items are about to join, and will take their rows) they stay."""
        import numpy as np

        if not self.rows:
            return
        self._grow(int(self.positions.max()) + 1)
        logits, top, new = self._run()
        beams = self.beams
        total = len(self.tokens)
        every = np.arange(total)
        for name, value in new.items():  # each row's new key or value, at its position
            self.self_cache.arrays[name][every, :, self.positions] = value[:, :, 0]
        parents = every.copy()  # the row each row's cache comes from (beams follow parents)
        tokens = np.full(total, self.predictor.pad_token_id, np.int64)
        entries = []
        for entry in self.entries:
            rows = (entry.lane_items[:, None] * beams + np.arange(beams)).reshape(-1)
            if len(rows) == total and (rows == every).all():  # every row, in order: no copy
                advance = entry.search.advance(logits, top)
            else:
                ready = None if top is None else (top[0][rows], top[1][rows])
                advance = entry.search.advance(logits[rows], ready)
            self._report(entry, advance.finished)
            kept = np.asarray(advance.rows, np.int64)
            kept_items = entry.lane_items[kept[::beams] // beams]
            targets = (kept_items[:, None] * beams + np.arange(beams)).reshape(-1)
            parents[targets] = rows[kept]
            tokens[targets] = advance.tokens
            if len(kept_items) < len(entry.lane_items):  # (a set difference per step cost more)
                self.live[np.setdiff1d(entry.lane_items, kept_items)] = False
            entry.lane_items, entry.ids = kept_items, np.asarray(advance.items)
            if len(entry.ids):
                entries.append(entry)
        self.entries = entries
        self.tokens = tokens
        if beams > 1:
            # A row's slots past its position are masked: only those before (and the one just
            # written) follow the parent.
            self.self_cache.follow(parents, self.positions + 1)
            self.positions = self.positions[parents]
        live_rows = np.repeat(self.live, beams)
        self.positions[live_rows] += 1
        self.positions[~live_rows] = 0  # a finished row waits, ignored, for an item to take it
        if not self.live.any():
            # Nothing in flight: the buffers stay for the next items to be written over
            # (allocating them again cost more than the items' first step).
            self.entries = []
        elif compact and (~self.live).sum() * 4 >= len(self.live):
            self._compact()
        self._shrink()
        for entry in self.entries:
            self._partials(entry)

    def _place(self, self_present: dict[str, Any], cross: dict[str, Any], mask: Any) -> Any:
        """Write joining items' caches into the lane: over finished items' rows first (no
        copy of anything else), then after the rows in use. Their slots, in order.

        A finished row's old keys past the new row's position stay in its buffer: the step
        masks every slot a row has not written, so they weigh exactly 0 (as zeros did)."""
        import numpy as np

        beams = self.beams
        reused = np.flatnonzero(~self.live)[: len(mask)]
        count = len(reused)
        if count:
            self.self_cache.put(
                self._rows(reused), {k: v[: count * beams] for k, v in self_present.items()}
            )
            self.cross_cache.put(reused, {k: v[:count] for k, v in cross.items()})
            self.encoder_mask.put(reused, {"mask": mask[:count]})
        added = len(mask) - count
        if not added:
            return reused
        capacity = max(self.capacity, SLOT_CHUNK)
        self.self_cache.append(
            {k: pad_axis(v[count * beams :], 2, capacity) for k, v in self_present.items()}
        )
        self.cross_cache.append({k: v[count:] for k, v in cross.items()})
        self.encoder_mask.append({"mask": mask[count:]})
        first = len(self.live)
        self.live = np.concatenate([self.live, np.zeros(added, bool)])
        self.encoder_lengths = np.concatenate([self.encoder_lengths, np.zeros(added, np.int64)])
        self.item_served += [None] * added
        self.positions = np.concatenate([self.positions, np.zeros(added * beams, np.int64)])
        pad = self.predictor.pad_token_id
        self.tokens = np.concatenate([self.tokens, np.full(added * beams, pad, np.int64)])
        return np.concatenate([reused, np.arange(first, first + added)])

    def _rows(self, items: Any) -> Any:
        """The decoder rows of lane items ``items`` (``item x beams + beam``)."""
        import numpy as np

        return (np.asarray(items)[:, None] * self.beams + np.arange(self.beams)).reshape(-1)

    def _compact(self) -> None:
        """Drop the finished items' rows from every buffer (one copy of each)."""
        import numpy as np

        kept = np.flatnonzero(self.live)
        rows = (kept[:, None] * self.beams + np.arange(self.beams)).reshape(-1)
        self.self_cache.keep(rows)
        self.cross_cache.keep(kept)
        self.encoder_mask.keep(kept)
        self.tokens, self.positions = self.tokens[rows], self.positions[rows]
        self.encoder_lengths = self.encoder_lengths[kept]
        self.item_served = [self.item_served[int(i)] for i in kept]
        moved = np.full(len(self.live), -1, np.int64)
        moved[kept] = np.arange(len(kept))
        for entry in self.entries:
            entry.lane_items = moved[entry.lane_items]
        self.live = self.live[kept]
        self._trim()
        self._adapters_changed()

    def _shrink(self) -> None:
        """Cut the self-attention buffers to what the rows in flight need: every step reads
        (and beam search copies) their whole length, and a long summary that ended left
        them long."""
        needed = max(-(-(int(self.positions.max(initial=0)) + 1) // SLOT_CHUNK), 1) * SLOT_CHUNK
        if needed < self.capacity:
            self.self_cache.resize(needed)

    def _run(self) -> tuple[Any, tuple[Any, Any] | None, dict[str, Any]]:
        """The slotted decoder over every row: logits, each row's best log-probabilities and
        their tokens (``top_k`` of them; None for greedy), and each row's new keys and
        values."""
        predictor = self.predictor
        feeds: dict[str, Any] = {
            TOP_K: self.top_k,
            TOP_WANTED: self.top_wanted,
            "input_ids": self.tokens[:, None],
            "encoder_attention_mask": self.encoder_mask.views()["mask"],
            SELF_ATTENTION_BIAS: predictor.position_bias.feeds(self.positions, self.capacity),
            **self.step_lora,
            **self.cross_cache.views(),
            **self.self_cache.views(),
        }
        outputs = predictor.slotted.run(None, feeds)
        named = dict(zip(predictor.slotted_outputs, outputs, strict=True))
        logits = named.pop("logits")[:, -1]
        values, indices = named.pop(TOP_VALUES), named.pop(TOP_INDICES)
        top = (values[:, -1], indices[:, -1]) if self.top_wanted else None
        new = {k.replace("present.", "past_key_values."): v for k, v in named.items()}
        return logits, top, new

    def _grow(self, needed: int) -> None:
        """Make the self-attention buffers at least ``needed`` positions long (a multiple of
        ``SLOT_CHUNK``: see step_slots)."""
        if needed > self.capacity:
            self.self_cache.resize(-(-needed // SLOT_CHUNK) * SLOT_CHUNK)

    def _trim(self) -> None:
        """Cut the cross-attention width to the longest item left, when that saves a quarter:
        every step reads the whole width (the cut costs one copy)."""
        width = self.encoder_mask.width
        needed = int(self.encoder_lengths[self.live].max(initial=0)) + CROSS_ATTENTION_TAIL
        needed = -(-needed // CROSS_WIDTH_GRAIN) * CROSS_WIDTH_GRAIN
        if not width or needed * 4 > width * 3:
            return
        self.cross_cache.resize(needed)
        self.encoder_mask.resize(needed)

    def _feeds(self, served: list[ServedAdapter | None]) -> Any:
        """The adapters' feeds for items using ``served`` (None without a multi-adapter
        export)."""
        layout = self.predictor.adapter_layout
        if layout is None:
            return None
        # Each served adapter under a key of its own: a name replaced while its old weights
        # still decode rows keeps both.
        keys: list[str | None] = [None if one is None else f"{id(one)}" for one in served]
        adapters = {f"{id(one)}": one for one in served if one is not None}
        cached = getattr(self, "_adapter_set", None)
        if cached is None or cached.adapters != adapters:
            cached = AdapterSet(layout, adapters)
            self._adapter_set = cached
        return cached.batch(keys)

    def _adapters_changed(self) -> None:
        import numpy as np

        feeds = self._feeds(self.item_served)
        if feeds is None:
            self.step_lora = {}
            return
        session_inputs = self.predictor._inputs[id(self.predictor.slotted)]
        row_items = np.repeat(np.arange(len(self.item_served)), self.beams)
        self.step_lora = lora_feeds(session_inputs, feeds, row_items)

    def _report(self, entry: _Entry, finished: list[tuple[int, list[int]]]) -> None:
        for item, tokens in finished:
            entry.items.pop(item).on_done(tokens)

    def _partials(self, entry: _Entry) -> None:
        if any(item.on_partial is not None for item in entry.items.values()):
            for item, tokens in entry.search.partial():
                listener = entry.items[item].on_partial
                if listener is not None:
                    listener(tokens)


def _mergeable(first: Search, second: Search) -> bool:
    """Whether ``second``'s items can join ``first``: the same kind of search with the same
    options, but for their length limits (which are per item)."""
    absorbing = (GreedySearch, BeamSearch)  # a forced search (first-step logits) never merges
    if not isinstance(first, absorbing) or not isinstance(second, absorbing):
        return False
    if type(first) is not type(second):
        return False
    ignored = {"max_new_tokens", "batch_size", "adapter"}
    return bool(
        first.options.model_dump(exclude=ignored) == second.options.model_dump(exclude=ignored)
    )


def _padded(sources: list[list[int]], pad: int) -> tuple[list[list[int]], list[list[int]]]:
    width = max(len(source) for source in sources)
    ids = [source + [pad] * (width - len(source)) for source in sources]
    mask = [[1] * len(source) + [0] * (width - len(source)) for source in sources]
    return ids, mask
