"""int8 quantization of an export: exact int8 products on every CPU (7-bit weights), and the
libraries it calls stay quiet on the console."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def test_int8_export_logs_no_library_chatter(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("optimum.exporters.onnx")
    command = [
        sys.executable,
        "-m",
        "dialogsum",
        "export",
        "--model",
        str(tiny_model_dir),
        "--output",
        str(tmp_path / "int8"),
        "--quantize",
        "int8",
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "INFO root" not in result.stderr
    assert len(result.stderr.splitlines()) < 15, result.stderr


def _int8_product(rows: Any, weights: Any) -> Any:
    """onnxruntime's MatMulIntegerToFloat of uint8 ``rows`` (zero point 128) by int8
    ``weights``, scales 1: what the export's int8 MatMuls compute."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    inputs, outputs = weights.shape
    constants = {
        "w": weights,
        "one": np.array(1.0, np.float32),
        "ones": np.ones(outputs, np.float32),
        "zero": np.array(128, np.uint8),
        "wzero": np.zeros(outputs, np.int8),
    }
    node = helper.make_node(
        "MatMulIntegerToFloat",
        ["rows", "w", "one", "ones", "zero", "wzero"],
        ["y"],
        domain="com.microsoft",
    )
    graph = helper.make_graph(
        [node],
        "product",
        [helper.make_tensor_value_info("rows", TensorProto.UINT8, [None, inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, outputs])],
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"rows": rows})[0]


def test_int8_products_are_exact_on_this_cpu_with_7_bit_weights() -> None:
    # On x86 without VNNI, onnxruntime adds two uint8 x int8 products in 16 bits with
    # saturation: weights up to 127 overflow there (by thousands); up to 63 never do.
    import numpy as np

    from dialogsum.backends.onnxruntime.export_files import WEIGHT_LEVELS

    rng = np.random.default_rng(0)
    levels = WEIGHT_LEVELS
    weights = rng.integers(-levels, levels + 1, (64, 16)).astype(np.int8)
    weights[:, 0] = levels  # the worst case: every pair at the extremes
    rows = rng.integers(0, 256, (8, 64)).astype(np.uint8)
    rows[0] = 255
    exact = (rows.astype(np.int64) - 128) @ weights.astype(np.int64)
    assert np.array_equal(_int8_product(rows, weights), exact.astype(np.float32))


def test_an_int8_export_and_its_adapters_use_7_bit_weights(multi_adapter_export: Path) -> None:
    import json

    import numpy as np
    import onnx
    from onnx import numpy_helper

    from dialogsum.backends.onnxruntime.adapter_tables import quantize_lora
    from dialogsum.backends.onnxruntime.export_files import ONNX_FILES, WEIGHT_LEVELS

    manifest = json.loads((multi_adapter_export / "dialogsum.json").read_text())
    assert manifest["export"]["backend_data"]["weight_bits"] == 7
    for name in ONNX_FILES:
        graph = onnx.load(str(multi_adapter_export / name)).graph
        initializers = {tensor.name: tensor for tensor in graph.initializer}
        weights = [
            numpy_helper.to_array(initializers[node.input[1]])
            for node in graph.node
            if node.op_type == "MatMulIntegerToFloat" and node.input[1] in initializers
        ]
        assert weights, name
        assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= WEIGHT_LEVELS

    # A LoRA branch: B's rows at the full range before; x A B kept within int8 rounding.
    rng = np.random.default_rng(1)
    down = rng.normal(0, 0.2, (32, 4)).astype(np.float32)
    up = rng.normal(0, 0.04, (4, 32)).astype(np.float32)
    a, a_scale, b = quantize_lora({"slot": (down, up)})["slot"]
    assert np.abs(a.astype(np.int32)).max() <= WEIGHT_LEVELS
    assert np.abs(b.astype(np.int32)).max() <= WEIGHT_LEVELS
    x = rng.normal(0, 1, (3, 32)).astype(np.float32)
    served = (x @ (a * a_scale)) @ (b / 127.0)  # the graph reads B with the scale 1/127
    exact = x @ down @ up
    assert np.abs(served - exact).max() < 0.05 * np.abs(exact).max()


def test_an_int8_export_with_full_range_weights_is_told_to_be_exported_again(
    onnx_export_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json
    import shutil

    from dialogsum.backends.onnxruntime import onnx_predictor

    monkeypatch.setattr(onnx_predictor, "int8_pairs_saturate", lambda: True)
    old = tmp_path / "old"
    shutil.copytree(onnx_export_dir, old)
    manifest_file = old / "dialogsum.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["export"]["backend_data"]["quantize"] = "int8"  # as one written before 7-bit
    manifest["export"]["backend_data"].pop("weight_bits", None)
    manifest_file.write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="dialogsum"):
        onnx_predictor.OnnxPredictor(old, progress=False)
    assert "saturates on this CPU" in caplog.text
    assert f"--output {old} --quantize int8 --overwrite" in caplog.text

    caplog.clear()
    manifest["export"]["backend_data"]["weight_bits"] = 7
    manifest_file.write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="dialogsum"):
        onnx_predictor.OnnxPredictor(old, progress=False)
    assert "saturates" not in caplog.text
