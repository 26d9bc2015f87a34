"""Planning a run checks what a method's prepare() returns: its slips name the method, and the
run folder stays reusable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import dialogsum
from dialogsum import PluginError, Summarizer

from ..plugin_layer.fakes import builtins_manager, plugin


class _Slip(dialogsum.FinetuneMethod):
    """A method whose prepare() makes an author's usual slips."""

    default_learning_rate = 1e-3

    def __init__(self, name: str, slip: str) -> None:
        self.name, self.slip = name, slip

    def prepare(self, model: Any, options: Any, *, tokenizer: Any) -> Any:
        if self.slip == "forgot return":
            model.lm_head.requires_grad_(True)
            return None
        model.requires_grad_(False)  # "freezes everything"
        return model


@pytest.mark.parametrize(
    ("slip", "message"),
    [
        ("forgot return", "returned NoneType, not the torch.nn.Module"),
        ("froze everything", "left no parameter trainable"),
    ],
)
def test_prepare_slips_name_the_method_and_leave_the_run_folder_reusable(
    tiny_model_dir: Path,
    few_examples,
    tmp_path: Path,
    slip: str,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    manager = builtins_manager()
    method = _Slip("slippy", slip)
    manager.register(plugin(register_methods=lambda register: register(method)), name="slips")
    base = Summarizer.from_pretrained(
        tiny_model_dir, plugins=manager, backend_options={"progress": False}
    )
    run = tmp_path / "run"
    training = {"max_steps": 1, "progress": False}
    with pytest.raises(PluginError, match=f"Method 'slippy'.*{message}"):
        base.finetune(few_examples, method="slippy", output_dir=run, training=training)
    assert not (run / "checkpoints").exists()  # a rerun is not told the folder is taken
    tuned = base.finetune(few_examples, method="full", output_dir=run, training=training)
    assert tuned.method == "full"
