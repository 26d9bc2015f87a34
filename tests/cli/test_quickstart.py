"""``dialogsum quickstart``: evaluate, LoRA-tune, export int8, serve, side by side (offline)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from dialogsum.cli import main
from dialogsum.errors import ModelError
from dialogsum.modeling import bundled_model_dir


def test_quickstart_tells_the_whole_story(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "quickstart",
            "--model",
            str(tiny_model_dir),
            "--output",
            str(tmp_path / "qs"),
            "--train-samples",
            "16",
            "--test-samples",
            "4",
            "--epochs",
            "1",
            "--show",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("Human baseline summary:") == 2
    for name in ("original", "tuned (PyTorch)", "tuned (ONNX int8)"):
        assert f"Model summary, {name}:" in out
        assert any(line.startswith(name) for line in out.splitlines())  # its ROUGE row
    assert "ROUGE on 4 test dialogues" in out and "What it cost" in out and "total" in out
    assert (tmp_path / "qs" / "onnx-int8" / "encoder_model.onnx").exists()
    assert (tmp_path / "qs" / "lora-run" / "README.md").exists()
    record = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    assert set(record["rouge"]) == {"original", "tuned (PyTorch)", "tuned (ONNX int8)"}
    assert len(record["predictions"]["original"]) == 4 and record["seconds"]
    # Running it again replaces its own earlier run, but never another folder of the user's.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert (
        main(["quickstart", "--model", str(tiny_model_dir), "--output", str(tmp_path / "mine")])
        == 2
    )
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert (
        main(
            [
                "quickstart",
                "--model",
                str(tiny_model_dir),
                "--output",
                str(tmp_path / "qs"),
                "--train-samples",
                "8",
                "--test-samples",
                "2",
                "--epochs",
                "1",
                "--show",
                "1",
            ]
        )
        == 0
    )
    assert (
        len(
            json.loads((tmp_path / "qs" / "quickstart.json").read_text())["predictions"]["original"]
        )
        == 2
    )


def test_unknown_bundled_name_is_not_bundled() -> None:
    assert bundled_model_dir("flan-t5-base") is None


def test_bundled_demo_model_loads_offline() -> None:
    try:
        folder = bundled_model_dir("dialogsum-tiny")
    except ModelError:
        pytest.skip("dialogsum-tiny weights are not bundled in this checkout")
    from dialogsum import Summarizer

    assert folder is not None
    summarizer = Summarizer.from_pretrained("dialogsum-tiny", backend_options={"progress": False})
    dialogues = [
        "#Person1#: Shall we have lunch at noon?\n#Person2#: Sure, at the cafe near the office.",
        "#Person1#: My flight to Paris was cancelled.\n#Person2#: I can book you on tomorrow's train.",
    ]
    lunch, flight = summarizer.summarize(dialogues)
    assert lunch.strip() and flight.strip() and lunch != flight
    # It serves with the decoding it was scored with, which ships beside the weights.
    assert summarizer.manifest.generation["num_beams"] == 4
    assert (folder / "README.md").is_file() and (
        folder / "model.safetensors"
    ).stat().st_size < 30 * 2**20


def test_a_single_data_file_is_refused_before_any_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dialogsum import ConfigError
    from dialogsum.data import sample_path
    from dialogsum.quickstart import RESULTS_FILE, run_quickstart

    with pytest.raises(ConfigError, match="one file, which would be both"):
        run_quickstart(model="dialogsum-tiny", data=sample_path("test"), output_dir=tmp_path / "q")
    assert not (tmp_path / "q").exists()
    # Over an earlier run, which stays: no warning that it is being replaced.
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / RESULTS_FILE).write_text("{}")
    with pytest.raises(ConfigError, match="one file"):
        run_quickstart(model="dialogsum-tiny", data=sample_path("test"), output_dir=tmp_path / "q")
    assert "replacing" not in caplog.text
    assert (tmp_path / "q" / RESULTS_FILE).read_text() == "{}"


def test_the_quickstart_hint_names_a_command_that_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dialogsum import quickstart

    script = tmp_path / "venv" / "bin" / "dialogsum"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "argv", [str(script), "quickstart"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert quickstart.command_name() == str(script.resolve())
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin")
    os.chmod(script, 0o755)
    assert quickstart.command_name() == "dialogsum"
