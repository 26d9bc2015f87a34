"""Arrays that share a leading row axis and change in place: what a lane keeps per row or item.

A lane's caches change a few rows at a time: items join (their rows written over finished
ones, or appended), leave, or beams follow their parents; the self-attention buffers lengthen
and shorten as summaries grow and end. Each array lives in a flat block of memory (an arena)
that is only ever replaced by a larger one: a row is appended into spare room, and a new
length is laid out again inside the same block. Concatenating the whole cache at every join
copied all of it (for FLAN-T5-base some 18 MB of cross-attention per item in flight), and a
freshly allocated block costs far more the first time it is written than reused memory does
(on a virtual machine, the host backs every new page as it is first touched).
"""

from __future__ import annotations

from typing import Any


class RowBuffers:
    """Named numpy arrays whose first ``count`` rows are in use; ``width_axis`` is the axis a
    row may be widened along (zeros after its end)."""

    def __init__(self, width_axis: int, grain: int = 1) -> None:
        self.width_axis = width_axis
        #: Widening rounds up to a multiple of this: each widening moves every row, and
        #: items joining one by one would each widen by a little.
        self.grain = grain
        #: Each array, as a contiguous view of its arena (as many rows as the arena holds).
        self.arrays: dict[str, Any] = {}
        self._arenas: dict[str, Any] = {}
        self.count = 0
        #: Rows and width the arenas are first made for (see :meth:`reserve`).
        self._reserved = (0, 0)
        #: The widest a row can be (0: unknown), set by :meth:`reserve`: widening rounds up to
        #: ``grain`` but not past it (every step reads the whole width).
        self._widest = 0

    @property
    def width(self) -> int:
        """The arrays' length along ``width_axis`` (0 when empty)."""
        for array in self.arrays.values():
            return int(array.shape[self.width_axis])
        return 0

    def views(self) -> dict[str, Any]:
        """Each array's rows in use (contiguous views, no copy)."""
        return {name: array[: self.count] for name, array in self.arrays.items()}

    def append(self, values: dict[str, Any]) -> None:
        """Add rows after those in use, widening either side to the wider of the two."""
        import numpy as np

        added = len(next(iter(values.values())))
        if not self.arrays and not self._reserved[0]:
            # Nothing to keep: the rows become the buffers as they are (a copy of a batch's
            # cross-attention cache was as large as the cache, for nothing).
            for name, value in values.items():
                self._arenas[name] = np.ascontiguousarray(value).reshape(-1)
                self.arrays[name] = _shaped(self._arenas[name], value.shape[1:])
            self.count = added
            return
        if not self.arrays:  # reserved: arenas for the rows and width to come
            rows, most = self._reserved
            for name, value in values.items():
                shape = list(value.shape[1:])
                wanted = shape[self.width_axis - 1]
                shape[self.width_axis - 1] = max(most, wanted)
                self._lay_out(name, tuple(shape), value.dtype, max(rows, added))
                # Written once now (it is zeros already): every page is backed from here
                # on, instead of as rows first reach it, in the middle of someone's decode.
                self._arenas[name].fill(0)
                shape[self.width_axis - 1] = self._rounded(wanted)
                self._lay_out(name, tuple(shape), value.dtype, max(rows, added))
        width = self._widened(values)
        needed = self.count + added
        for name, value in values.items():
            if len(self.arrays[name]) < needed:  # room for twice as many: appends stay cheap
                self._lay_out(name, self.arrays[name].shape[1:], value.dtype, 2 * needed)
            self.arrays[name][self.count : needed] = pad_axis(value, self.width_axis, width)
        self.count = needed

    def reserve(self, rows: int, width: int) -> None:
        """Make the arenas, when the first rows come, large enough for ``rows`` rows of
        ``width``, and touch them then: a buffer that grows while in use lives, for a moment,
        twice, and memory a process has not touched before is slow to touch the first time
        (on a virtual machine, the host backs each page then)."""
        self._widest = width
        self._reserved = (rows, self._rounded(width))  # as widening rounds

    def put(self, rows: Any, values: dict[str, Any]) -> None:
        """Write ``values`` over rows in use (``rows``: their indices, one per value row),
        widening either side to the wider of the two; what the rows held before is gone."""
        width = self._widened(values)
        for name, value in values.items():
            self.arrays[name][rows] = pad_axis(value, self.width_axis, width)

    def resize(self, width: int) -> None:
        """Make every array exactly ``width`` long along ``width_axis`` (the rows in use keep
        their first positions; new positions are zeros)."""
        if not self.arrays or width == self.width:
            return
        for name, array in self.arrays.items():
            shape = list(array.shape[1:])
            shape[self.width_axis - 1] = width
            self._lay_out(name, tuple(shape), array.dtype, self.count)

    def keep(self, rows: Any) -> None:
        """Keep only ``rows`` (indices into the rows in use, in increasing order), in place."""
        import numpy as np

        rows = np.asarray(rows, dtype=np.int64)
        moved = np.flatnonzero(rows != np.arange(len(rows)))
        for array in self.arrays.values():
            # Row i comes from rows[i] >= i: moving upwards in order never overwrites a row
            # still to be moved.
            for target in moved:
                array[target] = array[rows[target]]
        self.count = len(rows)

    def follow(self, parents: Any, widths: Any, grain: int = 16) -> None:
        """Row ``r`` takes row ``parents[r]``'s first ``widths[parents[r]]`` positions along
        ``width_axis`` (at least: rows are copied in groups of widths within the same
        ``grain``, each as far as its widest), in place: only rows whose parent is another
        row are written, and only as far as their parent's width (beams follow
        their parents at every step; copying every row's whole buffer cost more than the
        step's own attention, and under continuous batching rows of every age share a lane,
        so the longest row's width was twice what the moved rows needed on average)."""
        import numpy as np

        parents = np.asarray(parents, dtype=np.int64)
        moved = np.flatnonzero(parents != np.arange(len(parents)))
        if not len(moved):
            return
        sources = parents[moved]
        # One copy per width class, not per row: a few numpy calls a step.
        needed = widths[sources]
        widest = int(needed.max())
        if int(needed.min()) // grain == widest // grain:  # rows of one age (offline, micro)
            groups = [(moved, sources, widest)]
        else:
            classes = needed // grain
            picks = [classes == group for group in set(classes.tolist())]
            groups = [(moved[p], sources[p], int(needed[p].max())) for p in picks]
        gathered = [(targets, rows, self._cut(width)) for targets, rows, width in groups]
        for array in self.arrays.values():
            # Every parent's rows are gathered before any row is written: a parent may itself
            # be overwritten.
            if len(gathered) == 1:
                targets, rows, index = gathered[0]
                array[(targets, *index)] = array[(rows, *index)]
                continue
            taken = [array[(rows, *index)] for _, rows, index in gathered]
            for (targets, _, index), values in zip(gathered, taken, strict=True):
                array[(targets, *index)] = values
            # Freed before the next array's are gathered, whose memory they then are (a
            # copy kept alive across arrays made every gather take fresh pages).
            del taken, values

    def clear(self) -> None:
        """Forget every array."""
        self.arrays = {}
        self._arenas = {}
        self.count = 0

    def _widened(self, values: dict[str, Any]) -> int:
        """Widen the arrays to hold ``values`` (to a multiple of ``grain``); their width."""
        wanted = max(int(v.shape[self.width_axis]) for v in values.values())
        if wanted > self.width:
            self.resize(self._rounded(wanted))
        return self.width

    def _cut(self, width: int) -> tuple[slice, ...]:
        """The index of a row's first ``width`` positions along ``width_axis``."""
        cut = [slice(None)] * self.width_axis
        cut[self.width_axis - 1] = slice(0, width)
        return tuple(cut)

    def _rounded(self, width: int) -> int:
        """``width`` rounded up to a multiple of ``grain``, but not past the widest a row can
        be (a lane of dialogsum-tiny, whose dialogues are at most 272 positions with the
        tail, read 320 at every step: a sixth more cross-attention for nothing)."""
        rounded = -(-width // self.grain) * self.grain
        # A row wider than the widest reserved (a prompt-tuned adapter's prompt is not counted
        # there) rounds up as usual: each few positions more would otherwise move every row.
        return min(rounded, self._widest) if width <= self._widest else rounded

    def _lay_out(self, name: str, row_shape: tuple[int, ...], dtype: Any, rows: int) -> None:
        """Lay array ``name`` out with rows of ``row_shape``, room for at least ``rows`` of
        them, the rows in use moved to the new layout (in the same arena where it is large
        enough)."""
        import numpy as np

        row_size = int(np.prod(row_shape))
        arena = self._arenas.get(name)
        old = self.arrays.get(name)
        if arena is None or arena.size < rows * row_size:
            # Allocated, not touched: pages are backed as rows are written.
            fresh = np.zeros(max(rows, 1) * row_size, dtype)
            if old is not None:
                _move_rows(old[: self.count], _shaped(fresh, row_shape), self.width_axis)
            self._arenas[name] = arena = fresh
        elif old is not None:
            _move_rows(old[: self.count], _shaped(arena, row_shape), self.width_axis)
        self.arrays[name] = _shaped(arena, row_shape)


def _shaped(arena: Any, row_shape: tuple[int, ...]) -> Any:
    """As many whole rows of ``row_shape`` as ``arena`` holds, as a contiguous view."""
    import numpy as np

    rows = arena.size // max(int(np.prod(row_shape)), 1)
    return arena[: rows * int(np.prod(row_shape))].reshape(rows, *row_shape)


def _move_rows(source: Any, target: Any, axis: int) -> None:
    """Copy each row of ``source`` into ``target`` (which may share its memory), cut or
    padded with zeros along ``axis``. Rows that grow move from the last (their new place
    is after their old one), rows that shrink from the first."""
    width = min(source.shape[axis], target.shape[axis])
    index = [slice(None)] * axis
    index[axis - 1] = slice(0, width)
    rest = list(index)
    rest[axis - 1] = slice(width, None)
    growing = target[0].size >= source[0].size if len(source) else True
    order = range(len(source) - 1, -1, -1) if growing else range(len(source))
    for row in order:
        # numpy copies through a buffer where the two views overlap.
        target[(row, *index)] = source[(row, *index)]
        target[(row, *rest)] = 0


def pad_axis(value: Any, axis: int, width: int) -> Any:
    """``value`` with zeros after its end along ``axis``, up to ``width``."""
    import numpy as np

    extra = width - value.shape[axis]
    if extra <= 0:
        return value
    padding = [(0, 0)] * value.ndim
    padding[axis] = (0, extra)
    return np.pad(value, padding)
