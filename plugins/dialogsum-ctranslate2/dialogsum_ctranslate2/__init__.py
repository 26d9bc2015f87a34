"""dialogsum-ctranslate2: export a dialogsum model to CTranslate2 and serve the export on CPU.

A separately installed plugin that registers the ``ctranslate2`` inference backend through the
plugin API only (``register_backends``, ``Options``, ``ExportOptions``, ``load``, ``export``)::

    pip install './plugins/dialogsum-ctranslate2[export]'
    dialogsum export --model runs/lora --backend ctranslate2 --output served-ct2 [--quantize int8]
    dialogsum summarize --model served-ct2          # the manifest names ctranslate2

Like the built-in onnxruntime backend it has two halves, kept apart:

- torch-free, what a serving image needs: :mod:`.options`, :mod:`.export_files` and
  :mod:`.predictor` (ctranslate2 and tokenizers);
- torch, what exporting needs: :mod:`.export` (adapter merging, CTranslate2's converter) and
  :mod:`.parity` (the gate against the PyTorch model).

This module, the registration, imports neither until it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dialogsum.plugin_api import ExportJob, InferenceBackend, Predictor, hookimpl
from dialogsum_ctranslate2.options import CTranslate2ExportOptions, CTranslate2Options

__version__ = "0.2.0"

__all__ = [
    "CTranslate2Backend",
    "CTranslate2ExportOptions",
    "CTranslate2Options",
    "__version__",
    "register_backends",
]


class CTranslate2Backend(InferenceBackend):
    """Greedy or beam-search generation with CTranslate2 and tokenizers; no torch at serve time."""

    name = "ctranslate2"
    Options = CTranslate2Options
    ExportOptions = CTranslate2ExportOptions
    install_hint = (
        "pip install dialogsum-ctranslate2 to serve, 'dialogsum-ctranslate2[export]' to export"
    )

    def load(self, model_dir: Path | str, options: CTranslate2Options) -> Predictor:
        """Serve a folder written by ``export`` / ``dialogsum export --backend ctranslate2``.

        Nothing is converted here: any other folder is refused, saying how to export it.
        """
        # ctranslate2 and tokenizers are this distribution's own dependencies: a missing one
        # is reported by dialogsum with install_hint.
        from dialogsum_ctranslate2.predictor import CTranslate2Predictor

        return CTranslate2Predictor(
            model_dir,
            compute_type=options.compute_type,
            threads=options.threads,
            progress=options.progress,
        )

    def export(self, job: ExportJob, options: CTranslate2ExportOptions) -> None:
        """Merge adapters, convert with CTranslate2's converter, check parity with PyTorch."""
        from dialogsum_ctranslate2.export import export_ctranslate2

        export_ctranslate2(job, options)


@hookimpl
def register_backends(register: Callable[[InferenceBackend], None]) -> None:
    """Register the ``ctranslate2`` backend with dialogsum."""
    register(CTranslate2Backend())
