"""The dialogsum-tiny recipe, end to end on the bundled sample with a miniature shape."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

from dialogsum import Summarizer
from dialogsum.data import sample_path

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_recipe_trains_scores_and_writes_a_model_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = yaml.safe_load((RECIPES / "dialogsum-tiny.yaml").read_text())
    recipe["tokenizer"]["vocab_size"] = 300
    recipe["model"].update(
        d_model=32, d_kv=16, num_heads=2, d_ff=64, num_layers=1, num_decoder_layers=1
    )
    recipe["training"].update(progress=False, save_strategy="no")
    recipe["generation"].update(num_beams=1, max_new_tokens=8)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    spec = importlib.util.spec_from_file_location(
        "train_dialogsum_tiny", RECIPES / "train_dialogsum_tiny.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    work = tmp_path / "work"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "recipe",
            "--data",
            str(sample_path("train").parent),
            "--recipe",
            str(tmp_path / "recipe.yaml"),
            "--work",
            str(work),
            "--max-steps",
            "2",
            "--test-limit",
            "4",
        ],
    )
    assert module.main() == 0

    scores = json.loads((work / "scores.json").read_text())
    assert scores["test_dialogues"] == 4 and 0 <= scores["distinct"] <= 1
    card = (work / "dialogsum-tiny" / "README.md").read_text()
    assert "license: cc-by-nc-sa-4.0" in card and "model-index:" in card
    assert f"| **dialogsum-tiny** (this model) | {scores['model']['rouge1']:.1f} |" in card
    assert (
        "Lead-3, measured here" in card
        and "FLAN-T5-base, LoRA" in card
        and "| produced on |" in card
    )
    shipped = Summarizer.from_pretrained(
        work / "dialogsum-tiny", backend_options={"progress": False}
    )
    assert shipped.model.dtype == torch.float32  # shipped in bfloat16, served in float32 on a CPU
    assert len(shipped.summarize(["#Person1#: Hi.\n#Person2#: Hello."])) == 1
