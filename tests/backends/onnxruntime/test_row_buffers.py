"""RowBuffers: the arrays a lane keeps per row, changed in place, checked against plain lists.

Every operation a lane uses (append, write over rows, widen or narrow, keep rows, beams
following parents) runs in random order; after each, the rows in use must read exactly as a
list of rows changed the same way would, zeros after each row's own width, and the arrays
must stay contiguous (onnxruntime reads them as they are).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dialogsum.backends.onnxruntime.row_buffers import RowBuffers


def _rows(count: int, width: int, axis: int, rng: Any) -> Any:
    shape = [count, 2, 3]
    shape[axis] = width
    return rng.standard_normal(shape).astype(np.float32)


def _cut(row: Any, axis: int, width: int) -> Any:
    index: list[Any] = [slice(None)] * 2
    index[axis - 1] = slice(0, width)
    return row[tuple(index)]


def _padded(row: Any, axis: int, width: int) -> Any:
    """``row`` with zeros after its end along ``axis`` (of the row), up to ``width``."""
    padding = [(0, 0)] * row.ndim
    padding[axis - 1] = (0, width - row.shape[axis - 1])
    return np.pad(row, padding)


def _check(buffers: RowBuffers, expected: list[Any], axis: int) -> None:
    view = buffers.views()["x"]
    assert view.flags.c_contiguous
    assert len(view) == len(expected)
    for got, row in zip(view, expected, strict=True):
        width = row.shape[axis - 1]
        np.testing.assert_array_equal(_cut(got, axis, width), row)
        rest: list[Any] = [slice(None)] * 2
        rest[axis - 1] = slice(width, None)
        assert not got[tuple(rest)].any()  # masked positions are zeros


@pytest.mark.parametrize("axis", [1, 2])
@pytest.mark.parametrize("reserved", [False, True])
def test_random_changes_read_as_a_list_of_rows_would(axis: int, reserved: bool) -> None:
    rng = np.random.default_rng(axis * 10 + reserved)
    for _ in range(60):
        buffers = RowBuffers(width_axis=axis, grain=int(rng.integers(1, 5)))
        if reserved:
            buffers.reserve(int(rng.integers(1, 6)), int(rng.integers(1, 12)))
        first = _rows(int(rng.integers(1, 4)), int(rng.integers(1, 9)), axis, rng)
        buffers.append({"x": first})
        expected = [row.copy() for row in first]
        for _ in range(15):
            operation = int(rng.integers(0, 5))
            count = len(expected)
            if operation == 0:
                added = _rows(int(rng.integers(1, 4)), int(rng.integers(1, 9)), axis, rng)
                buffers.append({"x": added})
                expected += [row.copy() for row in added]
            elif operation == 1:
                rows = rng.choice(count, size=int(rng.integers(1, count + 1)), replace=False)
                values = _rows(len(rows), int(rng.integers(1, 9)), axis, rng)
                buffers.put(rows, {"x": values})
                for value, row in zip(values, rows, strict=True):
                    expected[row] = value.copy()
            elif operation == 2:
                width = int(rng.integers(1, 12))
                buffers.resize(width)
                expected = [_cut(row, axis, width) for row in expected]
            elif operation == 3:
                kept = np.sort(rng.choice(count, size=int(rng.integers(1, count + 1)),
                                          replace=False))  # fmt: skip
                buffers.keep(kept)
                expected = [expected[row] for row in kept]
            else:
                # Each row takes its parent's first positions, at least as many as the
                # parent's own width, and keeps its own after them.
                parents = rng.integers(0, count, size=count)
                width = buffers.width
                widths = rng.integers(1, width + 1, size=count)
                grain = int(rng.integers(1, 5))
                buffers.follow(parents, widths, grain=grain)
                full = [_padded(row, axis, width) for row in expected]
                followed = []
                for row, parent in enumerate(parents):
                    if parent == row:
                        followed.append(full[row])
                        continue
                    # Copied as far as the widest parent of the same grain among the moved.
                    group = int(widths[parent]) // grain
                    taken = max(
                        int(widths[p])
                        for r, p in enumerate(parents)
                        if p != r and int(widths[p]) // grain == group
                    )
                    mixed = full[row].copy()
                    index: list[Any] = [slice(None)] * 2
                    index[axis - 1] = slice(0, taken)
                    mixed[tuple(index)] = full[parent][tuple(index)]
                    followed.append(mixed)
                expected = followed
            _check(buffers, expected, axis)


def test_a_reserved_buffer_keeps_its_memory_as_it_changes() -> None:
    rng = np.random.default_rng(0)
    buffers = RowBuffers(width_axis=2, grain=4)
    buffers.reserve(8, 16)
    buffers.append({"x": _rows(2, 5, 2, rng)})
    base = buffers.arrays["x"].base
    buffers.append({"x": _rows(3, 9, 2, rng)})  # wider, and more rows: still within
    buffers.resize(4)
    buffers.keep(np.array([0, 2, 4]))
    buffers.put(np.array([1]), {"x": _rows(1, 14, 2, rng)})
    assert buffers.arrays["x"].base is base  # laid out again in place, never reallocated
    assert buffers.width == 16


def test_widening_rounds_to_the_grain_but_not_past_the_widest_reserved() -> None:
    """A lane reserves its widest dialogue (272 with dialogsum-tiny's tail): a widening rounds
    up to the grain (64) only as far as that, since every step reads the whole width."""
    rng = np.random.default_rng(0)
    buffers = RowBuffers(width_axis=1, grain=64)
    buffers.reserve(4, 272)
    buffers.append({"x": _rows(1, 100, 1, rng)})
    assert buffers.width == 128  # rounded up to the grain
    buffers.append({"x": _rows(1, 260, 1, rng)})
    assert buffers.width == 272  # not 320
    # Past the widest reserved (a prompt-tuned adapter's prompt is not counted there), widths
    # round up again: each widening moves every row, so not one per few positions.
    buffers.append({"x": _rows(1, 280, 1, rng)})
    assert buffers.width == 320
    buffers.append({"x": _rows(1, 290, 1, rng)})
    assert buffers.width == 320
    unreserved = RowBuffers(width_axis=1, grain=64)
    unreserved.append({"x": _rows(1, 100, 1, rng)})
    unreserved.append({"x": _rows(1, 260, 1, rng)})
    assert unreserved.width == 320
