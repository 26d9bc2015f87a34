"""The onnxruntime backend's options: loading an export, and the export step."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dialogsum.plugin_api import Options


class OnnxRuntimeOptions(Options):
    """onnxruntime session settings."""

    threads: int | None = Field(None, gt=0, description="Intra-op threads; default: all cores.")
    graph_optimization: Literal["disabled", "basic", "extended", "all"] = Field(
        "all", description="onnxruntime graph optimisation level."
    )
    progress: bool = Field(True, description="Show a progress bar over batches.")


class OnnxExportOptions(Options):
    """Options of the onnxruntime backend's export step."""

    quantize: Literal["int8"] | None = Field(
        None,
        description=(
            "int8: int8 weights, activations quantized per row (summaries do not depend on the "
            "batch); default: fp32."
        ),
    )
