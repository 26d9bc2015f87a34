"""dialogsum-ia3 through dialogsum's public API, as a user of the installed plugin meets it.

The plugin must be installed (``pip install -e plugins/dialogsum-ia3``): these tests use the
process-wide plugin manager, so ``ia3`` is found through its real entry point.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dialogsum import ConfigError, Summarizer
from dialogsum.registry import get_registry
from dialogsum.training.scratch import save_tiny_t5

import dialogsum_ia3

# A handful of short dialogues, repeated: a tiny model can fit them in a few steps, so the loss
# must fall if (and only if) the IA3 vectors really train.
ROWS: list[dict[str, str]] = [
    {
        "dialogue": "#Person1#: Are you coming to the party tonight? "
        "#Person2#: Yes, I will bring a cake.",
        "summary": "#Person2# will bring a cake to the party.",
    },
    {
        "dialogue": "#Person1#: Where is the station? #Person2#: Turn left at the bank.",
        "summary": "#Person2# tells #Person1# the way to the station.",
    },
    {
        "dialogue": "#Person1#: I lost my keys. #Person2#: They are on the table.",
        "summary": "#Person1#'s keys are on the table.",
    },
    {
        "dialogue": "#Person1#: Can I pay by card? #Person2#: Sorry, cash only.",
        "summary": "The shop takes cash only.",
    },
]
TRAINING: dict[str, Any] = {
    "max_steps": 16,
    "batch_size": 4,
    # Far above the method's default: a randomly initialised tiny model has to move in 16 steps.
    "learning_rate": 0.1,
    "logging_steps": 1,
    "eval_strategy": "no",
    "progress": False,
    "seed": 0,
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and lose several-fold when cores are busy."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny FLAN-T5-shaped model saved to disk (adapters record the folder as their base)."""
    return save_tiny_t5(tmp_path_factory.mktemp("ia3") / "tiny-t5")


@pytest.fixture(scope="module")
def base(base_dir: Path) -> Summarizer:
    return Summarizer.from_pretrained(base_dir, backend_options={"progress": False})


@pytest.fixture(scope="module")
def tuned(base: Summarizer) -> Summarizer:
    return base.finetune(ROWS * 4, method="ia3", training=TRAINING)


def greedy_tokens(summarizer: Summarizer, dialogues: list[str]) -> list[list[int]]:
    """Greedy generation's token ids for each dialogue (one at a time: no padding effects)."""
    import torch

    ids = []
    model, tokenizer = summarizer.model, summarizer.tokenizer
    model.eval()
    for dialogue in dialogues:
        encoded = tokenizer([dialogue], return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**encoded, do_sample=False, num_beams=1, max_new_tokens=24)
        ids.append(output[0].tolist())
    return ids


def test_ia3_is_discovered_through_its_entry_point() -> None:
    registered = get_registry().methods["ia3"]
    assert isinstance(registered.obj, dialogsum_ia3.IA3)
    # The source is the installed distribution, which only entry-point loading records.
    assert registered.source == f"dialogsum-ia3 {dialogsum_ia3.__version__}"


def test_default_learning_rate_is_larger_than_full_finetuning() -> None:
    registry = get_registry()
    ia3 = registry.method("ia3")
    assert ia3.default_learning_rate == pytest.approx(3e-3)
    assert ia3.default_learning_rate > registry.method("full").default_learning_rate


def test_prepare_trains_only_ia3_vectors_on_the_default_modules(base: Summarizer) -> None:
    import copy

    model = copy.deepcopy(base.model)
    total = sum(p.numel() for p in model.parameters())
    prepared = dialogsum_ia3.IA3().prepare(model, dialogsum_ia3.IA3Options())
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


def test_finetune_with_ia3_lowers_the_loss(tuned: Summarizer) -> None:
    assert tuned.method == "ia3"
    assert tuned.training is not None
    losses = tuned.training.losses
    assert len(losses) >= TRAINING["max_steps"]
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first * 0.8, f"loss did not fall: {losses}"


def test_finetune_leaves_the_base_model_untouched(base: Summarizer, tuned: Summarizer) -> None:
    assert not hasattr(base.model, "peft_config")
    assert hasattr(tuned.model, "peft_config")
    dialogues = [row["dialogue"] for row in ROWS]
    assert greedy_tokens(base, dialogues) != greedy_tokens(tuned, dialogues)


def test_save_writes_an_adapter_only_folder_that_reloads_identically(
    tuned: Summarizer, base_dir: Path, tmp_path: Path
) -> None:
    saved = tuned.save(tmp_path / "ia3-model")

    assert (saved / "adapter_config.json").is_file()
    assert (saved / "adapter_model.safetensors").is_file()
    assert not (saved / "model.safetensors").exists()
    adapter_config = json.loads((saved / "adapter_config.json").read_text())
    assert adapter_config["peft_type"] == "IA3"
    assert Path(adapter_config["base_model_name_or_path"]).resolve() == base_dir.resolve()
    manifest = json.loads((saved / "dialogsum.json").read_text())
    assert manifest["method"] == "ia3"
    assert manifest["peft"] is True

    reloaded = Summarizer.from_pretrained(saved, backend_options={"progress": False})
    assert reloaded.method == "ia3"
    dialogues = [row["dialogue"] for row in ROWS]
    assert greedy_tokens(reloaded, dialogues) == greedy_tokens(tuned, dialogues)
    assert reloaded.summarize(dialogues, num_beams=1) == tuned.summarize(dialogues, num_beams=1)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"feedforward_modules": ["wi_0"]}, "feedforward_modules"),
        ({"target_modules": ["k", "v"], "feedforward_modules": ["wo"]}, "feedforward_modules"),
        ({"target_modules": []}, "target_modules"),
        ({"rank": 8}, "rank"),
    ],
)
def test_bad_options_name_the_method_and_the_field(
    base: Summarizer, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        base.finetune(ROWS, method="ia3", options=options, training=TRAINING)
    message = str(info.value)
    assert "method 'ia3'" in message
    assert field in message


def test_feedforward_outside_targets_explains_the_subset_rule() -> None:
    with pytest.raises(ConfigError, match="subset of target_modules"):
        get_registry().method_options("ia3", {"feedforward_modules": ["wi_0"]})


def test_target_modules_the_model_lacks_are_reported_with_the_ones_it_has(
    base: Summarizer,
) -> None:
    options = {"target_modules": ["query", "wo"], "feedforward_modules": ["wo"]}
    with pytest.raises(ConfigError) as info:
        base.finetune(ROWS, method="ia3", options=options, training=TRAINING)
    message = str(info.value)
    assert "method 'ia3'" in message
    assert "['query']" in message
    assert "wi_0" in message  # lists T5's real module names


def test_custom_modules_are_passed_to_peft() -> None:
    options = get_registry().method_options(
        "ia3", {"target_modules": ["q", "k", "wi_0"], "feedforward_modules": ["wi_0"]}
    )
    assert isinstance(options, dialogsum_ia3.IA3Options)
    assert options.target_modules == ["q", "k", "wi_0"]
    assert options.feedforward_modules == ["wi_0"]
