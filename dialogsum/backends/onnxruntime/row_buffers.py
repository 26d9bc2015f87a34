"""Arrays that share a leading row axis and grow in place: what a lane keeps per row or item.

A lane's caches change a few rows at a time: items join (their rows appended), leave, or beams
follow their parents. Concatenating the whole cache at every join copied all of it, which for
FLAN-T5-base is some 18 MB of cross-attention per item in flight; here rows are appended into
spare room, and only a reorder or a departure copies (once, into a fresh buffer).
"""

from __future__ import annotations

from typing import Any


class RowBuffers:
    """Named numpy arrays whose first ``count`` rows are in use; ``width_axis`` is the axis a
    row may be widened along (zeros after its end)."""

    def __init__(self, width_axis: int) -> None:
        self.width_axis = width_axis
        self.arrays: dict[str, Any] = {}
        self.count = 0

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
        if not self.count:
            # Nothing to keep: the rows become the buffers as they are (a copy of a batch's
            # cross-attention cache was as large as the cache, for nothing).
            self.arrays = {name: np.ascontiguousarray(v) for name, v in values.items()}
            self.count = added
            return
        width = max(self.width, max(int(v.shape[self.width_axis]) for v in values.values()))
        self.resize(width)
        needed = self.count + added
        for name, value in values.items():
            value = pad_axis(value, self.width_axis, width)
            array = self.arrays.get(name)
            if array is None or len(array) < needed:
                grown = np.zeros((max(needed, 2 * len(array) if array is not None else 0),
                                  *value.shape[1:]), value.dtype)  # fmt: skip
                if array is not None:
                    grown[: self.count] = array[: self.count]
                array = self.arrays[name] = grown
            array[self.count : needed] = value
        self.count = needed

    def resize(self, width: int) -> None:
        """Make every array exactly ``width`` long along ``width_axis`` (copies the rows in
        use; new positions are zeros)."""
        import numpy as np

        if not self.arrays or width == self.width:
            return
        for name, array in self.arrays.items():
            shape = list(array.shape)
            shape[self.width_axis] = width
            resized = np.zeros(shape, array.dtype)
            kept = min(width, array.shape[self.width_axis])
            index = [slice(None)] * array.ndim
            index[0] = slice(0, self.count)
            index[self.width_axis] = slice(0, kept)
            resized[tuple(index)] = array[tuple(index)]
            self.arrays[name] = resized

    def keep(self, rows: Any) -> None:
        """Keep only ``rows`` (indices into the rows in use, any order, repeats allowed)."""
        import numpy as np

        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == self.count and np.array_equal(rows, np.arange(self.count)):
            return
        for name, array in self.arrays.items():
            kept = np.empty((max(len(rows), 1), *array.shape[1:]), array.dtype)
            # mode="clip": with "raise" numpy buffers the whole output once more.
            np.take(array[: self.count], rows, axis=0, out=kept[: len(rows)], mode="clip")
            self.arrays[name] = kept
        self.count = len(rows)

    def clear(self) -> None:
        """Forget every array."""
        self.arrays = {}
        self.count = 0


def pad_axis(value: Any, axis: int, width: int) -> Any:
    """``value`` with zeros after its end along ``axis``, up to ``width``."""
    import numpy as np

    extra = width - value.shape[axis]
    if extra <= 0:
        return value
    padding = [(0, 0)] * value.ndim
    padding[axis] = (0, extra)
    return np.pad(value, padding)
