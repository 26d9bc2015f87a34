"""LoRA slots in an exported graph: adapters fed at run time, chosen per row, batch-invariant.

For every adapted linear module (a "slot": ``encoder.block.0.layer.0.SelfAttention.q``) whose
``y = x W`` is a MatMul of the exported graph, the graph gains the low-rank branch

    y' = x W + ((x A) * mask) B

where ``A`` (inputs x R) and ``B`` (R x outputs) are graph inputs (``lora.<slot>.A``, with its
column scales ``lora.<slot>.A_scale``, and ``lora.<slot>.B``), and ``mask`` (rows x 1 x R), the
input ``lora_mask``, is shared by the slots of a graph. At run time the predictor feeds, for the
adapters of a batch, their matrices side by side (R is the sum of their ranks) and, per row, a
mask of ones over its own adapter's columns and zeros elsewhere: a row gets exactly its
adapter's ``x A_i B_i``, rows of different adapters share one model call, and a row of the base
model has an all-zero mask. The base weights ``W`` are untouched (int8 quantization applies to
them as to any export).

The branch is computed in int8, the way :mod:`.quantize` computes the base: each row of ``x``
and of ``(x A) * mask`` is quantized with its own scale, ``A`` per column and ``B`` as rows
normalised to 1 (their scale folded into ``A``'s columns, see :mod:`.adapter_tables`). Integer
products are exact, so a row's result is bit for bit the same whatever the batch: its size,
the other adapters in it, where its adapter's columns sit. float32 MatMuls are not: onnxruntime's
CPU kernels change their summation order with the matrix sizes and the thread split.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dialogsum.backends.onnxruntime.export_files import LORA_MASK, ONNX_FILES, slot_inputs
from dialogsum.backends.onnxruntime.quantize import graph_opset, row_constants, row_quantize
from dialogsum.plugin_api import ModelError

#: An exported linear module's MatMul: an optional stack prefix, then the module path.
_NODE = re.compile(
    r"^/(?:(encoder|decoder)/)?(block\.\d+/layer\.\d+/[A-Za-z]+/[A-Za-z0-9_]+)/MatMul$"
)


def module_slot(node_name: str, stack: str) -> str | None:
    """The slot a MatMul node computes (``encoder.block.0...q``), or None for other nodes.

    ``stack`` is the graph's own stack ("encoder" or "decoder"), for graphs whose node names do
    not repeat it (optimum's encoder graph).
    """
    found = _NODE.match(node_name)
    if found is None:
        return None
    return f"{found.group(1) or stack}.{found.group(2).replace('/', '.')}"


def add_lora_slots(folder: Path, modules: set[str]) -> dict[str, list[str]]:
    """Give each graph in ``folder`` a slot for every linear module named in ``modules`` (the
    leaf names, e.g. ``{"q", "v"}``); returns each graph's slots, in graph order."""
    import onnx

    slots: dict[str, list[str]] = {}
    for name in ONNX_FILES:
        path = folder / name
        model = onnx.load(str(path))
        stack = "encoder" if name.startswith("encoder") else "decoder"
        slots[name] = _rewrite(model, stack, modules)
        onnx.save(model, str(path))
    if not any(slots.values()):
        raise ModelError(
            f"The exported graphs have no linear module named {', '.join(sorted(modules))}; "
            f"adapters for them cannot be served unmerged."
        )
    return slots


def _rewrite(model: Any, stack: str, modules: set[str]) -> list[str]:
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    opset = graph_opset(model)
    weights = {tensor.name: tensor for tensor in graph.initializer}
    nodes: list[Any] = []
    slots: list[str] = []
    renamed: dict[str, str] = {}
    quantized: dict[str, tuple[str, str]] = {}  # q, k and v read one input: quantized once
    for node in graph.node:
        # A node after an adapted MatMul reads the output with the low-rank branch added.
        for index, value in enumerate(node.input):
            if value in renamed:
                node.input[index] = renamed[value]
        slot = module_slot(node.name, stack) if node.op_type == "MatMul" else None
        weight = weights.get(node.input[1]) if slot else None
        if slot is None or slot.rsplit(".", 1)[1] not in modules or weight is None:
            nodes.append(node)
            continue
        prefix = f"lora{len(slots)}"
        source = node.input[0]
        if source not in quantized:
            # Before the base's MatMul: int8 quantization then finds the input quantized
            # already and reuses it for the base weights (one quantization per input).
            quantizing, rows, row_scale = row_quantize(source, f"{prefix}_x", opset)
            nodes += quantizing
            quantized[source] = (rows, row_scale)
        nodes.append(node)
        inputs, outputs = (int(d) for d in weight.dims)
        down, down_scale, up = slot_inputs(slot)
        graph.input.extend(
            [
                helper.make_tensor_value_info(down, TensorProto.INT8, [inputs, "lora_rank"]),
                helper.make_tensor_value_info(down_scale, TensorProto.FLOAT, ["lora_rank"]),
                helper.make_tensor_value_info(up, TensorProto.INT8, ["lora_rank", outputs]),
            ]
        )
        rows, row_scale = quantized[source]
        masking, masked_rows, masked_scale = row_quantize(f"{prefix}_masked", f"{prefix}_h", opset)
        nodes += [
            _int8_matmul(rows, down, down_scale, f"{prefix}_down_raw"),
            helper.make_node("Mul", [f"{prefix}_down_raw", row_scale], [f"{prefix}_down"]),
            helper.make_node("Mul", [f"{prefix}_down", LORA_MASK], [f"{prefix}_masked"]),
            *masking,
            _int8_matmul(masked_rows, up, "rowq_step", f"{prefix}_up_raw"),
            helper.make_node("Mul", [f"{prefix}_up_raw", masked_scale], [f"{prefix}_up"]),
            helper.make_node("Add", [node.output[0], f"{prefix}_up"], [f"{prefix}_out"]),
        ]
        renamed[node.output[0]] = f"{prefix}_out"
        slots.append(slot)
    for output in graph.output:
        if output.name in renamed:  # never the case for T5's projections
            raise ModelError(f"The graph's output {output.name} is an adapted projection.")
    if slots:
        graph.input.append(
            helper.make_tensor_value_info(
                LORA_MASK, TensorProto.FLOAT, ["lora_rows", 1, "lora_rank"]
            )
        )
        graph.initializer.extend(
            numpy_helper.from_array(value, name)
            for name, value in row_constants(opset).items()
            if name not in weights
        )
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    del graph.node[:]
    graph.node.extend(nodes)
    return slots


def _int8_matmul(rows: str, weight: str, weight_scale: str, output: str) -> Any:
    from onnx import helper

    return helper.make_node(
        "MatMulIntegerToFloat",
        [rows, weight, "rowq_step", weight_scale, "rowq_zero", "rowq_weight_zero"],
        [output],
        domain="com.microsoft",
    )
