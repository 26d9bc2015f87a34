"""LoRA through peft: low-rank adapters on the attention projections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator

from dialogsum.plugin_api import (
    OTHER_NAMES,
    FinetuneMethod,
    Options,
    check_target_modules,
    hookimpl,
)


class LoraOptions(Options):
    """LoRA settings; defaults follow the common FLAN-T5 DialogSum recipe (r=32 on q and v)."""

    r: int = Field(
        32,
        gt=0,
        description="Rank of the update matrices.",
        json_schema_extra={OTHER_NAMES: ["rank", "lora_r"]},
    )
    alpha: int = Field(
        32,
        gt=0,
        description="Scaling numerator: updates are scaled by alpha/r.",
        json_schema_extra={OTHER_NAMES: ["lora_alpha"]},
    )
    dropout: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="Dropout on the adapter's input.",
        json_schema_extra={OTHER_NAMES: ["lora_dropout"]},
    )
    target_modules: list[str] = Field(
        default_factory=lambda: ["q", "v"],
        min_length=1,
        description="Module names to adapt; T5 attention uses q, k, v, o and FFN wi_0, wi_1, wo.",
    )
    bias: Literal["none", "all", "lora_only"] = Field(
        "none", description="Which biases train: none, all, or those of adapted modules."
    )

    @field_validator("target_modules", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # The CLI's '--option target_modules=q,v' arrives as the string "q,v".
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


class Lora(FinetuneMethod):
    """Train low-rank adapters; saves a few MB and can be merged into the base weights."""

    name = "lora"
    Options = LoraOptions
    default_learning_rate = 1e-3

    def prepare(self, model: Any, options: LoraOptions, *, tokenizer: Any) -> Any:
        """Wrap ``model`` in a peft LoRA model."""
        from peft import LoraConfig, TaskType, get_peft_model

        check_target_modules(model, options.target_modules, self.name)
        config = LoraConfig(
            task_type=TaskType.SEQ_2_SEQ_LM,
            r=options.r,
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            target_modules=list(options.target_modules),
            bias=options.bias,
        )
        return get_peft_model(model, config)


@hookimpl
def register_methods(register: Callable[[FinetuneMethod], None]) -> None:
    """Register the ``lora`` method."""
    register(Lora())
