"""Decoder steps at a position of each row's own: what continuous batching needs to stay exact.

The exported decoder-with-past graph appends each step's key and value to a self-attention
cache that every row of the batch has at the same length, and derives the query's position
(and its relative-position bias) from that length. Rows that joined the decode at different
steps have caches of different lengths, so they could not share a step.

:func:`slot_self_attention` rewrites the graph (in memory, when a predictor loads an export) so
that the cache is a buffer of ``capacity`` slots per row, kept by the predictor (:mod:`.lanes`):

- a step attends to the buffer followed by its own new key and value, and returns only the
  new key and value, which the predictor writes into the buffer at the row's position: nothing
  else of the cache is copied out. The buffer is read in place, not appended to: the scores
  are the buffer's (one MatMul over it) followed by the new key's, and the output is the
  buffer's weighted values plus the new value times its weight;
- the relative-position bias and the mask come in as input ``self_attention_bias`` (rows x
  heads x 1 x capacity + 1), which :class:`PositionBias` computes per row from the model's own
  bias table: a slot before the row's position weighs the bias of its distance, every later
  slot is masked, and the new key (after the buffer) weighs the bias of distance 0.

:func:`add_top_log_probs` then has the step return each row's best log-probabilities and their
tokens as well, so beam search needs no second session call per step.

Why each row's numbers do not depend on the others: a row's real keys are always the buffer's
first slots, the capacity is always a multiple of ``SLOT_CHUNK`` (16 floats, the widest vector
a CPU kernel sums in its body), so every real key sits in the kernels' vectorised body at the
same place whatever the capacity, and the step's own key and value are weighed apart, by the
row alone. Masked slots weigh exactly 0. The cross-attention cache
gets the same treatment (``CROSS_ATTENTION_TAIL``). Every decode of the onnxruntime backend
runs this graph (offline ones too), so a summary decoded in a running batch equals the one
decoded alone: the tests and the load benchmarks check it answer by answer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from dialogsum.backends.onnxruntime.shared_cross_attention import readers
from dialogsum.backends.onnxruntime.top_log_probs import top_nodes
from dialogsum.plugin_api import ModelError

#: The input the rewritten graph gains.
SELF_ATTENTION_BIAS = "self_attention_bias"
#: The input saying how many of each row's best log-probabilities to return (see
#: :func:`add_top_log_probs`), and the outputs that hold them.
TOP_K = "top_k"
TOP_WANTED = "top_wanted"
TOP_VALUES = "top_log_prob_values"
TOP_INDICES = "top_log_prob_indices"
#: Masked positions appended to every encoder output before decoding (see
#: ``OnnxPredictor.first_step``); 16 covers the widest vector (AVX-512, 16 floats) a kernel's
#: tail loop can leave.
CROSS_ATTENTION_TAIL = 16
#: The cache buffer's length is always a multiple of this (see the module docstring).
SLOT_CHUNK = 16
#: The Transpose that turns keys (rows x heads x positions x size) for the score MatMul.
KEYS_T = [0, 1, 3, 2]
#: Up to this capacity, PositionBias keeps every position's bias (FLAN-T5-base: 3 MB a capacity),
#: for as many of the most recent capacities as fit in CACHED_BYTES.
CACHED_CAPACITY = 256
CACHED_BYTES = 16 * 2**20


def slot_self_attention(model: Any) -> Any:
    """Rewrite a decoder-with-past ``ModelProto`` in place (see the module docstring); returns
    the decoder's relative-attention bias table (buckets x heads) as a numpy array."""
    from onnx import TensorProto, helper

    graph = model.graph
    consumers = readers(graph)
    inputs = {i.name: i for i in graph.input}
    appends = [
        node
        for node in graph.node
        if node.op_type == "Concat"
        and node.input
        and node.input[0].startswith("past_key_values.")
        and ".decoder." in node.input[0]
        and node.input[0] in inputs
        and node.output[0].startswith("present.")
    ]
    if not appends:
        raise ModelError("The decoder-with-past graph has no self-attention cache to slot.")
    heads = int(inputs[appends[0].input[0]].type.tensor_type.shape.dim[1].dim_value)
    biases: set[str] = set()
    score_adds: list[Any] = []
    identities = []
    for node in appends:
        present, new = node.output[0], node.input[1]
        # The step attends to [buffer, new]; the output is the new key or value alone, which
        # the predictor writes into its buffer at the row's position.
        full = f"slot_full/{present}"
        for consumer in consumers.get(present, []):
            consumer.input[list(consumer.input).index(present)] = full
        node.output[0] = full
        identities.append(helper.make_node("Identity", [new], [present]))
        if present.endswith(".key"):
            # present key -> Transpose -> MatMul(query, keys) -> Add(scores, bias)
            for transpose in consumers.get(present, []):
                for matmul in consumers.get(transpose.output[0], []):
                    if matmul.op_type != "MatMul":
                        continue
                    for add in consumers.get(matmul.output[0], []):
                        if add.op_type == "Add":
                            score_adds.append(add)
                            biases.update(i for i in add.input if i != matmul.output[0])
    if len(score_adds) != len(appends) // 2 or len(biases) != 1:
        raise ModelError(
            "Unexpected self-attention graph in the decoder with past: cannot slot its cache."
        )
    bias = biases.pop()
    for add in score_adds:
        add.input[list(add.input).index(bias)] = SELF_ATTENTION_BIAS
    graph.node.extend(identities)
    for output in graph.output:
        if output.name.startswith("present.") and ".decoder." in output.name:
            dims = output.type.tensor_type.shape.dim
            dims[2].Clear()
            dims[2].dim_value = 1
    graph.input.append(
        helper.make_tensor_value_info(
            SELF_ATTENTION_BIAS, TensorProto.FLOAT, ["batch_size", heads, 1, "slots_and_new"]
        )
    )
    table = _bias_table(graph)
    _prune(graph)  # first: the old bias's nodes also read the appended keys
    _attend_without_appending(graph)
    _prune(graph)
    return table


def _attend_without_appending(graph: Any) -> None:
    """Attend to the buffer and the step's own key and value apart, without appending them.

    The append copied every row's whole buffer at every step, in every layer, for keys and
    values: a tenth of a batched step's node time. Instead the scores are the buffer's (one
    MatMul over it, as before) followed by the new key's, and the output is the buffer's
    weighted values plus the new value times its weight. Each row's numbers still come from
    that row alone. An append whose neighbours are not the expected pattern stays as it is.
    """
    from onnx import helper, numpy_helper

    consumers = readers(graph)
    appends = [
        node
        for node in graph.node
        if node.op_type == "Concat" and node.output[0].startswith("slot_full/")
    ]
    added_before: dict[int | None, list[Any]] = {}
    for append in appends:
        past, new, full = append.input[0], append.input[1], append.output[0]
        users = consumers.get(full, [])
        if len(users) != 1:
            continue
        user = users[0]
        prefix = f"slot_split/{full}"
        if full.endswith(".key") and user.op_type == "Transpose":
            matmuls = consumers.get(user.output[0], [])
            if len(matmuls) != 1 or matmuls[0].op_type != "MatMul":
                continue
            matmul = matmuls[0]
            adds = consumers.get(matmul.output[0], [])
            perm = [list(a.ints) for a in user.attribute if a.name == "perm"]
            if len(adds) != 1 or list(matmul.input)[1:] != [user.output[0]] or perm != [KEYS_T]:
                continue
            user.input[0] = past  # the MatMul now scores the buffer alone
            added_before[id(adds[0])] = [
                helper.make_node("Transpose", [new], [f"{prefix}/new_t"], perm=KEYS_T),
                helper.make_node("MatMul", [matmul.input[0], f"{prefix}/new_t"], [f"{prefix}/s"]),
                helper.make_node(
                    "Concat", [matmul.output[0], f"{prefix}/s"], [f"{prefix}/scores"], axis=-1
                ),
            ]
            adds[0].input[list(adds[0].input).index(matmul.output[0])] = f"{prefix}/scores"
        elif full.endswith(".value") and user.op_type == "MatMul" and user.input[1] == full:
            weights, output = user.input[0], user.output[0]
            user.input[0], user.input[1] = f"{prefix}/w_buffer", past
            user.output[0] = f"{prefix}/buffer"
            added_before[id(user)] = [
                helper.make_node(
                    "Slice",
                    [weights, "slot_split/first", "slot_split/last", "slot_split/axis"],
                    [f"{prefix}/w_buffer"],
                ),
                helper.make_node(
                    "Slice",
                    [weights, "slot_split/last", "slot_split/end", "slot_split/axis"],
                    [f"{prefix}/w_new"],
                ),
            ]
            after = [
                helper.make_node("Mul", [f"{prefix}/w_new", new], [f"{prefix}/new"]),
                helper.make_node("Add", [f"{prefix}/buffer", f"{prefix}/new"], [output]),
            ]
            first = _first_user(graph, output, consumers)
            added_before.setdefault(id(first) if first is not None else None, []).extend(after)
    if not added_before:
        return
    import numpy as np

    graph.initializer.extend(
        numpy_helper.from_array(np.array([value], np.int64), f"slot_split/{name}")
        for name, value in (
            ("first", 0),
            ("last", -1),
            ("end", np.iinfo(np.int64).max),
            ("axis", -1),
        )
    )
    nodes = []
    for node in graph.node:
        nodes += added_before.get(id(node), [])
        nodes.append(node)
    nodes += added_before.get(None, [])  # outputs nothing in the graph reads
    del graph.node[:]
    graph.node.extend(nodes)


def _first_user(graph: Any, name: str, consumers: dict[str, list[Any]]) -> Any:
    """The first node, in graph order, that reads ``name`` (None: only the graph's output)."""
    users = {id(node) for node in consumers.get(name, [])}
    return next((node for node in graph.node if id(node) in users), None)


def add_top_log_probs(model: Any) -> None:
    """Give a decoder-with-past ``ModelProto`` (in place) beam search's per-step selection:
    inputs ``top_wanted`` (a bool) and ``top_k`` (one int64), outputs ``top_log_prob_values``
    and ``top_log_prob_indices`` (rows x 1 x k), each row's ``k`` best log-probabilities, best
    first, ties to the lower token: the LogSoftmax and TopK of ``top_log_probs.onnx``, on the
    step's own logits. Without ``top_wanted`` (greedy steps, which take the logits) both
    outputs are empty and nothing is computed.

    In the step's graph they cost one session call less per step (dialogsum-tiny, 4 rows: 0.72
    against 0.81 ms for the step and the separate call), and give the same numbers: the same
    two operators on the same logits. Computed for greedy steps too, they cost 0.07 ms of a
    4-row step of 0.67 ms; behind the condition, 0.01 ms."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    if not any(output.name == "logits" for output in graph.output):
        raise ModelError("The decoder-with-past graph has no logits output.")
    graph.input.extend(
        [
            helper.make_tensor_value_info(TOP_WANTED, TensorProto.BOOL, []),
            helper.make_tensor_value_info(TOP_K, TensorProto.INT64, [1]),
        ]
    )
    outputs = [
        helper.make_tensor_value_info(name, kind, None)
        for name, kind in (("values", TensorProto.FLOAT), ("indices", TensorProto.INT64))
    ]
    computed = helper.make_graph(
        top_nodes("logits", TOP_K, "values", "indices"),
        "top_log_probs",
        [],
        outputs,
    )
    empty = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], [name], value=numpy_helper.from_array(np.zeros((0, 1, 0), kind))
            )
            for name, kind in (("values", np.float32), ("indices", np.int64))
        ],
        "no_top_log_probs",
        [],
        outputs,
    )
    graph.node.append(
        helper.make_node(
            "If", [TOP_WANTED], [TOP_VALUES, TOP_INDICES], then_branch=computed, else_branch=empty
        )
    )
    graph.output.extend(
        [
            helper.make_tensor_value_info(TOP_VALUES, TensorProto.FLOAT, ["batch_size", 1, "k"]),
            helper.make_tensor_value_info(TOP_INDICES, TensorProto.INT64, ["batch_size", 1, "k"]),
        ]
    )


def _bias_table(graph: Any) -> Any:
    """The decoder's relative-attention bias (buckets x heads), from the graph's lookup of it:
    a float initializer, or one that quantization replaced by int8 and a DequantizeLinear
    (undone here as onnxruntime does it, in float32)."""
    import numpy as np
    from onnx import numpy_helper

    values = {i.name: i for i in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    for node in graph.node:
        if node.op_type != "Gather" or "relative_attention_bias" not in node.name + node.input[0]:
            continue
        source = node.input[0]
        if source in values:
            return numpy_helper.to_array(values[source]).astype(np.float32)
        dequantize = producers.get(source)
        if dequantize is not None and dequantize.op_type == "DequantizeLinear":
            quantized, scale, *zero = (
                numpy_helper.to_array(values[name]) for name in dequantize.input if name
            )
            offset = zero[0].astype(np.int32) if zero else np.int32(0)
            return ((quantized.astype(np.int32) - offset).astype(np.float32)) * scale.astype(
                np.float32
            )
    raise ModelError("The decoder-with-past graph has no relative-attention bias table.")


def _prune(graph: Any) -> None:
    """Drop the nodes (and initializers) nothing reads any more: the old bias and mask."""
    needed = {o.name for o in graph.output}
    kept: list[Any] = []
    for node in reversed(list(graph.node)):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    initializers = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


@dataclass(frozen=True)
class PositionBias:
    """T5's unidirectional relative-position bias, per row at its own position.

    ``table`` is the model's bias (buckets x heads); ``max_distance`` its config's
    ``relative_attention_max_distance``.
    """

    table: Any
    max_distance: int
    #: Every position's feed for a capacity (see :meth:`feeds`), for the last few capacities.
    _by_capacity: dict[int, Any] = field(default_factory=dict, compare=False, repr=False)
    _lock: Any = field(default_factory=threading.Lock, compare=False, repr=False)

    def bucket(self, distance: Any) -> Any:
        """T5's bucket (``bidirectional=False``) of each query-minus-key ``distance`` >= 0, in
        float32 as transformers computes it."""
        import numpy as np

        buckets = self.table.shape[0]
        exact = buckets // 2
        distance = np.asarray(distance, dtype=np.int64)
        scaled = (
            np.log(np.maximum(distance, 1).astype(np.float32) / np.float32(exact))
            / np.float32(np.log(self.max_distance / exact))
            * np.float32(buckets - exact)
        )
        large = exact + scaled.astype(np.int64)
        large = np.minimum(large, buckets - 1)
        return np.where(distance < exact, distance, large)

    def feeds(self, positions: Any, capacity: int) -> Any:
        """``self_attention_bias`` for rows at ``positions`` (the real keys each has in its
        buffer of ``capacity``): slot ``j`` below a row's position weighs the bias of its
        distance, later slots are masked, and the step's own key (after the buffer) weighs
        the bias of distance 0."""
        import numpy as np

        positions = np.asarray(positions, dtype=np.int64)
        if capacity > CACHED_CAPACITY:
            return self._computed(positions, capacity)
        # A lane's capacity changes a chunk at a time, so every position's feed is computed
        # once per capacity and rows pick theirs: computing them at every step was a tenth
        # of dialogsum-tiny's step. Lanes of several beam counts take turns, each at its own
        # capacity: the feeds of the most recent capacities are kept, up to CACHED_BYTES.
        with self._lock:
            every = self._by_capacity.pop(capacity, None)
            if every is not None:
                self._by_capacity[capacity] = every  # the most recently used go last
            else:
                every = self._computed(np.arange(capacity + 1), capacity)
                held = sum(kept.nbytes for kept in self._by_capacity.values())
                while self._by_capacity and held + every.nbytes > CACHED_BYTES:
                    held -= self._by_capacity.pop(next(iter(self._by_capacity))).nbytes
                self._by_capacity[capacity] = every
        return every[positions]

    def _computed(self, positions: Any, capacity: int) -> Any:
        import numpy as np

        slots = np.arange(capacity + 1)
        distance = positions[:, None] - slots[None, :]
        distance[:, capacity] = 0
        visible = distance > 0
        visible[:, capacity] = True
        values = self.table[self.bucket(np.maximum(distance, 0))]  # rows x slots x heads
        bias = np.where(visible[:, :, None], values, np.finfo(np.float32).min)
        return np.ascontiguousarray(bias.transpose(0, 2, 1)[:, :, None, :], dtype=np.float32)
