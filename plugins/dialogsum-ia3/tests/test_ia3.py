"""dialogsum-ia3 through dialogsum's public API, as a user of the installed plugin meets it.

The plugin must be installed (``pip install -e plugins/dialogsum-ia3``): these tests use the
process-wide plugin manager, so ``ia3`` is found through its real entry point.

What every method promises (the loss falls, the original is untouched, a save reloads with the
same greedy tokens, a misspelt option names the method and the field) is
:class:`dialogsum.testing.MethodContract`'s battery; the tests below it are IA3's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dialogsum import ConfigError, Example, Summarizer
from dialogsum.testing import MethodContract, registration

import dialogsum_ia3

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TestIA3Contract(MethodContract):
    # The default rate (ten times IA3's 3e-3) lowers the tiny model's loss by about 17%.
    method = "ia3"


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> Summarizer:
    return Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})


def test_ia3_is_discovered_through_its_entry_point() -> None:
    registered = registration("method", "ia3")
    assert isinstance(registered.obj, dialogsum_ia3.IA3)
    # The source is the installed distribution, which only entry-point loading records.
    assert registered.source == f"dialogsum-ia3 {dialogsum_ia3.__version__}"


def test_default_learning_rate_is_larger_than_full_finetuning() -> None:
    ia3 = registration("method", "ia3").obj
    assert ia3.default_learning_rate == pytest.approx(3e-3)
    assert ia3.default_learning_rate > registration("method", "full").obj.default_learning_rate


def test_prepare_trains_only_ia3_vectors_on_the_default_modules(
    tiny_model: Any, tiny_tokenizer: Any
) -> None:
    total = sum(p.numel() for p in tiny_model.parameters())
    prepared = dialogsum_ia3.IA3().prepare(
        tiny_model, dialogsum_ia3.IA3Options(), tokenizer=tiny_tokenizer
    )
    trainable = {name: p for name, p in prepared.named_parameters() if p.requires_grad}
    assert trainable, "IA3 must leave some parameters trainable"
    assert all("ia3_l" in name for name in trainable)
    adapted = {name.split(".ia3_l")[0].rsplit(".", 1)[-1] for name in trainable}
    assert adapted == {"k", "v", "wo"}
    assert sum(p.numel() for p in trainable.values()) < total / 20
    config = prepared.peft_config["default"]
    assert config.peft_type.value == "IA3"
    assert config.task_type.value == "SEQ_2_SEQ_LM"
    assert set(config.feedforward_modules) == {"wo"}


def test_save_writes_an_adapter_only_folder_that_records_its_base(
    base: Summarizer, few_examples: list[Example], tiny_model_dir: Path, tmp_path: Path
) -> None:
    training = {"max_steps": 1, "batch_size": 4, "progress": False, "save_strategy": "no"}
    saved = base.finetune(few_examples, method="ia3", training=training).save(tmp_path / "ia3")

    assert (saved / "adapter_config.json").is_file()
    assert (saved / "adapter_model.safetensors").is_file()
    assert not (saved / "model.safetensors").exists()
    adapter_config = json.loads((saved / "adapter_config.json").read_text())
    assert adapter_config["peft_type"] == "IA3"
    assert Path(adapter_config["base_model_name_or_path"]).resolve() == tiny_model_dir.resolve()
    manifest = json.loads((saved / "dialogsum.json").read_text())
    assert manifest["method"] == "ia3"
    assert manifest["peft"] is True


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"feedforward_modules": ["wi_0"]}, "feedforward_modules"),
        ({"target_modules": ["k", "v"], "feedforward_modules": ["wo"]}, "feedforward_modules"),
        ({"target_modules": []}, "target_modules"),
    ],
)
def test_invalid_ia3_options_name_the_method_and_the_field(
    base: Summarizer, few_examples: list[Example], options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        base.finetune(few_examples, method="ia3", options=options)
    message = str(info.value)
    assert "method 'ia3'" in message
    assert field in message


def test_feedforward_outside_targets_explains_the_subset_rule(
    base: Summarizer, few_examples: list[Example]
) -> None:
    with pytest.raises(ConfigError, match="subset of target_modules"):
        base.finetune(few_examples, method="ia3", options={"feedforward_modules": ["wi_0"]})


def test_target_modules_the_model_lacks_are_reported_with_the_ones_it_has(
    base: Summarizer, few_examples: list[Example]
) -> None:
    options = {"target_modules": ["query", "wo"], "feedforward_modules": ["wo"]}
    with pytest.raises(ConfigError) as info:
        base.finetune(few_examples, method="ia3", options=options, training={"progress": False})
    message = str(info.value)
    assert "method 'ia3'" in message
    assert "['query']" in message
    assert "wi_0" in message  # lists T5's real module names


def test_custom_modules_are_passed_to_peft(base: Summarizer, few_examples: list[Example]) -> None:
    options = {"target_modules": ["q", "k", "wi_0"], "feedforward_modules": ["wi_0"]}
    training = {"max_steps": 1, "batch_size": 4, "progress": False, "save_strategy": "no"}
    tuned = base.finetune(few_examples, method="ia3", options=options, training=training)
    config = tuned.model.peft_config["default"]
    assert set(config.target_modules) == {"q", "k", "wi_0"}
    assert set(config.feedforward_modules) == {"wi_0"}
