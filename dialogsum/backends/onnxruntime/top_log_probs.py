"""Beam search's log-softmax and top-k, run in onnxruntime rather than numpy.

At every step beam search needs each row's best few log-probabilities over the whole
vocabulary: a log-softmax and a partial sort of ``rows x vocabulary`` floats, a large share of a
batched step in numpy (measured in docs/benchmarks.md). The graph is two standard operators; it
ships with the package (``top_log_probs.onnx``, written by :func:`build_top_model`), so serving
needs no ``onnx``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The committed graph: LogSoftmax over the last axis, then TopK (largest, sorted).
TOP_MODEL = Path(__file__).with_name("top_log_probs.onnx")


def top_nodes(logits: str, k: str, values: str, indices: str) -> list[Any]:
    """The two nodes of the selection: LogSoftmax of ``logits`` over the last axis, then its
    ``k`` largest (sorted; on ties the lower index first, as a stable sort). The shipped graph
    and every later decoder step (``step_slots.add_top_log_probs``) run these same nodes, so
    they give the same numbers."""
    from onnx import helper

    return [
        helper.make_node("LogSoftmax", [logits], ["log_probs"], axis=-1),
        helper.make_node("TopK", ["log_probs", k], [values, indices], axis=-1, largest=1, sorted=1),
    ]


def build_top_model() -> bytes:
    """The serialized graph of :data:`TOP_MODEL` (needs the ``onnx`` package).

    Inputs ``logits`` (rows x vocabulary, float32) and ``k`` (one int64); outputs ``values``
    and ``indices`` (rows x k), best first. ONNX's TopK puts the lower index first on ties, as
    a stable sort does.
    """
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        top_nodes("logits", "k", "values", "indices"),
        "dialogsum_top_log_probs",
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["rows", "vocabulary"]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
        ],
        [
            helper.make_tensor_value_info("values", TensorProto.FLOAT, ["rows", "k"]),
            helper.make_tensor_value_info("indices", TensorProto.INT64, ["rows", "k"]),
        ],
    )
    # IR 8 and opset 17 load in every onnxruntime dialogsum supports (1.17 and newer).
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="dialogsum", ir_version=8
    )
    return bytes(model.SerializeToString())


class TopLogProbsSession:
    """``top(logits, k)`` for :mod:`.decoding`, on an onnxruntime session."""

    def __init__(self, options: Any) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(
            TOP_MODEL.read_bytes(), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, logits: Any, k: int) -> tuple[Any, Any]:
        import numpy as np

        feeds = {
            "logits": np.ascontiguousarray(logits, dtype=np.float32),
            "k": np.array([min(k, logits.shape[-1])], dtype=np.int64),
        }
        values, indices = self.session.run(None, feeds)
        return values, indices
