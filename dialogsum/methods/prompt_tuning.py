"""Prompt tuning through peft: a learned soft prompt prepended to every input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from dialogsum.plugin_api import OTHER_NAMES, FinetuneMethod, Options, hookimpl


class PromptTuningOptions(Options):
    """Soft-prompt settings."""

    num_virtual_tokens: int = Field(
        20,
        gt=0,
        description="Length of the learned soft prompt.",
        json_schema_extra={OTHER_NAMES: ["virtual_tokens", "n_tokens"]},
    )
    init_text: str | None = Field(
        None,
        min_length=1,
        description="Initialise the soft prompt from this text's embeddings (default: random).",
        json_schema_extra={OTHER_NAMES: ["prompt_tuning_init_text"]},
    )


class PromptTuning(FinetuneMethod):
    """Learn only ``num_virtual_tokens`` input embeddings; the model itself stays frozen."""

    name = "prompt_tuning"
    Options = PromptTuningOptions
    # Soft prompts need far larger steps than weights (Lester et al. used 0.3 with Adafactor).
    default_learning_rate = 3e-2

    def prepare(self, model: Any, options: PromptTuningOptions, *, tokenizer: Any) -> Any:
        """Wrap ``model`` in a peft prompt-tuning model.

        ``tokenizer`` embeds ``init_text``.
        """
        from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

        config = PromptTuningConfig(
            task_type=TaskType.SEQ_2_SEQ_LM,
            num_virtual_tokens=options.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.RANDOM,
        )
        peft_model = get_peft_model(model, config)
        if options.init_text is not None:
            _init_from_text(peft_model, tokenizer, options.init_text)
        return peft_model


def _init_from_text(peft_model: Any, tokenizer: Any, text: str) -> None:
    """Copy the embeddings of ``text`` (repeated or cut to fit) into the soft prompt.

    peft's own text initialisation reloads the tokenizer by name, which fails for models built
    in memory or when offline; the tokenizer is at hand here, so it is used directly.
    """
    import torch

    from dialogsum.plugin_api import ConfigError

    if tokenizer is None:
        raise ConfigError(
            "Invalid options for method 'prompt_tuning': init_text needs the tokenizer."
        )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(
            f"Invalid options for method 'prompt_tuning': init_text {text!r} has no tokens."
        )
    encoder = peft_model.prompt_encoder[peft_model.active_adapter]
    # peft sizes the table num_virtual_tokens x submodules (2 for seq2seq); fill every row.
    rows = encoder.embedding.weight.shape[0]
    ids = (ids * (rows // len(ids) + 1))[:rows]
    embeddings = peft_model.get_input_embeddings()
    with torch.no_grad():
        values = embeddings(torch.tensor(ids, device=embeddings.weight.device)).detach().clone()
        encoder.embedding.weight.copy_(values.to(encoder.embedding.weight.dtype))


@hookimpl
def register_methods(register: Callable[[FinetuneMethod], None]) -> None:
    """Register the ``prompt_tuning`` method."""
    register(PromptTuning())
