"""Shared by the benchmarks: random-weight FLAN-T5 models of the real shapes, and their exports."""

from __future__ import annotations

import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = ROOT.parent / "shared" / "models"
RESULTS = ROOT / "benchmarks" / "results"


def current_export(folder: Path) -> bool:
    """Whether ``folder`` holds an export a run may reuse: one this dialogsum would write.

    Runs reuse the exports an earlier run left in their work folder, but not an int8 ONNX
    export from before its weights were 7-bit: onnxruntime's int8 kernel saturates its
    full-range weights on x86 CPUs without VNNI, and its summaries there are not the ones its
    parity gate checked.
    """
    manifest = folder / "dialogsum.json"
    if not manifest.exists():
        return False
    export = json.loads(manifest.read_text()).get("export") or {}
    data = export.get("backend_data", {})
    stale = export.get("backend") == "onnxruntime" and data.get("quantize") == "int8"
    return not stale or "weight_bits" in data


def config_path(size: str) -> Path:
    """The FLAN-T5 architecture config of ``size`` (small, base, large) in ../shared/models."""
    return SHARED_MODELS / f"flan-t5-{size}.config.json"


def random_model_exports(config: Path, work: Path) -> dict[str, Path]:
    """Save a seeded random-weight model of ``config``'s shape and export it (fp32 and int8).

    Reuses what a previous run left in ``work``. Each export runs dialogsum's parity gate and
    records it in its ``dialogsum.json``. Inputs in the benchmarks are random ids, so the
    tokenizer only has to travel with the export (any ids it has are inside FLAN-T5's vocabulary).
    """
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from dialogsum import Summarizer
    from dialogsum.training.tiny_models import build_tiny_tokenizer

    folders = {"pytorch": work / "pytorch", "fp32": work / "onnx-fp32", "int8": work / "onnx-int8"}
    if (
        all(current_export(folder) or name == "pytorch" for name, folder in folders.items())
        and (folders["pytorch"] / "config.json").exists()
    ):
        return folders
    work.mkdir(parents=True, exist_ok=True)
    if not (folders["pytorch"] / "config.json").exists():
        torch.manual_seed(0)
        model = T5ForConditionalGeneration(T5Config.from_json_file(str(config))).eval()
        model.save_pretrained(folders["pytorch"])
        build_tiny_tokenizer().save_pretrained(folders["pytorch"])
    summarizer = Summarizer.from_pretrained(folders["pytorch"], backend_options={"progress": False})
    for name, quantize in (("fp32", None), ("int8", "int8")):
        if current_export(folders[name]):
            continue
        started = time.perf_counter()
        summarizer.export(folders[name], quantize=quantize, overwrite=True)
        print(f"exported {config.stem} {name} in {time.perf_counter() - started:.0f}s", flush=True)
    return folders
