"""The ``onnxruntime`` backend: serve an ONNX export on CPU without torch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from dialogsum.errors import require
from dialogsum.hookspecs import hookimpl
from dialogsum.interfaces import InferenceBackend, Options


class OnnxRuntimeOptions(Options):
    """onnxruntime session settings."""

    threads: int | None = Field(None, gt=0, description="Intra-op threads; default: all cores.")
    graph_optimization: Literal["disabled", "basic", "extended", "all"] = Field(
        "all", description="onnxruntime graph optimisation level."
    )
    progress: bool = Field(True, description="Show a progress bar over batches.")


class OnnxRuntimeBackend(InferenceBackend):
    """Greedy or beam-search generation with onnxruntime, numpy and tokenizers; no torch."""

    name = "onnxruntime"
    Options = OnnxRuntimeOptions

    def load(self, model_dir: Path | str, options: OnnxRuntimeOptions) -> Any:
        """Load an export folder written by ``export`` / ``dialogsum export``."""
        require(("onnxruntime", "tokenizers"), extra="cpu-serve", purpose="The onnxruntime backend")
        from dialogsum.onnx.predictor import OnnxPredictor

        return OnnxPredictor(
            model_dir,
            threads=options.threads,
            graph_optimization=options.graph_optimization,
            progress=options.progress,
        )


@hookimpl
def register_backends(register: Callable[[InferenceBackend], None]) -> None:
    """Register the ``onnxruntime`` backend."""
    register(OnnxRuntimeBackend())
