"""Fine-tuning, saving, merging and resuming with the built-in methods, beyond the kit's battery."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from statistics import fmean

import pytest

from dialogsum import Summarizer
from dialogsum.data import Example
from dialogsum.errors import ConfigError, ModelError, PluginError

PROBE = ["#Person1#: Where is the station?\n#Person2#: Two blocks north, next to the bank."]
LEARNING_RATES = {"full": 3e-3, "lora": 1e-2, "prompt_tuning": 0.3}
METHOD_OPTIONS = {
    "full": {},
    "lora": {"r": 4, "alpha": 8},
    "prompt_tuning": {"num_virtual_tokens": 8},
}


def tune(base: Summarizer, examples: list[Example], method: str, **kwargs):  # type: ignore[no-untyped-def]
    training = {
        "max_steps": 24,
        "batch_size": 4,
        "logging_steps": 1,
        "progress": False,
        "learning_rate": LEARNING_RATES[method],
        "save_strategy": "no",
    }
    return base.finetune(
        examples * 2,
        method=method,
        options=METHOD_OPTIONS[method],
        training=training,
        data={"max_source_length": 128, "max_target_length": 32},
        **kwargs,
    )


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> Summarizer:
    return Summarizer.from_pretrained(tiny_model_dir)


# Falling loss, an untouched original and a reload with the same greedy tokens are checked for
# every registered method by the test kit's battery (tests/testing/test_contract.py); this checks what a
# saved folder holds.
@pytest.mark.parametrize("method", ["full", "lora", "prompt_tuning"])
def test_saved_folder_holds_the_weights_and_manifest_the_method_needs(
    method: str, base: Summarizer, few_examples, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    tuned = base.finetune(
        few_examples[:4],
        method=method,
        options=METHOD_OPTIONS[method],
        training={"max_steps": 1, "progress": False, "save_strategy": "no"},
        data={"max_source_length": 128, "max_target_length": 32},
    )
    folder = tuned.save(tmp_path / "saved")
    manifest = json.loads((folder / "dialogsum.json").read_text())
    assert manifest["method"] == method and manifest["data"]["max_source_length"] == 128
    if method == "full":
        assert (folder / "model.safetensors").exists()
    else:  # PEFT saves are adapter-only and record their base model
        assert not (folder / "model.safetensors").exists()
        assert (folder / "adapter_model.safetensors").exists()
        assert manifest["peft"] is True and manifest["base_model"] == base.source


def test_save_refuses_to_overwrite(base: Summarizer, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("user data")
    with pytest.raises(ConfigError, match=r"already exists.*overwrite=True"):
        base.save(target)
    assert (target / "keep.txt").read_text() == "user data"
    base.save(target, overwrite=True)
    assert not (target / "keep.txt").exists() and (target / "config.json").exists()
    assert not list(tmp_path.glob(".out*"))  # no staging folder left behind


def test_generation_config_does_not_cap_at_20_tokens(base: Summarizer, tmp_path: Path) -> None:
    folder = base.save(tmp_path / "m")
    config = json.loads((folder / "generation_config.json").read_text())
    assert config["max_new_tokens"] == 128
    long = Summarizer.from_pretrained(folder).summarize(PROBE, min_new_tokens=40, max_new_tokens=40)
    short = Summarizer.from_pretrained(folder).summarize(
        PROBE, max_new_tokens=10, min_new_tokens=10
    )
    assert len(base.tokenizer(long[0])["input_ids"]) > len(base.tokenizer(short[0])["input_ids"])


def test_adapter_with_missing_base_model(base: Summarizer, few_examples, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    private_base = tmp_path / "base"
    shutil.copytree(base.source, private_base)  # type: ignore[arg-type]
    tuned = tune(Summarizer.from_pretrained(private_base), few_examples[:4], "lora")
    adapter = tuned.save(tmp_path / "adapter")
    expected = tuned.summarize(PROBE, max_new_tokens=8)
    moved = private_base.rename(tmp_path / "moved-base")
    with pytest.raises(ModelError, match=r"tuned from '.*base'.*could not be loaded") as missing:
        Summarizer.from_pretrained(adapter)
    # The advice is what works from Python (and the CLI flag): followed below.
    assert 'backend_options={"base_model": PATH}' in str(missing.value)
    assert "--base-model" in str(missing.value)
    again = Summarizer.from_pretrained(adapter, backend_options={"base_model": str(moved)})
    assert again.summarize(PROBE, max_new_tokens=8) == expected


def test_prompt_tuning_init_text(base: Summarizer, few_examples) -> None:  # type: ignore[no-untyped-def]
    tuned = base.finetune(
        few_examples[:4],
        method="prompt_tuning",
        options={"num_virtual_tokens": 6, "init_text": "Summarize the conversation"},
        training={"max_steps": 1, "progress": False, "learning_rate": 1e-9, "save_strategy": "no"},
    )
    ids = base.tokenizer("Summarize the conversation", add_special_tokens=False)["input_ids"]
    learned = tuned.model.prompt_encoder["default"].embedding.weight
    rows = learned.shape[0]  # peft keeps num_virtual_tokens rows per transformer submodule
    expected = base.model.get_input_embeddings().weight[(ids * rows)[:rows]]
    assert (learned - expected).abs().max().item() < 1e-5


def test_bad_method_options_fail_before_training(base: Summarizer, few_examples) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        ConfigError,
        match=r"method 'lora': rank: not a setting here.*Valid fields: r, alpha",
    ):
        base.finetune(few_examples, method="lora", options={"rank": 8})
    with pytest.raises(
        ConfigError, match=r"method 'lora': target_modules \['query'\] match no module"
    ):
        base.finetune(
            few_examples,
            method="lora",
            options={"target_modules": ["query"]},
            training={"max_steps": 1, "progress": False},
        )
    with pytest.raises(PluginError, match=r"Unknown method 'lorra'; did you mean 'lora'\?") as typo:
        base.finetune(few_examples, method="lorra")
    assert "pip install" not in str(typo.value)  # never a package named after a typo
    # The CLI's --option target_modules=q,query arrives as a string: read as a list.
    with pytest.raises(ConfigError, match=r"target_modules \['query'\] match no module"):
        base.finetune(
            few_examples,
            method="lora",
            options={"target_modules": "q,query"},
            training={"max_steps": 1, "progress": False},
        )


def test_fp16_is_refused_with_reason(base: Summarizer, few_examples) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"fp16 is refused for T5.*overflow.*bf16"):
        base.finetune(few_examples, training={"precision": "fp16"})


def test_finetune_refuses_existing_output_dir(
    base: Summarizer, few_examples, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"already exists.*overwrite"):
        base.finetune(few_examples, output_dir=tmp_path / "run", training={"max_steps": 1})
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_run_folder_layout_and_resume(base: Summarizer, few_examples, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    training = {
        "max_steps": 4,
        "batch_size": 4,
        "progress": False,
        "save_strategy": "steps",
        "save_steps": 2,
    }
    tuned = base.finetune(
        few_examples,
        method="lora",
        options={"r": 4},
        output_dir=run,
        training=training,
        eval_data=few_examples[:2],
    )
    assert (run / "model" / "adapter_config.json").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "eval_rouge1" in metrics and metrics["truncation"]["examples"] == 8
    assert json.loads((run / "train_config.json").read_text())["options"]["r"] == 4
    assert (run / "checkpoints" / "checkpoint-4").is_dir()
    assert Summarizer.from_pretrained(run).summarize(PROBE, max_new_tokens=6) == tuned.summarize(
        PROBE, max_new_tokens=6
    )
    resumed = base.finetune(
        few_examples,
        method="lora",
        options={"r": 4},
        output_dir=run,
        training={**training, "max_steps": 6, "resume_from_checkpoint": True},
    )
    assert resumed.training.metrics["train_runtime"] >= 0
    assert (run / "checkpoints" / "checkpoint-6").is_dir()


def test_resume_without_checkpoint_is_a_config_error(
    base: Summarizer, few_examples, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"Cannot resume"):
        base.finetune(
            few_examples,
            method="lora",
            output_dir=tmp_path / "fresh",
            training={"max_steps": 2, "progress": False, "resume_from_checkpoint": True},
        )


def test_adapter_cannot_be_tuned_again(base: Summarizer, few_examples, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    adapter = tune(base, few_examples[:4], "lora").save(tmp_path / "a")
    with pytest.raises(ConfigError, match=r"'lora' adapter; fine-tuning an adapter again"):
        Summarizer.from_pretrained(adapter).finetune(few_examples, method="lora")


def test_merge_folds_lora_into_plain_weights(
    base: Summarizer, few_examples, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    tuned = tune(base, few_examples, "lora")
    merged = tuned.merge()
    assert not hasattr(merged.model, "peft_config")
    assert merged.summarize(PROBE, max_new_tokens=12) == tuned.summarize(PROBE, max_new_tokens=12)
    folder = merged.save(tmp_path / "merged")
    assert (folder / "model.safetensors").exists() and not (folder / "adapter_config.json").exists()
    manifest = json.loads((folder / "dialogsum.json").read_text())
    assert manifest["method"] == "lora" and manifest["merged"] is True and manifest["peft"] is False
    assert Summarizer.from_pretrained(folder).summarize(
        PROBE, max_new_tokens=12
    ) == merged.summarize(PROBE, max_new_tokens=12)


def test_prompt_tuning_cannot_merge(base: Summarizer, few_examples) -> None:  # type: ignore[no-untyped-def]
    tuned = base.finetune(
        few_examples[:4],
        method="prompt_tuning",
        options={"num_virtual_tokens": 4},
        training={"max_steps": 1, "progress": False, "save_strategy": "no"},
    )
    with pytest.raises(ConfigError, match=r"no adapter weights to merge.*bakes the prompt"):
        tuned.merge()
    assert base.merge() is base


def test_adafactor_trains(base: Summarizer, few_examples) -> None:  # type: ignore[no-untyped-def]
    tuned = base.finetune(
        few_examples * 2,
        method="full",
        training={
            "optimizer": "adafactor",
            "max_steps": 16,
            "batch_size": 4,
            "logging_steps": 1,
            "progress": False,
            "learning_rate": 1e-2,
            "save_strategy": "no",
        },
    )
    losses = tuned.training.losses
    assert fmean(losses[-4:]) < fmean(losses[:4]) * 0.97, losses
    with pytest.raises(
        ConfigError,
        match=r"optimizer: Input should be 'adamw_torch', 'adafactor', 'adafactor_scaled' or 'sgd'",
    ):
        base.finetune(few_examples, training={"optimizer": "lion"})


@pytest.mark.parametrize(
    ("optimizer", "low", "high"), [("adafactor_scaled", 0.5, 2.0), ("adafactor", 2.0, 100.0)]
)
def test_adafactor_scaled_moves_weights_in_proportion(
    base: Summarizer,
    few_examples,
    optimizer: str,
    low: float,
    high: float,  # type: ignore[no-untyped-def]
) -> None:
    # T5 starts its query weights sqrt(d_kv) times smaller than its key weights. RMS-scaled updates
    # change both by the same share; absolute updates change the queries sqrt(d_kv) = 4x more.
    tuned = base.finetune(
        few_examples,
        method="full",
        training={
            "optimizer": optimizer,
            "max_steps": 1,
            "batch_size": 8,
            "progress": False,
            "learning_rate": 1e-2,
            "lr_scheduler": "constant",
            "save_strategy": "no",
        },
    )
    before, after = dict(base.model.named_parameters()), dict(tuned.model.named_parameters())

    def relative_change(name: str) -> float:
        return float(((after[name] - before[name]).norm() / before[name].norm()).detach())

    ratio = relative_change("encoder.block.0.layer.0.SelfAttention.q.weight") / relative_change(
        "encoder.block.0.layer.0.SelfAttention.k.weight"
    )
    assert low < ratio < high, ratio
