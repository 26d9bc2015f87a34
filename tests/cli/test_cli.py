"""The dialogsum command line: plugins, train, evaluate, summarize, config files, errors."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dialogsum.cli import main

FAST = ["--max-steps", "2", "--batch-size", "4", "--no-progress", "--max-source-length", "64"]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_plugins_table_from_the_installed_console_script() -> None:
    exe = Path(sys.executable).with_name("dialogsum")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "dialogsum"]
    result = subprocess.run([*command, "plugins"], capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["kind", "name", "source", "options", "exports"]
    names = {(line.split()[0], line.split()[1]) for line in lines[2:]}
    onnx = next(line for line in lines if line.split()[:2] == ["backend", "onnxruntime"])
    torch = next(line for line in lines if line.split()[:2] == ["backend", "torch"])
    assert onnx.endswith("yes: quantize, lora_modules") and torch.endswith(
        "-"
    )  # which backends export
    assert {
        ("method", "full"),
        ("method", "lora"),
        ("method", "prompt_tuning"),
        ("backend", "torch"),
    } <= names


def test_plugins_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["plugins", "--json"], capsys)
    rows = json.loads(out)
    lora = next(r for r in rows if r["name"] == "lora")
    assert code == 0 and lora["kind"] == "method" and "r" in lora["options"]
    backends = {r["name"]: r["export_options"] for r in rows if r["kind"] == "backend"}
    assert backends["onnxruntime"] == ["quantize", "lora_modules"] and backends["torch"] is None
    assert lora["export_options"] is None


def test_train_evaluate_summarize(
    tiny_model_dir: Path, sample_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    code, out, err = run(
        [
            "train",
            "--model",
            str(tiny_model_dir),
            "--train",
            str(sample_dir / "validation.jsonl"),
            "--method",
            "lora",
            "--option",
            "r=4",
            "--option",
            "target_modules=[q, k, v]",
            "--output-dir",
            str(run_dir),
            "--max-target-length",
            "16",
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads(out)["model"].endswith("model")
    config = json.loads((run_dir / "train_config.json").read_text())
    assert (
        config["options"]["target_modules"] == ["q", "k", "v"]
        and config["training"]["max_steps"] == 2
    )

    code, out, err = run(
        [
            "evaluate",
            "--model",
            str(run_dir),
            "--data",
            str(sample_dir),
            "--split",
            "test",
            "--max-new-tokens",
            "4",
            "--batch-size",
            "20",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    scores = json.loads(out)
    assert scores["n"] == 40 and 0 <= scores["rouge1"] <= 100
    quick = [
        "evaluate",
        "--model",
        str(run_dir),
        "--data",
        str(sample_dir),
        "--limit",
        "3",
        "--max-new-tokens",
        "4",
        "--json",
    ]
    code, out, err = run(quick, capsys)
    assert code == 0 and json.loads(out)["n"] == 3 and json.loads(out)["references"] == 9, err

    lines = '{"id": "a", "dialogue": "#Person1#: Hi."}\n"#Person1#: Bye."\n'
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    code, out, err = run(
        ["summarize", "--model", str(run_dir / "model"), "--max-new-tokens", "3"], capsys
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == ["a", 2] and all(isinstance(r["summary"], str) for r in rows)


def test_config_file_mirrors_flags_and_flags_override(
    tiny_model_dir: Path, sample_dir: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "train.yaml"
    config.write_text(
        f"model: {tiny_model_dir}\ntrain: {sample_dir / 'validation.jsonl'}\nmethod: prompt_tuning\n"
        f"options: {{num_virtual_tokens: 4}}\noutput_dir: {tmp_path / 'run'}\n"
        "training: {max_steps: 5, batch_size: 4, progress: false}\ndata: {max_source_length: 64}\n"
    )
    code, _, err = run(["train", "--config", str(config), "--max-steps", "1"], capsys)
    assert code == 0, err
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["method"] == "prompt_tuning" and saved["training"]["max_steps"] == 1
    assert saved["data"]["max_source_length"] == 64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], r"training.epochs \(--epochs\): Input should be greater than 0"),
        (["--precision", "fp16"], r"fp16 is refused for T5"),
        (["--option", "rank=3"], r"method 'lora': rank: not a setting here"),
        (["--option", "r"], r"--option takes KEY=VALUE"),
        (["--method", "ia4"], r"Unknown method 'ia4'"),
        (["--prompt", "no placeholder"], r"data.prompt \(--prompt\): .*'\{dialogue\}'"),
    ],
)
def test_train_rejects_bad_settings_before_loading(
    args: list[str], message: str, sample_dir: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    # The model does not exist: a settings error must come first, before any loading.
    code, _, err = run(
        [
            "train",
            "--model",
            str(tmp_path / "no-model"),
            "--train",
            str(sample_dir / "train.jsonl"),
            "--output-dir",
            str(tmp_path / "run"),
            *args,
        ],
        capsys,
    )
    assert code == 2
    assert "dialogsum train: error:" in err
    assert pytest.importorskip("re").search(message, err), err


def test_bad_config_file(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "train.yaml"
    config.write_text("train: data.jsonl\noutput_dir: run\ntraining: {epoch: 3}\n")
    code, _, err = run(["train", "--config", str(config)], capsys)
    assert (
        code == 2
        and "training.epoch: not a setting here (did you mean 'epochs'?)" in err
        and str(config) in err
    )
    config.write_text("train: data.jsonl\noutput_dir: run\nepoch: 3\n")  # a section's key, flat
    code, _, err = run(["train", "--config", str(config)], capsys)
    assert code == 2 and "epoch: not a setting here (did you mean 'epochs'?)" in err
    assert "output_dir, overwrite, training, data, and the keys of training, data." in err
    config.write_text("train: [unclosed\n")
    code, _, err = run(["train", "--config", str(config)], capsys)
    assert code == 2 and "is not valid YAML" in err
    config.write_text("train: data.jsonl\noutput_dir: run\n", encoding="utf-16")
    code, _, err = run(["train", "--config", str(config)], capsys)
    assert code == 2 and "is not UTF-8 text" in err and "save it as UTF-8" in err
    code, _, err = run(["train", "--config", str(tmp_path)], capsys)
    assert code == 2 and "is a folder" in err
    # a sweep's space from the file: the bad key and the file named
    config.write_text(
        "train: t.jsonl\neval: e.jsonl\noutput_dir: s\n"
        "space: {learning_rate: {low: 1.0e-5, high: 1.0e-3, lgo: true}}\n"
    )
    code, _, err = run(["sweep", "--config", str(config)], capsys)
    assert code == 2 and "lgo: not a setting here (did you mean 'log'?)" in err
    assert f"in the space of config file {config}" in err


def test_train_bad_data_line(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "train.jsonl"
    data.write_text('{"dialogue": "x", "summary": "y"}\n{"dialogue": ""}\n')
    code, _, err = run(
        [
            "train",
            "--model",
            str(tiny_model_dir),
            "--train",
            str(data),
            "--output-dir",
            str(tmp_path / "r"),
        ],
        capsys,
    )
    assert code == 2 and f"{data}:2: field 'dialogue' is empty" in err


def test_train_refuses_existing_output_dir(
    tiny_model_dir: Path, sample_dir: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(sample_dir, tmp_path / "run")
    code, _, err = run(
        [
            "train",
            "--model",
            str(tiny_model_dir),
            "--train",
            str(sample_dir),
            "--output-dir",
            str(tmp_path / "run"),
        ],
        capsys,
    )
    assert code == 2 and "already exists" in err and "--overwrite" in err


def test_summarize_bad_input_line(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "in.jsonl"
    source.write_text('{"dialogue": "#Person1#: Hi."}\n{"text": "oops"}\n')
    code, _, err = run(
        ["summarize", "--model", str(tiny_model_dir), "--input", str(source)], capsys
    )
    assert code == 2 and f"{source}:2: field 'dialogue' is missing. Fields present: text." in err


def test_evaluate_unknown_generation_option_value(
    tiny_model_dir: Path, sample_dir: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(
        [
            "evaluate",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(sample_dir),
            "--num-beams",
            "zero",
        ],
        capsys,
    )
    assert code == 2 and "generation.num_beams" in err


def test_report_to_takes_one_name_or_a_list() -> None:
    from dialogsum.cli import build_parser
    from dialogsum.cli.config import TrainConfig, build_config, flags_to_settings

    args = build_parser().parse_args(
        ["train", "--train", "t.jsonl", "--output-dir", "r", "--report-to", "tensorboard"]
    )
    assert build_config(TrainConfig, None, flags_to_settings(args)).training.report_to == [
        "tensorboard"
    ]
    args = build_parser().parse_args(
        ["train", "--train", "t.jsonl", "--output-dir", "r", "--report-to", "[tensorboard, wandb]"]
    )
    assert build_config(TrainConfig, None, flags_to_settings(args)).training.report_to == [
        "tensorboard",
        "wandb",
    ]


def test_an_unknown_flag_is_told_with_the_command_usage(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as stopped:
        main(["summarize", "--nmu-beams", "2"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "usage: dialogsum summarize" in err and "--num-beams NUM_BEAMS" in err
    assert "dialogsum summarize: error: unrecognized arguments: --nmu-beams 2" in err
