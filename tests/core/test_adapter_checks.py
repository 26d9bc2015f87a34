"""Adapters named for an export or a load are checked up front, with what to do.

A typo in an adapter's name or folder is told the likely one meant; an adapter of a method that
cannot be served unmerged (IA3) is refused before the base is exported; and the bundled model
is the same base by its name or by its folder's path.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from dialogsum.adapter_serving import UnknownAdapterError, same_base
from dialogsum.errors import ConfigError, ModelError
from dialogsum.exporting import check_adapters
from dialogsum.modeling import ModelManifest, bundled_model_dir


def _adapter(folder: Path, peft_type: str, base_model: str = "dialogsum-tiny") -> Path:
    model = folder / "model"
    model.mkdir(parents=True)
    (model / "adapter_config.json").write_text(json.dumps({"peft_type": peft_type}))
    manifest = ModelManifest(method=peft_type.lower(), base_model=base_model, peft=True)
    (model / "dialogsum.json").write_text(manifest.model_dump_json())
    return folder


def _check(adapters: dict[str, Any], base_name: str = "dialogsum-tiny") -> dict[str, Path]:
    base = SimpleNamespace(model=object(), manifest=ModelManifest())  # a plain base model
    return check_adapters(adapters, cast(Any, base), base_name)


def test_an_unknown_adapter_is_told_the_likely_one_meant() -> None:
    error = UnknownAdapterError("sale", ["support", "sales", "sales-prompt"])
    assert str(error) == (
        "No adapter named 'sale' is loaded; loaded: sales, sales-prompt, support (or none for "
        "the base model). Did you mean 'sales'?"
    )
    far = UnknownAdapterError("billing", ["support", "sales"])
    assert str(far).endswith("(or none for the base model).")


def test_a_mistyped_adapter_folder_is_told_the_likely_one_meant(tmp_path: Path) -> None:
    _adapter(tmp_path / "runs" / "support", "LORA")
    with pytest.raises(ConfigError, match=r"Did you mean .*runs/support\?"):
        _check({"support": tmp_path / "runs" / "suport"})


def test_an_adapter_that_cannot_be_served_unmerged_is_refused_before_the_export(
    tmp_path: Path,
) -> None:
    ia3 = _adapter(tmp_path / "ia3", "IA3")
    with pytest.raises(
        ConfigError, match=r"holds an adapter of type IA3.*dialogsum export --model"
    ):
        _check({"tone": ia3})
    lora, prompt = _adapter(tmp_path / "lora", "LORA"), _adapter(tmp_path / "p", "PROMPT_TUNING")
    assert _check({"a": lora, "b": prompt}) == {"a": lora / "model", "b": prompt / "model"}


def test_the_bundled_base_is_the_same_by_its_name_or_its_folder(tmp_path: Path) -> None:
    folder = bundled_model_dir("dialogsum-tiny")
    assert folder is not None
    assert same_base(str(folder), "dialogsum-tiny") and same_base("dialogsum-tiny", str(folder))
    assert not same_base("dialogsum-tiny", "google/flan-t5-base")
    assert not same_base(str(tmp_path), "dialogsum-tiny")
    by_path = _adapter(tmp_path / "by-path", "LORA", base_model=str(folder))
    assert _check({"a": by_path}) == {"a": by_path / "model"}
    with pytest.raises(ConfigError, match="tuned from google/flan-t5-base"):
        _check({"a": _adapter(tmp_path / "other", "LORA", "google/flan-t5-base")})


def test_loading_a_mistyped_adapter_folder_is_told_the_likely_one_meant(tmp_path: Path) -> None:
    from dialogsum import Summarizer

    _adapter(tmp_path / "billing", "LORA")
    model = Summarizer.from_pretrained("dialogsum-tiny", backend="torch")
    with pytest.raises(ModelError, match=r"No adapter at .*biling: .*Did you mean .*billing\?"):
        model.load_adapter("billing", tmp_path / "biling")
