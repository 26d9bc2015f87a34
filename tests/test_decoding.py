"""The numpy decoding helpers: partial top-k selection must equal a full stable sort."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dialogsum.onnx.decoding import _top

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
