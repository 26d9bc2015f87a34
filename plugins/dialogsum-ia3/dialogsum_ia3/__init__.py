"""dialogsum-ia3: the IA3 fine-tuning method for dialogsum, as a separately installed plugin.

IA3 ("Infused Adapter by Inhibiting and Amplifying Inner Activations", Liu et al. 2022) learns one
scaling vector per adapted module: keys and values of every attention layer are rescaled, and so
is the input of the feed-forward output projection. That is far fewer trainable parameters than
LoRA (about 0.01% of FLAN-T5-base), and, like LoRA, the vectors can be merged into the weights.

The plugin is discovered through the ``dialogsum`` entry-point group (see ``pyproject.toml``)::

    pip install ./plugins/dialogsum-ia3
    dialogsum train --method ia3 ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dialogsum.plugin_api import FinetuneMethod, Options, check_target_modules, hookimpl
from pydantic import Field, ValidationInfo, field_validator

__version__ = "0.1.0"

__all__ = ["IA3", "IA3Options", "__version__", "register_methods"]


class IA3Options(Options):
    """Which modules IA3 rescales; the defaults are peft's (and the paper's) choice for T5."""

    target_modules: list[str] = Field(
        default_factory=lambda: ["k", "v", "wo"],
        min_length=1,
        description="Modules whose activations are rescaled; T5 has q, k, v, o, wi_0, wi_1, wo.",
    )
    feedforward_modules: list[str] = Field(
        default_factory=lambda: ["wo"],
        description=(
            "The subset of target_modules that are feed-forward layers: their input is rescaled "
            "instead of their output."
        ),
    )

    @field_validator("feedforward_modules")
    @classmethod
    def _feedforward_within_targets(cls, value: list[str], info: ValidationInfo) -> list[str]:
        targets = info.data.get("target_modules")
        if targets is None:  # target_modules itself failed validation and was reported
            return value
        outside = [name for name in value if name not in targets]
        if outside:
            raise ValueError(
                f"{outside} must also be listed in target_modules ({targets}); "
                "feedforward_modules is a subset of target_modules"
            )
        return value


class IA3(FinetuneMethod):
    """Train IA3 scaling vectors; the base model stays frozen and only the vectors are saved."""

    name = "ia3"
    Options = IA3Options
    # IA3's vectors start at 1.0 and need large steps to move: peft's and the paper's recipes use
    # about 3e-3, ten times a typical full fine-tuning rate.
    default_learning_rate = 3e-3

    def prepare(self, model: Any, options: IA3Options, *, tokenizer: Any) -> Any:
        """Wrap ``model`` in a peft IA3 model for sequence-to-sequence training."""
        from peft import IA3Config, TaskType, get_peft_model

        check_target_modules(model, options.target_modules, self.name)
        config = IA3Config(
            task_type=TaskType.SEQ_2_SEQ_LM,
            target_modules=list(options.target_modules),
            feedforward_modules=list(options.feedforward_modules),
        )
        return get_peft_model(model, config)


@hookimpl
def register_methods(register: Callable[[FinetuneMethod], None]) -> None:
    """Register the ``ia3`` method with dialogsum."""
    register(IA3())
