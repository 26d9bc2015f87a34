"""What dialogsum needs to know about a peft model, asked in one place.

peft wraps a transformers model; whether a model is such a wrapper, whether its method learns a
prompt (an input) rather than weights, and which module ``generate()`` really runs are questions
the summarizer, training, export and parity all ask. They are answered here by duck typing, so
no module imports peft to find out and a plain transformers model answers "no adapter".
"""

from __future__ import annotations

import copy
from typing import Any

from dialogsum.errors import ConfigError


def is_peft(model: Any) -> bool:
    """Whether ``model`` is a peft wrapper (LoRA, IA3, prompt tuning, a plugin's peft method)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def is_prompt_learning(model: Any) -> bool:
    """Whether ``model``'s active adapter is a learned prompt (prompt tuning, prefix tuning)."""
    return is_peft(model) and bool(model.active_peft_config.is_prompt_learning)


def prompt_length(model: Any) -> int:
    """The number of virtual tokens a prompt-learning adapter prepends (0 for other models)."""
    return int(model.active_peft_config.num_virtual_tokens) if is_prompt_learning(model) else 0


def base_of(model: Any) -> Any:
    """The transformers model under a peft wrapper (``model`` itself when it has none).

    It is the one whose ``generation_config`` and ``config`` ``generate()`` reads.
    """
    return model.get_base_model() if is_peft(model) else model


def merged_copy(model: Any) -> Any:
    """A plain transformers model with ``model``'s adapter folded into the weights.

    ``model`` itself is left unchanged. A model without an adapter is copied as it is.
    """
    duplicate = copy.deepcopy(model)
    return duplicate.merge_and_unload() if is_peft(duplicate) else duplicate


def check_target_modules(model: Any, targets: list[str], method: str) -> None:
    """Fail, listing the model's linear modules, when a target matches no module of ``model``.

    peft would raise too, but with a message about its internals rather than the option the
    user set.
    """
    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [target for target in targets if target not in leaves]
    if missing:
        linear = sorted(
            {
                name.rsplit(".", 1)[-1]
                for name, module in model.named_modules()
                if type(module).__name__ == "Linear"
            }
        )
        raise ConfigError(
            f"Invalid options for method '{method}': target_modules {missing} match no module "
            f"of this model. Linear modules it has: {', '.join(linear)}."
        )
