"""ONNX export and the onnxruntime backend: merge, baked soft prompt, parity gate, int8, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dialogsum import Summarizer
from dialogsum.cli import main
from dialogsum.errors import ConfigError, ModelError, PluginError
from dialogsum.plugin_api import parity_dialogues as default_dialogues

pytest.importorskip("onnxruntime")
pytest.importorskip("optimum.exporters.onnx")

SERVE = {"progress": False}


def tuned_model(tiny_model_dir: Path, few_examples, method: str, options: dict) -> Summarizer:  # type: ignore[no-untyped-def,type-arg]
    base = Summarizer.from_pretrained(tiny_model_dir, backend_options=SERVE)
    lr = {"lora": 1e-2, "prompt_tuning": 0.3}[method]
    return base.finetune(
        few_examples,
        method=method,
        options=options,
        training={"max_steps": 6, "progress": False, "learning_rate": lr, "save_strategy": "no"},
    )


@pytest.fixture(scope="module")
def lora(lora_summarizer: Summarizer) -> Summarizer:
    """The session's LoRA-tuned tiny model (tests/conftest.py), the one tuned_model makes."""
    return lora_summarizer


@pytest.fixture(scope="module")
def lora_export(lora_export_dir: Path) -> Path:
    """The session's ONNX export of ``lora``."""
    return lora_export_dir


@pytest.mark.parametrize("method", ["lora", "prompt_tuning"])
def test_export_serves_like_pytorch(
    method: str,
    tiny_model_dir: Path,
    few_examples,
    lora: Summarizer,
    lora_export: Path,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    if method == "lora":
        tuned, folder = lora, lora_export
    else:
        tuned = tuned_model(tiny_model_dir, few_examples, method, {"num_virtual_tokens": 5})
        folder = tuned.export(tmp_path / method)
    manifest = json.loads((folder / "dialogsum.json").read_text())
    export = manifest["export"]
    assert manifest["method"] == method and manifest["peft"] is False
    assert export["backend"] == "onnxruntime" and export["options"] == {
        "quantize": None,
        "lora_modules": ["q", "v"],
    }
    assert export["backend_data"]["quantize"] is None and export["versions"]["onnxruntime"]
    assert export["adapter"] == ("baked" if method == "prompt_tuning" else "merged")
    assert export["parity"]["passed"] and export["parity"]["greedy_identical"] == 1.0
    assert export["parity"]["beam4_identical"] >= 0.95
    assert export["parity"]["max_abs_logits_difference"] < 1e-4 * export["parity"]["logits_scale"]
    assert export["backend_data"]["prompt_tokens"] == (5 if method == "prompt_tuning" else 0)
    assert not (folder / "adapter_config.json").exists()

    served = Summarizer.from_pretrained(folder, backend="onnxruntime", backend_options=SERVE)
    dialogues = default_dialogues(6)
    assert served.summarize(dialogues, max_new_tokens=24, batch_size=4) == tuned.summarize(
        dialogues, max_new_tokens=24
    )


def test_int8_export_is_batch_invariant_and_reports_agreement(
    lora: Summarizer, tmp_path: Path, lora_export: Path, sample_dir: Path
) -> None:
    folder = lora.export(tmp_path / "int8", quantize="int8")
    export = json.loads((folder / "dialogsum.json").read_text())["export"]
    assert export["options"]["quantize"] == export["backend_data"]["quantize"] == "int8"
    assert export["parity"]["int8"]["batch_logits_difference"] == 0.0
    assert export["parity"]["int8"]["batch_greedy_agreement"] == 1.0
    assert 0.0 <= export["parity"]["int8"]["greedy_agreement_with_fp32"] <= 1.0
    graph = (folder / "decoder_model.onnx").read_bytes()
    assert b"MatMulIntegerToFloat" in graph and b"DynamicQuantizeLinear" not in graph
    served = Summarizer.from_pretrained(folder, backend_options=SERVE)
    dialogues = [e["dialogue"] for e in map(json.loads, (sample_dir / "test.jsonl").open())]
    for beams in (1, 4):
        alone = served.summarize(dialogues, batch_size=1, num_beams=beams, max_new_tokens=12)
        for batch in (8, 32):
            assert (
                served.summarize(dialogues, batch_size=batch, num_beams=beams, max_new_tokens=12)
                == alone
            ), (beams, batch)


def test_the_gate_refuses_an_int8_export_that_depends_on_the_batch(
    lora: Summarizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from dialogsum.backends.onnxruntime import quantize
    from dialogsum.backends.onnxruntime.export_files import ONNX_FILES

    def per_tensor(folder: Path, **_: object) -> None:  # what int8 export used to do
        for name in ONNX_FILES:
            quantize_dynamic(str(folder / name), str(folder / name), weight_type=QuantType.QInt8)

    monkeypatch.setattr(quantize, "quantize_int8", per_tensor)
    with pytest.raises(ModelError, match=r"different summary in a batch than alone"):
        lora.export(tmp_path / "dynamic", quantize="int8")
    assert not (tmp_path / "dynamic").exists()


def test_every_decoding_step_is_batch_invariant_in_fp32(lora_export: Path) -> None:
    # Not only int8: float rounding over padded lengths used to move later steps' logits by
    # about 1e-4 in a batch, enough to flip a near-tie. Every step must now be bit-identical.
    import numpy as np

    from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor
    from dialogsum.generation import pad_batch

    predictor = OnnxPredictor(lora_export, progress=False)
    sources = predictor.encode(default_dialogues(6), warn=False)
    assert len({len(s) for s in sources}) > 1  # the batch really pads
    forced = np.random.default_rng(0).integers(2, 100, (len(sources), 12))
    batched = predictor.step_logits(*pad_batch(sources, predictor.pad_token_id), forced)
    for row, source in enumerate(sources):
        alone = predictor.step_logits([source], [[1] * len(source)], forced[row : row + 1])
        assert np.array_equal(alone[0], batched[row]), row


def test_beams_share_one_cross_attention_cache_per_dialogue(
    lora: Summarizer, lora_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import numpy as np
    import onnxruntime as ort

    from dialogsum.backends.onnxruntime import export as exporting
    from dialogsum.backends.onnxruntime import shared_cross_attention as beams

    assert (
        json.loads((lora_export / "dialogsum.json").read_text())["export"]["backend_data"][
            "cross_attention"
        ]
        == "item"
    )
    name = beams.DECODER_WITH_PAST
    # The decoder as optimum writes it (one cross-attention cache per beam), kept aside during
    # an export, against the rewritten one the export serves.
    rewrite = exporting.share_cross_attention

    def keep_per_beam_graph(folder: Path) -> int:
        shutil.copy(folder / name, tmp_path / "per-beam.onnx")
        return rewrite(folder)

    monkeypatch.setattr(exporting, "share_cross_attention", keep_per_beam_graph)
    lora.export(tmp_path / "shared")
    served = Summarizer.from_pretrained(tmp_path / "shared", backend_options=SERVE)
    dialogues = default_dialogues(6)
    alone = [served.summarize([d], num_beams=4, max_new_tokens=12)[0] for d in dialogues]
    assert served.summarize(dialogues, batch_size=4, num_beams=4, max_new_tokens=12) == alone

    # A decoder the rewrite cannot share is refused: nothing is written.
    monkeypatch.setattr(exporting, "share_cross_attention", lambda folder: 0)
    with pytest.raises(ModelError, match="no cross-attention that dialogsum can share"):
        lora.export(tmp_path / "per-row")
    assert not (tmp_path / "per-row").exists()

    # The rewrite computes what the per-beam graph computes from repeated caches.
    before = ort.InferenceSession(
        str(tmp_path / "per-beam.onnx"), providers=["CPUExecutionProvider"]
    )
    after = ort.InferenceSession(
        str(tmp_path / "shared" / name), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    for items, width in ((3, 4), (2, 1)):
        rows, length = items * width, 20
        mask = np.ones((items, length), np.int64)
        mask[:, 15:] = 0
        shared = {"input_ids": rng.integers(2, 100, (rows, 1)), "encoder_attention_mask": mask}
        repeated = {**shared, "encoder_attention_mask": np.repeat(mask, width, axis=0)}
        for spec in before.get_inputs():
            if spec.name.startswith("past_key_values."):
                heads, size = spec.shape[1], spec.shape[3]
                if ".encoder." in spec.name:
                    cache = rng.standard_normal((items, heads, length, size)).astype(np.float32)
                    shared[spec.name], repeated[spec.name] = cache, np.repeat(cache, width, 0)
                else:
                    cache = rng.standard_normal((rows, heads, 3, size)).astype(np.float32)
                    shared[spec.name] = repeated[spec.name] = cache
        for old, new in zip(before.run(None, repeated), after.run(None, shared), strict=True):
            if width == 1:  # greedy runs the very same products
                assert np.array_equal(old, new)
            else:
                assert np.allclose(old, new, atol=1e-5, rtol=1e-5)


def test_each_summary_is_reported_once_as_it_is_final(lora: Summarizer, lora_export: Path) -> None:
    dialogues = default_dialogues(6)
    for summarizer in (Summarizer.from_pretrained(lora_export, backend_options=SERVE), lora):
        for beams in (1, 4):
            reported: list[tuple[int, str]] = []
            summaries = summarizer.summarize(
                dialogues,
                on_summary=lambda index, text, seen=reported: seen.append((index, text)),
                num_beams=beams,
                max_new_tokens=12,
                batch_size=4,
            )
            assert sorted(index for index, _ in reported) == list(range(len(dialogues)))
            assert all(text == summaries[index] for index, text in reported)
            assert summaries == summarizer.summarize(
                dialogues, num_beams=beams, max_new_tokens=12, batch_size=4
            )


def test_export_errors(lora: Summarizer, lora_export: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"export with backend 'onnxruntime'.*quantize.*'int8'"):
        lora.export(tmp_path / "x", quantize="int4")
    with pytest.raises(ConfigError, match=r"already exists.*overwrite"):
        lora.export(lora_export)
    with pytest.raises(ConfigError, match=r"format.*Valid fields: quantize"):
        lora.export(tmp_path / "x", format="tflite")
    with pytest.raises(PluginError, match=r"Backend 'torch' .* cannot export.*onnxruntime"):
        lora.export(tmp_path / "x", backend="torch")
    with pytest.raises(PluginError, match=r"Unknown backend 'onnx-runtime'; did you mean"):
        lora.export(tmp_path / "x", backend="onnx-runtime")
    assert not (tmp_path / "x").exists()


def test_export_records_written_before_keep_loading_or_say_how_to_re_export(
    lora_export: Path, tmp_path: Path
) -> None:
    import shutil

    # The record as 0.1 wrote it: ONNX fields at the top level of "export".
    manifest = json.loads((lora_export / "dialogsum.json").read_text())
    new = manifest["export"]
    old = {
        "format": "onnx",
        "backend": "onnxruntime",
        "quantize": None,
        "prompt_tokens": 0,
        "onnxruntime_version": new["versions"]["onnxruntime"],
        "source_model": new["source_model"],
        "files": new["files"],
        "parity": new["parity"],
        "cross_attention": "item",
    }
    folder = shutil.copytree(lora_export, tmp_path / "old")
    (folder / "dialogsum.json").write_text(json.dumps({**manifest, "export": old}))
    expected = Summarizer.from_pretrained(lora_export, backend_options=SERVE).summarize(
        default_dialogues(2)
    )
    served = Summarizer.from_pretrained(folder, backend_options=SERVE)
    assert served.backend == "onnxruntime"
    assert served.summarize(default_dialogues(2)) == expected
    # The per-beam cache layout ("row", the default before the field existed) is refused.
    del old["cross_attention"]
    (folder / "dialogsum.json").write_text(json.dumps({**manifest, "export": old}))
    with pytest.raises(ModelError, match=r"older dialogsum.*Export it again.*--overwrite"):
        Summarizer.from_pretrained(folder, backend_options=SERVE)


def test_broken_export_folders(lora_export: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    import shutil

    broken = Path(shutil.copytree(lora_export, tmp_path / "broken"))
    (broken / "decoder_with_past_model.onnx").unlink()
    with pytest.raises(ModelError, match=r"incomplete: decoder_with_past_model.onnx missing"):
        Summarizer.from_pretrained(broken, backend="onnxruntime")
    (broken / "decoder_with_past_model.onnx").write_bytes(b"garbage")
    with pytest.raises(ModelError, match=r"could not load .*decoder_with_past_model.onnx"):
        Summarizer.from_pretrained(broken, backend="onnxruntime")
    manifest = json.loads((lora_export / "dialogsum.json").read_text())
    newer = Path(shutil.copytree(lora_export, tmp_path / "newer"))
    (newer / "dialogsum.json").write_text(json.dumps({**manifest, "format": 7}))
    with pytest.raises(ModelError, match=r"newer dialogsum"):
        Summarizer.from_pretrained(newer, backend="onnxruntime")
    with pytest.raises(ModelError, match=r"is not an ONNX export"):
        Summarizer.from_pretrained(tiny_model_dir, backend="onnxruntime")
    with pytest.raises(ModelError, match=r"No ONNX export folder.*dialogsum export --model"):
        Summarizer.from_pretrained("dialogsum-tiny", backend="onnxruntime")
    # An export handed to torch (or to export again) names the model it came from.
    with pytest.raises(ModelError, match=r"is an export for the onnxruntime backend.*PyTorch"):
        Summarizer.from_pretrained(lora_export, backend="torch")


def test_onnx_backend_input_errors(
    lora_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served = Summarizer.from_pretrained(lora_export, backend="onnxruntime", backend_options=SERVE)
    assert served.sampling_refused_by == "onnxruntime"
    cannot = r"the onnxruntime backend decodes by greedy or beam search and cannot sample"
    with pytest.raises(ConfigError, match=rf"do_sample=True: {cannot}.*backend='torch'"):
        served.summarize(["#Person1#: Hi."], do_sample=True)
    # A sampling option alone is refused for the backend, not told to add do_sample; the
    # options the error lists are those this backend reads.
    with pytest.raises(ConfigError, match=rf"temperature=0.7, top_k=5: {cannot}") as refused:
        served.summarize(["#Person1#: Hi."], temperature=0.7, top_k=5)
    valid = str(refused.value).split("Valid fields: ")[1]
    assert "num_beams" in valid and "temperature" not in valid and "do_sample" not in valid
    assert served.summarize(["#Person1#: Hi."], do_sample=False, max_new_tokens=4)
    # The predictor itself still refuses sampling options that reach it another way.
    sampled = served.generation_options().model_copy(update={"do_sample": True})
    with pytest.raises(ConfigError, match=r"do_sample is not supported.*backend='torch'"):
        served.predictor.summarize(["#Person1#: Hi."], sampled)
    # The command line checks sampling options once the export's backend is known: not "add
    # --do-sample" first, and "cannot sample" after.
    dialogue = tmp_path / "in.jsonl"
    dialogue.write_text('{"dialogue": "#Person1#: Hi."}\n')
    flags = ["summarize", "--model", str(lora_export), "--input", str(dialogue)]
    assert main([*flags, "--temperature", "0.7"]) == 2
    error = capsys.readouterr().err
    assert f"temperature=0.7: {cannot}" in error and "--do-sample" not in error
    # An export has no PyTorch model: the model it came from has (backend='torch' on the
    # export itself would fail).
    with pytest.raises(ConfigError, match=r"needs the PyTorch model.*backend 'onnxruntime'") as no:
        served.finetune([{"dialogue": "a", "summary": "b"}])
    assert "Load the PyTorch model it was exported from to finetune" in str(no.value)
    assert "backend='torch'" not in str(no.value)


def test_cli_export_and_serve(lora: Summarizer, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import io

    saved = lora.save(tmp_path / "adapter")
    assert main(["export", "--model", str(saved), "--output", str(tmp_path / "onnx")]) == 0
    assert json.loads(capsys.readouterr().out)["parity"]["passed"] is True
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"id": 1, "dialogue": "#Person1#: Hi."}\n'))
    assert (
        main(
            [
                "summarize",
                "--model",
                str(tmp_path / "onnx"),
                "--backend",
                "onnxruntime",
                "--backend-option",
                "threads=1",
                "--max-new-tokens",
                "5",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["id"] == 1
    assert main(["export", "--model", str(saved), "--output", str(tmp_path / "onnx")]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.fixture(scope="module")
def flan_t5_small_config() -> Path:
    config = (
        Path(__file__).resolve().parents[3].parent
        / "shared"
        / "models"
        / "flan-t5-small.config.json"
    )
    if not config.is_file():
        pytest.skip(f"the FLAN-T5 architecture configs are not at {config.parent}")
    return config


def test_parity_gate_on_the_real_flan_t5_small_architecture(
    flan_t5_small_config: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    # Random weights of exactly FLAN-T5-small's shape (num_heads * d_kv != d_model there);
    # the tiny tokenizer's ids all fall inside FLAN-T5's vocabulary.
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config.from_json_file(str(flan_t5_small_config))).eval()
    folder = tmp_path / "flan-t5-small"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    summarizer = Summarizer.from_pretrained(folder, backend_options=SERVE)
    export = json.loads((summarizer.export(tmp_path / "onnx") / "dialogsum.json").read_text())[
        "export"
    ]
    assert export["parity"]["passed"] and export["parity"]["greedy_identical"] == 1.0


@pytest.mark.parametrize("method", ["none", "lora", "prompt_tuning"])
def test_bundled_model_exports_and_serves_with_its_decoding_defaults(
    method: str,
    few_examples,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    # dialogsum-tiny ships decoding defaults (4 beams, no repeated trigrams) in its generation
    # config; parity must compare the two runtimes' search, not those defaults on one side only,
    # also when an adapter wraps the model (what the quickstart exports).
    model = Summarizer.from_pretrained("dialogsum-tiny", backend_options=SERVE)
    if method != "none":
        model = model.finetune(
            few_examples,
            method=method,
            training={"max_steps": 2, "progress": False, "save_strategy": "no"},
        )
    # optimum copies preprocessors from the model's name_or_path: here "dialogsum-tiny", which
    # is no hub repo. It must be pointed at a local folder, or offline exports retry for minutes.
    import optimum.exporters.onnx.convert as convert

    sources: list[tuple[str, bool]] = []
    copy_preprocessors = convert.maybe_save_preprocessors
    monkeypatch.setattr(
        convert,
        "maybe_save_preprocessors",
        lambda source, *a, **k: (
            sources.append((source, Path(source).is_dir())) or copy_preprocessors(source, *a, **k)
        ),
    )
    folder = model.export(tmp_path / "tiny")
    assert sources and all(local for _, local in sources), sources
    parity = json.loads((folder / "dialogsum.json").read_text())["export"]["parity"]
    assert parity["passed"] and parity["greedy_identical"] == 1.0
    served = Summarizer.from_pretrained(folder, backend="onnxruntime", backend_options=SERVE)
    dialogues = default_dialogues(12)
    # One batch of 12: items finish at different steps and leave the batch as they do.
    assert served.summarize(dialogues, batch_size=12) == model.summarize(dialogues)
    # Parity borrowed the model's generation config and gave it back.
    assert model.model.generation_config.no_repeat_ngram_size == 3


def test_the_backend_comes_from_the_export_manifest(
    lora: Summarizer, lora_export: Path, sample_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import io

    manifest = json.loads((lora_export / "dialogsum.json").read_text())
    assert manifest["export"]["backend"] == "onnxruntime"
    assert manifest["merged"] is True and manifest["peft"] is False  # the LoRA was merged
    assert Summarizer.from_pretrained(lora_export).backend == "onnxruntime"
    # No --backend: the CLI reads the manifest instead of guessing from file names.
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"dialogue": "#Person1#: Hi."}\n'))
    assert main(["summarize", "--model", str(lora_export), "--max-new-tokens", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == 1
    saved = lora.save(tmp_path / "adapter")
    base_copy = tmp_path / "base-copy"
    import shutil

    shutil.copytree(str(lora.manifest.base_model), base_copy)
    # compare mixes an adapter (torch, with --base-model) and an export (onnxruntime).
    args = [
        "compare",
        "--model",
        str(saved),
        "--model",
        str(lora_export),
        "--base-model",
        str(base_copy),
        "--data",
        str(sample_dir),
        "--limit",
        "2",
        "--show",
        "1",
        "--output",
        str(tmp_path / "cmp"),
        "--max-new-tokens",
        "4",
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert str(lora_export) in (tmp_path / "cmp.md").read_text()


def test_export_takes_a_config_file(lora: Summarizer, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    saved = lora.save(tmp_path / "adapter")
    config = tmp_path / "export.yaml"
    config.write_text(f"model: {saved}\noutput: {tmp_path / 'onnx'}\nquantise: int8\n")
    assert main(["export", "--config", str(config)]) == 2
    assert "quantise: not a setting here (did you mean 'quantize'?)" in capsys.readouterr().err
    config.write_text(f"model: {saved}\noutput: {tmp_path / 'onnx'}\n")
    assert main(["export", "--config", str(config), "--quantize", "int8"]) == 0
    options = json.loads(capsys.readouterr().out)["options"]
    assert options == {"quantize": "int8", "lora_modules": ["q", "v"]}
