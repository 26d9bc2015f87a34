"""int8 quantization of an ONNX export whose summaries do not depend on the batch.

onnxruntime's dynamic quantization scales activations per *tensor*: padding and the other
requests in a batch move every row's scale, so the same dialogue got a different int8 summary
alone and inside a batch (87 of 200 DialogSum test dialogues with dialogsum-tiny). Here every
MatMul with a constant weight becomes:

    s = max(|x|, eps) over the row's last axis          (one scale per row)
    q = QuantizeLinear(x / s, 1/127, 128)                (uint8, per-row symmetric)
    y = MatMulIntegerToFloat(q, Wq, 1/127, w_scale) * s  (7-bit weights, per output column)

Integer products are exact and each row's scale is its own, so a row's result is the same,
bit for bit, whatever else is in the batch; the parity gate checks it on every export. The speed
matches dynamic quantization (the same int8 GEMM; docs/benchmarks.md). onnxruntime's tools
(shape inference) and onnx are used here, which the ``export`` extra brings; serving needs
onnxruntime alone (``MatMulIntegerToFloat`` is one of its CPU contrib operators).

The weights use 7 of their 8 bits (``WEIGHT_LEVELS``): on x86 CPUs without VNNI (AVX2 only,
e.g. many AMD EPYC machines), onnxruntime's uint8 x int8 kernel adds two products in 16 bits
with saturation, and 255 x 127 twice does not fit. With full-range weights, rows came out
wrong by thousands (a LoRA branch, whose rows are normalised to the full range, failed its
parity gate there); with weights within +-63 every product pair fits, on every CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dialogsum.backends.onnxruntime.export_files import LORA_MASK, ONNX_FILES, quantize_columns
from dialogsum.backends.onnxruntime.shared_cross_attention import DECODER_WITH_PAST

#: Protobuf's limit: larger models keep their weights in a separate data file.
_SINGLE_FILE_LIMIT = 1_800_000_000


def quantize_int8(folder: Path) -> None:
    """Quantize the export in ``folder`` to batch-invariant int8, in place."""
    for name in ONNX_FILES:
        path = folder / name
        # The decoder with past computes its cross-attention shapes from the cache at run time
        # (shared_cross_attention), which symbolic inference cannot follow; ONNX's own
        # inference finds the same weights. Graphs with LoRA slots (adapter_slots) hold contrib
        # operators that symbolic inference does not follow either.
        skip = name == DECODER_WITH_PAST or _has_slots(path)
        quantize_int8_file(path, path, symbolic_shapes=not skip)


def quantize_int8_file(source: Path, target: Path, *, symbolic_shapes: bool = True) -> None:
    """Write ``source`` (one ONNX graph) to ``target`` with every MatMul of a constant weight
    quantized to batch-invariant int8; ``target`` may be ``source``.

    ``symbolic_shapes=False`` leaves out onnxruntime's symbolic shape inference, for graphs it
    cannot follow (ONNX's own inference still runs).
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.parent / f"{target.name}.pre.onnx"
    # Shape inference and graph clean-up first: every MatMul (the LM head included) then has
    # a constant weight to quantize, and the graph runs faster.
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=not symbolic_shapes)
    try:
        _rewrite(prepared, target)
    finally:
        prepared.unlink(missing_ok=True)
        for leftover in target.parent.glob(f"{target.name}.pre.onnx*"):
            leftover.unlink()


def _has_slots(path: Path) -> bool:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(value.name == LORA_MASK for value in graph.input)


def row_constants(opset: int) -> dict[str, Any]:
    """The constant tensors :func:`row_quantize` and its MatMuls read, by name."""
    import numpy as np

    constants: dict[str, Any] = {
        "rowq_eps": np.array(1e-12, np.float32),
        "rowq_step": np.array(1 / 127, np.float32),
        "rowq_zero": np.array(128, np.uint8),
        "rowq_weight_zero": np.array(0, np.int8),
    }
    if opset >= 18:
        constants["rowq_axes"] = np.array([-1], np.int64)
    return constants


def row_quantize(source: str, prefix: str, opset: int) -> tuple[list[Any], str, str]:
    """Nodes that quantize ``source`` to uint8 with one symmetric scale per row (last axis).

    Returns the nodes, the quantized tensor's name and the per-row scale's name; a
    ``MatMulIntegerToFloat`` over the quantized tensor, multiplied by the scale, gives each
    row's product bit for bit the same in any batch.
    """
    from onnx import helper

    reduce = (
        helper.make_node("ReduceMax", [f"{prefix}_abs", "rowq_axes"], [f"{prefix}_max"], keepdims=1)
        if opset >= 18
        else helper.make_node(
            "ReduceMax", [f"{prefix}_abs"], [f"{prefix}_max"], axes=[-1], keepdims=1
        )
    )
    nodes = [
        helper.make_node("Abs", [source], [f"{prefix}_abs"]),
        reduce,
        helper.make_node("Max", [f"{prefix}_max", "rowq_eps"], [f"{prefix}_s"]),
        helper.make_node("Div", [source, f"{prefix}_s"], [f"{prefix}_unit"]),
        helper.make_node(
            "QuantizeLinear", [f"{prefix}_unit", "rowq_step", "rowq_zero"], [f"{prefix}_q"]
        ),
    ]
    return nodes, f"{prefix}_q", f"{prefix}_s"


def _row_quantized(nodes: Any) -> dict[str, tuple[str, str]]:
    """The inputs :func:`row_quantize` nodes quantize already: input -> (rows, scale)."""
    divisions = {node.output[0]: node for node in nodes if node.op_type == "Div"}
    found = {}
    for node in nodes:
        division = divisions.get(node.input[0]) if node.op_type == "QuantizeLinear" else None
        if division is not None and list(node.input[1:]) == ["rowq_step", "rowq_zero"]:
            found[division.input[0]] = (node.output[0], division.input[1])
    return found


def graph_opset(model: Any) -> int:
    """The default-domain opset of an ONNX model."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)


def _rewrite(source: Path, target: Path) -> None:
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    opset = graph_opset(model)
    constants = row_constants(opset)
    nodes: list[Any] = []
    added: list[Any] = []
    replaced: set[str] = set()
    # input -> (uint8 rows, per-row scale); a graph with LoRA slots has some already.
    row_quantized = _row_quantized(graph.node)
    for node in graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2:
            nodes.append(node)
            continue
        prefix = f"rowq{len(replaced)}_{node.name or 'matmul'}".replace("/", "_")
        matrix = numpy_helper.to_array(weight).astype(np.float32)
        quantized, scale = quantize_columns(matrix)
        added += [
            numpy_helper.from_array(quantized, f"{prefix}_w"),
            numpy_helper.from_array(scale, f"{prefix}_ws"),
        ]
        replaced.add(node.input[1])
        source_name = node.input[0]
        if source_name not in row_quantized:  # q, k and v share one quantized input
            quantizing, rows, row_scale = row_quantize(source_name, prefix, opset)
            nodes += quantizing
            row_quantized[source_name] = (rows, row_scale)
        rows, row_scale = row_quantized[source_name]
        nodes += [
            helper.make_node(
                "MatMulIntegerToFloat",
                [rows, f"{prefix}_w", "rowq_step", f"{prefix}_ws", "rowq_zero", "rowq_weight_zero"],
                [f"{prefix}_y"],
                domain="com.microsoft",
            ),
            helper.make_node("Mul", [f"{prefix}_y", row_scale], [node.output[0]]),
        ]
    kept = [tensor for tensor in graph.initializer if tensor.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(
        [
            *kept,
            *added,
            # A graph with adapter slots has the constants already (adapter_slots).
            *(numpy_helper.from_array(v, k) for k, v in constants.items() if k not in weights),
        ]
    )
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    large = model.ByteSize() > _SINGLE_FILE_LIMIT
    for stale in target.parent.glob(f"{target.name}_data"):
        stale.unlink()  # the fp32 weights' data file, if the export had one
    onnx.save(
        model,
        str(target),
        save_as_external_data=large,
        all_tensors_to_one_file=True,
        location=f"{target.name}_data",
    )
