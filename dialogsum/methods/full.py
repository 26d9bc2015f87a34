"""Full fine-tuning: every weight of the model trains."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dialogsum.plugin_api import FinetuneMethod, NoOptions, hookimpl


class FullFinetuning(FinetuneMethod):
    """Update all parameters. Best quality per step, largest memory and checkpoints."""

    name = "full"
    Options = NoOptions
    default_learning_rate = 3e-4  # T5 fine-tunes well with AdamW around 1e-4..1e-3.

    def prepare(self, model: Any, options: Any, *, tokenizer: Any) -> Any:
        """Return the model itself with every parameter trainable."""
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model


@hookimpl
def register_methods(register: Callable[[FinetuneMethod], None]) -> None:
    """Register the ``full`` method."""
    register(FullFinetuning())
