"""The benchmarks reuse the exports an earlier run left, but not one that would measure
something other than what dialogsum now writes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _common() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "benchmarks" / "common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _export(folder: Path, backend: str, data: dict[str, object]) -> Path:
    folder.mkdir()
    manifest = {"export": {"backend": backend, "backend_data": data}}
    (folder / "dialogsum.json").write_text(json.dumps(manifest))
    return folder


def test_an_int8_onnx_export_from_before_7_bit_weights_is_made_again(tmp_path: Path) -> None:
    current = _common().current_export
    assert not current(tmp_path / "missing")
    # Full-range int8 weights saturate on CPUs without VNNI: such an export is not reused.
    assert not current(_export(tmp_path / "old", "onnxruntime", {"quantize": "int8"}))
    assert current(_export(tmp_path / "new", "onnxruntime", {"quantize": "int8", "weight_bits": 7}))
    assert current(_export(tmp_path / "fp32", "onnxruntime", {"prompt_tokens": 0}))
    assert current(_export(tmp_path / "ct2", "ctranslate2", {"quantize": "int8"}))
