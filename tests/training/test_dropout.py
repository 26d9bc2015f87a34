"""What "the same model as one process" promises, exactly, with and without dropout.

Batches and the loss are independent of the launch layout (processes x per-device batch x
accumulation steps; tests/training/test_distributed.py launches real processes). Dropout masks are not:
each forward pass draws them from the process's generator in the order and shapes its batch
has, so another layout draws other masks. The promise, as docs/distributed.md states it:

- without dropout (the model's ``dropout_rate`` and the method's own dropout at 0), any layout
  with the same global batch trains to the same weights, within float rounding;
- with dropout (FLAN-T5 ships with 0.1), the same command and seed train to the same weights,
  bit for bit; another layout trains to another draw of the same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dialogsum import Summarizer

STEPS = 3


def lora_weights(
    model_dir: Path, few_examples: Any, batch: int, accumulation: int
) -> dict[str, Any]:
    """The LoRA weights after STEPS steps of a global batch of 4, laid out as asked."""
    base = Summarizer.from_pretrained(model_dir, backend_options={"progress": False})
    tuned = base.finetune(
        few_examples,
        method="lora",
        options={"r": 4, "dropout": 0.0},
        training={
            "max_steps": STEPS,
            "batch_size": batch,
            "gradient_accumulation_steps": accumulation,
            "learning_rate": 1e-2,
            "seed": 5,
            "progress": False,
            "save_strategy": "no",
        },
        data={"max_source_length": 96, "max_target_length": 32},
    )
    return {
        name: parameter.detach().clone()
        for name, parameter in tuned.model.named_parameters()
        if "lora_" in name
    }


def largest_difference(first: dict[str, Any], second: dict[str, Any]) -> float:
    assert first.keys() == second.keys() and first
    return max(float((first[name] - second[name]).abs().max()) for name in first)


@pytest.fixture(scope="module")
def dropout_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kit's tiny model, with FLAN-T5's dropout."""
    from dialogsum.training.tiny_models import build_tiny_t5

    return build_tiny_t5(tmp_path_factory.mktemp("models") / "tiny-dropout", dropout_rate=0.1)


def test_without_dropout_another_layout_trains_to_the_same_weights(
    tiny_model_dir: Path, few_examples: Any
) -> None:
    one_batch = lora_weights(tiny_model_dir, few_examples, batch=4, accumulation=1)
    accumulated = lora_weights(tiny_model_dir, few_examples, batch=2, accumulation=2)
    assert largest_difference(one_batch, accumulated) < 1e-5


def test_with_dropout_the_same_command_repeats_exactly_and_another_layout_draws_anew(
    dropout_model_dir: Path, few_examples: Any
) -> None:
    first = lora_weights(dropout_model_dir, few_examples, batch=4, accumulation=1)
    again = lora_weights(dropout_model_dir, few_examples, batch=4, accumulation=1)
    assert largest_difference(first, again) == 0.0
    # Not promised, and not so: other shapes and order of forward passes, other masks. If this
    # ever holds, dropout became layout-independent: update docs/distributed.md.
    accumulated = lora_weights(dropout_model_dir, few_examples, batch=2, accumulation=2)
    assert largest_difference(first, accumulated) > 1e-5
