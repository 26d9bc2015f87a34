"""One cross-attention cache per dialogue, not per beam, in the exported decoder.

Beam search runs ``items x beams`` decoder rows, and the exported decoder-with-past graph takes
one cross-attention key and value cache per row, so every beam of a dialogue carried its own
copy of the same encoder keys and values. Reading those copies is most of a decoder step's
work in a batch (for FLAN-T5-base, 74 KB per encoder position and row, 12 layers), and a
batch of beams read them ``beams`` times over.

:func:`share_cross_attention` rewrites each cross-attention of the graph so that the cache and
the encoder mask have one row per item while the decoder's own rows stay ``items x beams``
(item-major, as beam search lays them out). The ``beams`` queries of an item are stacked as the
rows of one attention over that item's keys and values: the same products, read once. Greedy
decoding is the case ``beams = 1``. The manifest's ``cross_attention = "item"`` tells the
predictor to feed the graph that way; exports written before keep ``"row"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dialogsum.plugin_api import ModelError

DECODER_WITH_PAST = "decoder_with_past_model.onnx"


def share_cross_attention(folder: Path) -> int:
    """Rewrite the decoder-with-past graph in ``folder`` in place; returns the layers changed."""
    import onnx

    path = folder / DECODER_WITH_PAST
    model = onnx.load(str(path))
    layers = _rewrite(model.graph)
    onnx.save(model, str(path))
    return layers


def readers(graph: Any) -> dict[str, list[Any]]:
    """Each tensor name of ``graph`` and the nodes that read it, in graph order."""
    found: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def _rewrite(graph: Any) -> int:
    from onnx import helper

    consumers = readers(graph)
    keys = sorted(
        (i.name for i in graph.input if i.name.endswith(".encoder.key")),
        key=lambda name: int(name.split(".")[1]),
    )
    if not keys:
        raise ModelError(f"{DECODER_WITH_PAST} has no cross-attention cache inputs to share.")
    # The queries' new shape [items, -1, heads, head size], from the first layer's cache
    # [items, heads, length, head size].
    shape_nodes = [
        helper.make_node("Shape", [keys[0]], ["share_cache_shape"]),
        helper.make_node("Gather", ["share_cache_shape", "share_item_axis"], ["share_items"]),
        helper.make_node("Gather", ["share_cache_shape", "share_rest_axes"], ["share_rest"]),
        helper.make_node(
            "Concat",
            ["share_items", "share_minus_one", "share_rest"],
            ["share_query_shape"],
            axis=0,
        ),
        # The attention's output shape [items * beams, 1, heads * head size].
        helper.make_node("Gather", ["share_cache_shape", "share_head_axis"], ["share_heads"]),
        helper.make_node("Gather", ["share_cache_shape", "share_size_axis"], ["share_size"]),
        helper.make_node("Mul", ["share_heads", "share_size"], ["share_inner"]),
        helper.make_node(
            "Concat",
            ["share_minus_one", "share_one", "share_inner"],
            ["share_output_shape"],
            axis=0,
        ),
    ]
    inserted: dict[str, list[Any]] = {}
    for layer, key in enumerate(keys):
        transposes = [
            node
            for node in consumers.get(key, [])
            if node.op_type == "Transpose" and list(_perm(node)) == [0, 1, 3, 2]
        ]
        if len(transposes) != 1:
            raise ModelError(f"Unexpected cross-attention graph around {key}: cannot share it.")
        matmuls = [n for n in consumers.get(transposes[0].output[0], []) if n.op_type == "MatMul"]
        if len(matmuls) != 1 or matmuls[0].input[1] != transposes[0].output[0]:
            raise ModelError(f"Unexpected cross-attention graph around {key}: cannot share it.")
        scores = matmuls[0]
        query = scores.input[0]  # [items * beams, heads, 1, size]
        # [B, H, 1, D] has the memory layout of [B, 1, H, D], that is [I, beams, H, D]:
        # a reshape and a transpose give [I, H, beams, D], one row of queries per beam.
        stacked, moved = f"share{layer}_queries", f"share{layer}_by_item"
        inserted.setdefault(scores.name, []).extend(
            [
                helper.make_node("Reshape", [query, "share_query_shape"], [stacked]),
                helper.make_node("Transpose", [stacked], [moved], perm=[0, 2, 1, 3]),
            ]
        )
        scores.input[0] = moved
        # The scores [I, H, beams, L] take the item's mask bias [I, H, 1, L] by broadcasting.
        # The weighted values [I, H, beams, D] are transposed by the graph's own next step to
        # [I, beams, H, D], which has the memory layout of [B, 1, H, D]: its reshape to the
        # attention's output [B, 1, H * D] only needs a shape that does not copy dimension 0.
        value = key.replace(".key", ".value")
        weighted = [
            n for n in consumers.get(value, []) if n.op_type == "MatMul" and n.input[1] == value
        ]
        after = [n for w in weighted for n in consumers.get(w.output[0], [])]
        if len(after) != 1 or after[0].op_type != "Transpose" or _perm(after[0]) != [0, 2, 1, 3]:
            raise ModelError(f"Unexpected cross-attention graph around {value}: cannot share it.")
        reshapes = [n for n in consumers.get(after[0].output[0], []) if n.op_type == "Reshape"]
        if len(reshapes) != 1:
            raise ModelError(f"Unexpected cross-attention graph around {value}: cannot share it.")
        reshapes[0].input[1] = "share_output_shape"
    nodes = []
    for node in graph.node:
        if node.name in inserted:
            nodes.extend(inserted.pop(node.name))
        nodes.append(node)
    # The shape nodes go first: they depend on a graph input only.
    del graph.node[:]
    graph.node.extend([*shape_nodes, *nodes])
    graph.initializer.extend(_constants())
    return len(keys)


def _perm(node: Any) -> list[int]:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == "perm":
            return list(helper.get_attribute_value(attribute))
    return []


def _constants() -> list[Any]:
    import numpy as np
    from onnx import numpy_helper

    return [
        numpy_helper.from_array(np.array([0], np.int64), "share_item_axis"),
        numpy_helper.from_array(np.array([1, 3], np.int64), "share_rest_axes"),
        numpy_helper.from_array(np.array([-1], np.int64), "share_minus_one"),
        numpy_helper.from_array(np.array([1], np.int64), "share_one"),
        numpy_helper.from_array(np.array([1], np.int64), "share_head_axis"),
        numpy_helper.from_array(np.array([3], np.int64), "share_size_axis"),
    ]
