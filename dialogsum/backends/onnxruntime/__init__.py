"""The ``onnxruntime`` backend: export a model to ONNX, and serve an export on CPU without torch.

Two halves kept apart (as optimum keeps ``exporters/onnx`` apart from ``onnxruntime``):

- torch-free, what a serving image needs: :mod:`.options` (load and export options),
  :mod:`.export_files` (the export folder's files),
  :mod:`.onnx_predictor` (onnxruntime sessions, tokenizers), :mod:`.decoding` (greedy and beam
  search in numpy) and :mod:`.top_log_probs` (beam search's log-softmax and top-k graph);
- torch, what exporting needs: :mod:`.export`, :mod:`.shared_cross_attention` (a graph
  rewrite), :mod:`.quantize` and :mod:`.parity`.

This module, the registration, imports neither half until it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dialogsum.backends.onnxruntime.options import OnnxExportOptions, OnnxRuntimeOptions
from dialogsum.plugin_api import (
    ExportJob,
    InferenceBackend,
    Predictor,
    hookimpl,
    install_command,
    require,
)


class OnnxRuntimeBackend(InferenceBackend):
    """Greedy or beam-search generation with onnxruntime, numpy and tokenizers; no torch."""

    name = "onnxruntime"
    Options = OnnxRuntimeOptions
    ExportOptions = OnnxExportOptions
    install_hint = f"{install_command('cpu-serve')} to serve, {install_command('export')} to export"
    exports_adapters = True

    def load(self, model_dir: Path | str, options: OnnxRuntimeOptions) -> Predictor:
        """Load an export folder written by ``export`` / ``dialogsum export``."""
        require(("onnxruntime", "tokenizers"), extra="cpu-serve", purpose="The onnxruntime backend")
        from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor

        return OnnxPredictor(
            model_dir,
            threads=options.threads,
            graph_optimization=options.graph_optimization,
            progress=options.progress,
        )

    def export(self, job: ExportJob, options: OnnxExportOptions) -> None:
        """Merge adapters (or bake a soft prompt), export with optimum, check parity."""
        from dialogsum.backends.onnxruntime.export import export_onnx

        export_onnx(job, options)


@hookimpl
def register_backends(register: Callable[[InferenceBackend], None]) -> None:
    """Register the ``onnxruntime`` backend."""
    register(OnnxRuntimeBackend())
