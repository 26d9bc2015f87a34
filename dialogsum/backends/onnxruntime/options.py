"""The onnxruntime backend's options: loading an export, and the export step."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

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
    lora_modules: list[str] = Field(
        default_factory=lambda: ["q", "v"],
        min_length=1,
        description=(
            "With adapters: the linear modules that get LoRA slots, beside those the exported "
            "adapters adapt (adapters loaded later may adapt these only)."
        ),
    )

    @field_validator("lora_modules", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # '--option lora_modules=q,k,v' arrives as the string "q,k,v".
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value
