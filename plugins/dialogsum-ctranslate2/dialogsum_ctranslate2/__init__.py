"""dialogsum-ctranslate2: serve a dialogsum model with CTranslate2 on CPU.

A separately installed plugin that registers the ``ctranslate2`` inference backend through the
documented backend contract only (``register_backends``, an ``InferenceBackend`` subclass with an
``Options`` model and ``load``; it imports nothing of dialogsum but ``dialogsum.plugin_api``)::

    pip install ./plugins/dialogsum-ctranslate2
    dialogsum summarize --model runs/lora/model --backend ctranslate2

``load`` takes a folder dialogsum saved (a full model, a merged one, or a LoRA/IA3 adapter,
which is merged first), converts it with CTranslate2's converter (int8 by default) into a cache
folder, and serves it. Prompt-tuned models are refused: their soft prompt is not a weight
CTranslate2 can hold; export them to ONNX instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field

from dialogsum.plugin_api import InferenceBackend, Options, hookimpl
from dialogsum_ctranslate2.convert import converted_model
from dialogsum_ctranslate2.predictor import CTranslate2Predictor

__version__ = "0.1.0"

__all__ = ["CTranslate2Backend", "CTranslate2Options", "__version__", "register_backends"]


class CTranslate2Options(Options):
    """How the model is converted and run."""

    compute_type: Literal["int8", "int8_float32", "float32"] = Field(
        "int8", description="Weights and computation type (int8: weights and products in int8)."
    )
    threads: int = Field(0, ge=0, description="Threads per translation (0: CTranslate2's default).")
    cache_dir: str | None = Field(
        None,
        description="Where converted models are kept (default: ~/.cache/dialogsum/ctranslate2).",
    )
    base_model: str | None = Field(
        None, description="For an adapter folder: load its base from here instead of the record."
    )
    progress: bool = Field(True, description="Show a progress bar over batches.")


class CTranslate2Backend(InferenceBackend):
    """Greedy or beam-search generation with CTranslate2."""

    name = "ctranslate2"
    Options = CTranslate2Options
    #: What dialogsum tells a user when ``load`` raises ImportError (ctranslate2 is missing).
    install_hint = "pip install dialogsum-ctranslate2 (it brings ctranslate2)"

    def load(self, model_dir: Path | str, options: CTranslate2Options) -> CTranslate2Predictor:
        """Convert ``model_dir`` (once; cached) and load it for summarizing."""
        import ctranslate2  # noqa: F401  # missing: dialogsum reports it with install_hint

        converted = converted_model(
            model_dir,
            compute_type=options.compute_type,
            cache_dir=options.cache_dir,
            base_model=options.base_model,
        )
        return CTranslate2Predictor(
            converted,
            compute_type=options.compute_type,
            threads=options.threads,
            progress=options.progress,
        )


@hookimpl
def register_backends(register: Callable[[InferenceBackend], None]) -> None:
    """Register the ``ctranslate2`` backend with dialogsum."""
    register(CTranslate2Backend())
