"""Many adapters on one ONNX export: exported with their base, chosen per row, loaded at run time.

One int8 export of the tiny model carries two LoRA adapters and a prompt-tuning one. Each row's
summary must be its adapter's alone, in any batch (rows of other adapters and of the base beside
it), adapters load and unload atomically, and bad adapters are refused with what to do.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dialogsum import Summarizer
from dialogsum.adapter_serving import UnknownAdapterError
from dialogsum.data import Example
from dialogsum.errors import ConfigError, ModelError, PluginError

pytest.importorskip("onnxruntime")
pytest.importorskip("optimum.exporters.onnx")


@pytest.fixture
def served(multi_adapter_export: Path) -> Summarizer:
    return Summarizer.from_pretrained(multi_adapter_export, backend_options={"progress": False})


def test_the_export_holds_the_base_once_and_each_adapter_beside_it(
    multi_adapter_export: Path,
) -> None:
    record = json.loads((multi_adapter_export / "dialogsum.json").read_text())["export"]
    section = record["backend_data"]["adapters"]
    assert section["names"] == ["prompted", "sales", "support"]
    assert section["lora_modules"] == ["q", "v"]
    assert sorted(p.name for p in (multi_adapter_export / "adapters").iterdir()) == section["names"]
    assert len(list(multi_adapter_export.glob("*.onnx"))) == 3  # one base, not one per adapter
    for name in section["names"]:
        parity = record["parity"]["adapters"][name]
        assert parity["mixed_batch_greedy_agreement"] == 1.0
        assert parity["max_abs_logits_difference"] < 0.05 * parity["logits_scale"]


def test_each_adapter_changes_the_summary_and_none_is_the_base(
    served: Summarizer, few_examples: list[Example], tiny_model_dir: Path, tmp_path: Path
) -> None:
    texts = [e.dialogue for e in few_examples[:3]]
    plain = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    alone = Summarizer.from_pretrained(plain.export(tmp_path / "plain", quantize="int8"))
    base = served.summarize(texts, num_beams=1)
    assert base == alone.summarize(texts, num_beams=1)  # no adapter: the base, as exported alone
    answers = {
        name: served.summarize(texts, adapter=name, num_beams=1) for name in served.adapters()
    }
    assert all(answer != base for answer in answers.values()), answers


def test_rows_of_different_adapters_in_one_call_get_their_alone_answers(
    served: Summarizer, few_examples: list[Example]
) -> None:
    texts = [e.dialogue for e in few_examples[:6]]
    names: list[str | None] = ["support", None, "prompted", "sales", "support", None]
    for beams in (1, 3):
        options = served.generation_options(num_beams=beams, batch_size=6)
        together = served.summarize_rows(texts, names, options)
        alone = [
            served.summarize([text], adapter=name, num_beams=beams)[0]
            for text, name in zip(texts, names, strict=True)
        ]
        assert together == alone


def test_an_unknown_adapter_names_the_loaded_ones(served: Summarizer) -> None:
    with pytest.raises(UnknownAdapterError, match="loaded: prompted, sales, support"):
        served.summarize(["#Person1#: Hi."], adapter="suport")


def test_an_adapter_loaded_at_run_time_answers_as_the_exported_one(
    served: Summarizer, adapter_runs: dict[str, Path], few_examples: list[Example]
) -> None:
    texts = [e.dialogue for e in few_examples[:2]]
    info = served.load_adapter("support-again", adapter_runs["support"])  # the run's own folder
    assert info.method == "lora" and info.details["rank"] == 4 and info.size_bytes > 0
    assert served.summarize(texts, adapter="support-again") == served.summarize(
        texts, adapter="support"
    )
    removed = served.unload_adapter("support-again")
    assert removed.name == "support-again" and "support-again" not in served.adapters()
    with pytest.raises(UnknownAdapterError):
        served.unload_adapter("support-again")


def test_bad_adapters_are_refused_and_change_nothing(
    served: Summarizer, adapter_runs: dict[str, Path], tmp_path: Path
) -> None:
    before = dict(served.adapters())
    with pytest.raises(ModelError, match="adapts k, o, which this export has no slots for"):
        served.load_adapter("wide", adapter_runs["wide"])
    other = shutil.copytree(adapter_runs["sales"], tmp_path / "other-base")
    manifest = json.loads((other / "dialogsum.json").read_text())
    manifest["base_model"] = "google/flan-t5-large"
    (other / "dialogsum.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="tuned from google/flan-t5-large, and this export"):
        served.load_adapter("other", other)
    corrupt = shutil.copytree(adapter_runs["sales"], tmp_path / "corrupt")
    weights = corrupt / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        served.load_adapter("corrupt", corrupt)
    with pytest.raises(ModelError, match="holds no adapter"):
        served.load_adapter("empty", tmp_path)
    with pytest.raises(ConfigError, match="Invalid adapter name"):
        served.load_adapter("../x", adapter_runs["sales"])
    assert served.adapters() == before


def test_exports_without_adapters_and_torch_models_refuse_an_adapter(
    onnx_export_dir: Path, tiny_model_dir: Path
) -> None:
    for model in (
        Summarizer.from_pretrained(onnx_export_dir, backend_options={"progress": False}),
        Summarizer.from_pretrained(tiny_model_dir, backend="torch"),
    ):
        with pytest.raises(UnknownAdapterError, match="serves no adapters"):
            model.summarize(["#Person1#: Hi."], adapter="support")
        with pytest.raises(ConfigError, match="serves no adapters beside its base"):
            model.load_adapter("support", onnx_export_dir)


def test_adapters_of_another_base_are_refused_at_export(
    tiny_model_dir: Path, adapter_runs: dict[str, Path], tmp_path: Path
) -> None:
    other = shutil.copytree(adapter_runs["sales"], tmp_path / "other")
    manifest = json.loads((other / "dialogsum.json").read_text())
    manifest["base_model"] = "google/flan-t5-large"
    (other / "dialogsum.json").write_text(json.dumps(manifest))
    base = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    with pytest.raises(ConfigError, match="tuned from google/flan-t5-large"):
        base.export(tmp_path / "out", adapters={"other": other})
    with pytest.raises(PluginError, match="cannot export"):
        base.export(tmp_path / "out", backend="torch", adapters={"sales": adapter_runs["sales"]})
    assert not (tmp_path / "out").exists()
