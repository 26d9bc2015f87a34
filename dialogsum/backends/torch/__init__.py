"""The ``torch`` backend: serve a saved model (or hub id) with PyTorch, on CUDA when present."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field

from dialogsum.plugin_api import (
    BackendError,
    InferenceBackend,
    Options,
    Predictor,
    TorchModel,
    hookimpl,
    load_model,
    require,
)


class TorchOptions(Options):
    """Where and how the torch backend runs."""

    device: str | None = Field(
        None, description="'cpu', 'cuda', 'cuda:1'; default: CUDA if present."
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="auto: bfloat16 on a CUDA GPU that supports it, else float32."
    )
    base_model: str | None = Field(
        None,
        description="For an adapter folder: load its base from here instead of the recorded one.",
    )
    progress: bool = Field(True, description="Show a progress bar over batches.")


class TorchBackend(InferenceBackend):
    """Generate with transformers' ``generate`` on PyTorch."""

    name = "torch"
    Options = TorchOptions
    serves_torch_models = True

    def load(self, model_dir: Path | str, options: TorchOptions) -> Predictor:
        """Load ``model_dir`` (a folder save() wrote, or a hub id) for summarizing."""
        require(("torch", "transformers", "peft"), extra="train", purpose="The torch backend")
        import torch

        from dialogsum.backends.torch.torch_predictor import TorchPredictor

        device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(
                f"device={device!r} was asked for, but PyTorch sees no CUDA GPU here; use "
                f"device='cpu' or install a CUDA build of torch."
            )
        loaded = load_model(model_dir, base_model=options.base_model, device=device)
        if resolve_dtype(options.dtype, device) == "bfloat16":
            # T5 was pre-trained in bf16: it keeps its range, unlike fp16, which overflows.
            loaded.model.to(torch.bfloat16)
        return TorchPredictor(loaded, progress=options.progress)

    def from_torch_model(self, model: TorchModel, options: TorchOptions) -> Predictor:
        """Serve a model held in memory (freshly tuned or merged), where its weights are."""
        from dialogsum.backends.torch.torch_predictor import TorchPredictor

        return TorchPredictor(model, progress=options.progress)


def resolve_dtype(dtype: str, device: str) -> str:
    """The dtype to serve in: ``auto`` is bfloat16 on a CUDA GPU that supports it."""
    import torch

    if dtype != "auto":
        return dtype
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return "bfloat16" if cuda and torch.cuda.is_bf16_supported() else "float32"


@hookimpl
def register_backends(register: Callable[[InferenceBackend], None]) -> None:
    """Register the ``torch`` backend."""
    register(TorchBackend())
