"""dialogsum-ctranslate2 through dialogsum's public API, as a user of the installed plugin:
export a model, then serve the folder the export wrote."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import ctranslate2
import dialogsum_ctranslate2
import pytest
from dialogsum_ctranslate2.predictor import CTranslate2Predictor

from dialogsum import ConfigError, Example, ModelError, Summarizer
from dialogsum.plugin_api import BEAM_AGREEMENT, GenerationOptions, read_manifest
from dialogsum.testing import BackendContract, contract_dialogues, registration

PROBE = ["#Person1#: Where is the station?\n#Person2#: Two blocks north, next to the bank."]
GREEDY: dict[str, Any] = {"num_beams": 1, "max_new_tokens": 16}
SERVE: dict[str, Any] = {"progress": False}
PLUGIN = Path(dialogsum_ctranslate2.__file__).parent


@pytest.fixture(scope="module")
def exported(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Path:
    """A float32 CTranslate2 export of the kit's tiny model."""
    model = Summarizer.from_pretrained(tiny_model_dir, backend_options=SERVE)
    return model.export(tmp_path_factory.mktemp("ct2") / "float32", backend="ctranslate2")


class TestCTranslate2Contract(BackendContract):
    backend = "ctranslate2"
    backend_options: ClassVar[dict[str, Any]] = SERVE

    @pytest.fixture(scope="class")
    @classmethod
    def model_dir(cls, exported: Path) -> Path:
        return exported


def dialogsum_cli(*arguments: str) -> str:
    """Run the ``dialogsum`` command as a user does; its standard output."""
    result = subprocess.run(
        [sys.executable, "-m", "dialogsum", *arguments], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_discovered_through_its_entry_point_as_a_backend_that_exports() -> None:
    registered = registration("backend", "ctranslate2")
    assert isinstance(registered.obj, dialogsum_ctranslate2.CTranslate2Backend)
    assert registered.source == f"dialogsum-ctranslate2 {dialogsum_ctranslate2.__version__}"
    rows = {row["name"]: row for row in json.loads(dialogsum_cli("plugins", "--json"))}
    assert rows["ctranslate2"]["export_options"] == ["quantize"]
    assert rows["ctranslate2"]["options"] == ["compute_type", "threads", "progress"]


def test_the_plugin_imports_only_the_package_face_and_the_plugin_api() -> None:
    allowed = {"dialogsum", "dialogsum.plugin_api"}
    found = []
    for path in sorted(PLUGIN.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            found += [
                f"{path.name}:{node.lineno}: {name}"
                for name in names
                if name.partition(".")[0] == "dialogsum" and name not in allowed
            ]
    assert not found, found


def test_the_export_is_self_contained_and_records_its_parity(
    exported: Path, tiny_model_dir: Path
) -> None:
    assert sorted(p.name for p in exported.iterdir()) == [
        "config.json",  # CTranslate2's model config
        "dialogsum.json",
        "generation_config.json",
        "model.bin",
        "shared_vocabulary.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert [p.name for p in exported.parent.iterdir()] == [exported.name]  # nothing staged left
    manifest = read_manifest(exported)
    record = manifest.export
    assert record is not None and record.backend == "ctranslate2"
    assert record.source_model == str(tiny_model_dir)
    assert record.adapter is None
    assert record.versions["ctranslate2"] == ctranslate2.__version__
    assert record.options == {"quantize": None}
    assert record.backend_data == {"quantize": None, "weights": "float32"}
    assert record.files == ["model.bin", "config.json", "shared_vocabulary.json"]
    parity = record.parity
    assert parity["passed"] and parity["greedy_identical"] == 1.0
    assert parity["beam4_identical"] >= BEAM_AGREEMENT
    assert parity["batch_greedy_agreement"] == 1.0
    source = read_manifest(tiny_model_dir)
    assert manifest.data == source.data and manifest.generation == source.generation
    generation = json.loads((exported / "generation_config.json").read_text())
    assert generation["max_new_tokens"] == source.data.max_target_length


def test_the_export_summarizes_as_pytorch_does(exported: Path, tiny_model_dir: Path) -> None:
    torch_side = Summarizer.from_pretrained(tiny_model_dir, backend_options=SERVE)
    served = Summarizer.from_pretrained(exported, backend_options=SERVE)
    assert served.backend == "ctranslate2"  # from the manifest: no backend named
    dialogues = PROBE + contract_dialogues()
    # Greedy, and beam search with transformers' early_stopping=True, which CTranslate2's beam
    # search implements exactly; min_new_tokens bans the end token as transformers does.
    for generation in (
        GREEDY,
        {**GREEDY, "min_new_tokens": 16},
        {"num_beams": 4, "early_stopping": True, "max_new_tokens": 16},
    ):
        expected = torch_side.summarize(dialogues, **generation)
        assert served.summarize(dialogues, **generation) == expected, generation


def test_a_lora_tuned_model_exports_merged_and_serves_from_its_manifest(
    tiny_model_dir: Path, few_examples: list[Example], tmp_path: Path, one_torch_thread: None
) -> None:
    base = Summarizer.from_pretrained(tiny_model_dir, backend_options=SERVE)
    training = {"max_steps": 2, "learning_rate": 5e-2, "progress": False, "save_strategy": "no"}
    tuned = base.finetune(few_examples, method="lora", training=training)
    expected = tuned.summarize(PROBE, **GREEDY)
    assert expected != base.summarize(PROBE, **GREEDY)  # the adapter must show in the export

    folder = tuned.export(tmp_path / "lora-ct2", backend="ctranslate2")
    served = Summarizer.from_pretrained(folder, backend_options=SERVE)
    assert served.backend == "ctranslate2"
    assert served.manifest.export is not None and served.manifest.export.adapter == "merged"
    assert served.manifest.method == "lora" and served.manifest.merged
    assert served.summarize(PROBE, **GREEDY) == expected


def test_the_cli_exports_int8_and_summarizes_from_the_folder(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    output = tmp_path / "int8"
    command = ["export", "--model", str(tiny_model_dir), "--backend", "ctranslate2"]
    printed = json.loads(dialogsum_cli(*command, "--quantize", "int8", "--output", str(output)))
    assert printed["output"] == str(output) and printed["backend"] == "ctranslate2"
    assert printed["options"] == {"quantize": "int8"}
    assert printed["backend_data"] == {"quantize": "int8", "weights": "int8"}
    # The float32 conversion passed the gate; the int8 one is reported against it.
    assert printed["parity"]["greedy_identical"] == 1.0
    int8 = printed["parity"]["int8"]
    assert set(int8) == {
        "dialogues",
        "greedy_agreement_with_fp32",
        "beam4_agreement_with_fp32",
        "batch_greedy_agreement",
    }
    assert all(0 <= int8[key] <= 1 for key in int8 if key != "dialogues")

    dialogues = tmp_path / "dialogues.jsonl"
    dialogues.write_text("".join(json.dumps({"dialogue": d}) + "\n" for d in PROBE * 2))
    summarize = ["summarize", "--model", str(output), "--input", str(dialogues)]
    output_lines = dialogsum_cli(*summarize, "--no-progress", "--max-new-tokens", "12")
    lines = [json.loads(line) for line in output_lines.splitlines()]
    served = Summarizer.from_pretrained(output, backend_options=SERVE)
    assert served.backend == "ctranslate2" and served.predictor.compute_type.startswith("int8")
    assert [line["summary"] for line in lines] == served.summarize(PROBE * 2, max_new_tokens=12)


def test_loading_converts_nothing_and_writes_nothing(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ctranslate2.converters

    class NoConversion:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("a load converted the model")

    monkeypatch.setattr(ctranslate2.converters, "TransformersConverter", NoConversion)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in exported.iterdir()}
    served = Summarizer.from_pretrained(exported, backend_options=SERVE)
    assert len(served.summarize(PROBE, **GREEDY)) == 1
    assert {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in exported.iterdir()} == before
    assert list(home.iterdir()) == []  # no cache folder


SERVE_WITHOUT_TORCH = textwrap.dedent(
    """
    import importlib.abc
    import json
    import sys

    BLOCKED = {"torch", "transformers", "peft", "optimum"}


    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this torch-free serving test", name=name)
            return None


    sys.meta_path.insert(0, Block())

    import dialogsum

    folder, dialogues = json.loads(sys.argv[1])
    served = dialogsum.Summarizer.from_pretrained(folder, backend_options={"progress": False})
    print(json.dumps({
        "backend": served.backend,
        "summaries": served.summarize(dialogues, num_beams=2, max_new_tokens=12),
        "loaded": sorted(BLOCKED & {name.partition(".")[0] for name in sys.modules}),
    }))
    """
)


def test_an_export_serves_without_the_torch_stack(exported: Path) -> None:
    served = Summarizer.from_pretrained(exported, backend_options=SERVE)
    expected = served.summarize(PROBE * 2, num_beams=2, max_new_tokens=12)
    result = subprocess.run(
        [sys.executable, "-c", SERVE_WITHOUT_TORCH, json.dumps([str(exported), PROBE * 2])],
        capture_output=True,
        text=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child == {"backend": "ctranslate2", "summaries": expected, "loaded": []}


def test_a_prompt_tuned_model_is_refused_with_the_way_to_export_it(
    tiny_model_dir: Path, few_examples: list[Example], tmp_path: Path, one_torch_thread: None
) -> None:
    base = Summarizer.from_pretrained(tiny_model_dir, backend_options=SERVE)
    training = {"max_steps": 1, "progress": False, "save_strategy": "no"}
    tuned = base.finetune(few_examples, method="prompt_tuning", training=training)
    target = tmp_path / "out" / "ct2"
    with pytest.raises(ConfigError, match=r"prompt-tuned.*cannot hold it.*--backend onnxruntime"):
        tuned.export(target, backend="ctranslate2")
    assert list(target.parent.iterdir()) == []


def test_a_folder_that_is_not_a_ctranslate2_export_is_refused_with_how_to_export(
    exported: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    how = "dialogsum export --model .* --backend ctranslate2 --output DIR"
    with pytest.raises(ModelError, match=f"not a CTranslate2 export.*{how}"):
        Summarizer.from_pretrained(tiny_model_dir, backend="ctranslate2", backend_options=SERVE)
    with pytest.raises(ModelError, match=f"No CTranslate2 export folder at someone/model.*{how}"):
        Summarizer.from_pretrained("someone/model", backend="ctranslate2")

    other = Path(shutil.copytree(exported, tmp_path / "other"))
    manifest = json.loads((other / "dialogsum.json").read_text())
    manifest["export"]["backend"] = "onnxruntime"
    (other / "dialogsum.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=f"export for the onnxruntime backend.*{how}"):
        Summarizer.from_pretrained(other, backend="ctranslate2")

    incomplete = Path(shutil.copytree(exported, tmp_path / "incomplete"))
    (incomplete / "model.bin").unlink()
    with pytest.raises(ModelError, match=r"incomplete: model\.bin missing"):
        Summarizer.from_pretrained(incomplete)


def test_an_export_that_misses_the_gate_writes_nothing(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    # A conversion that drops each summary's last token, as a broken converter might.
    generate_ids = CTranslate2Predictor.generate_ids

    def broken(self: CTranslate2Predictor, *args: Any, **kwargs: Any) -> list[list[int]]:
        return [row[:-1] for row in generate_ids(self, *args, **kwargs)]

    monkeypatch.setattr(CTranslate2Predictor, "generate_ids", broken)
    model = Summarizer.from_pretrained(tiny_model_dir, backend_options=SERVE)
    gate = r"CTranslate2 export does not match the PyTorch model.*Nothing was written"
    with pytest.raises(ModelError, match=gate):
        model.export(tmp_path / "new", backend="ctranslate2")
    assert list(tmp_path.iterdir()) == []

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match=gate):
        model.export(kept, backend="ctranslate2", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]


def test_greedy_summaries_are_reported_while_their_batch_decodes(exported: Path) -> None:
    served = Summarizer.from_pretrained(exported, backend_options=SERVE)
    predictor = served.predictor
    events: list[str] = []

    class Watched:
        def __init__(self, translator: Any) -> None:
            self.translator = translator

        def translate_batch(self, *args: Any, **kwargs: Any) -> Any:
            results = self.translator.translate_batch(*args, **kwargs)
            events.append("batch done")
            return results

    predictor.translator = Watched(predictor.translator)
    reported: dict[int, str] = {}

    def on_summary(index: int, summary: str) -> None:
        events.append("reported")
        reported[index] = summary

    dialogues = contract_dialogues()[:3]
    summaries = served.summarize(dialogues, on_summary=on_summary, batch_size=3, **GREEDY)
    assert events == ["reported"] * 3 + ["batch done"]
    assert [reported[i] for i in range(3)] == summaries


def test_bad_options_and_sampling_are_config_errors(exported: Path) -> None:
    served = Summarizer.from_pretrained(exported, backend_options=SERVE)
    with pytest.raises(ConfigError, match=r"the ctranslate2 backend .* cannot sample"):
        served.summarize(PROBE, do_sample=True)
    sampled = served.generation_options().model_copy(update={"do_sample": True})
    with pytest.raises(ConfigError, match="do_sample is not supported"):
        served.predictor.summarize(PROBE, sampled)
    with pytest.raises(ConfigError, match="Invalid options for backend 'ctranslate2'"):
        Summarizer.from_pretrained(exported, backend_options={"compute": "int8"})
    with pytest.raises(ConfigError, match="Invalid options for export with backend 'ctranslate2'"):
        served.export(exported.parent / "x", backend="ctranslate2", quantize="int4")


def test_a_float32_export_can_run_in_int8(exported: Path) -> None:
    served = Summarizer.from_pretrained(exported, backend_options={**SERVE, "compute_type": "int8"})
    predictor = served.predictor
    assert isinstance(predictor, CTranslate2Predictor)
    assert predictor.compute_type.startswith("int8")
    options = GenerationOptions(max_new_tokens=8)
    assert len(predictor.generate_ids(predictor.encode(PROBE), options)[0]) <= 8
