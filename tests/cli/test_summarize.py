"""``dialogsum summarize --adapter``: the adapter's summaries, or one line naming the adapters
served when it is not one of them (exit status 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dialogsum.cli import main
from dialogsum.plugin_api import InferenceBackend, ModelManifest, Predictor, hookimpl
from dialogsum.plugins import get_plugin_manager

from .conftest import Tagging

DIALOGUES = [
    "#Person1#: Is the shop open?\n#Person2#: Until nine tonight.",
    "#Person1#: Did you call Anna?\n#Person2#: She did not answer.",
]


def write_input(path: Path) -> Path:
    path.write_text("".join(json.dumps({"dialogue": d}) + "\n" for d in DIALOGUES))
    return path


def test_summarize_with_an_adapter(
    tagging: Tagging, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = write_input(tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    flags = [*tagging.flags, "--input", str(source), "--no-progress"]
    assert main(["summarize", *flags, "--adapter", "support", "--output", str(output)]) == 0
    summaries = [json.loads(line)["summary"] for line in output.read_text().splitlines()]
    assert summaries == tagging.summarizer.summarize(DIALOGUES, adapter="support")
    assert all(summary.startswith("[S] ") for summary in summaries)

    missing = tmp_path / "missing.jsonl"
    assert main(["summarize", *flags, "--adapter", "billing", "--output", str(missing)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        "dialogsum summarize: error: No adapter named 'billing' is loaded; loaded: support "
        "(or none for the base model)."
    )
    assert not missing.exists()


def test_a_model_without_adapters_says_so(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = write_input(tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    flags = ["--model", str(tiny_model_dir), "--input", str(source), "--output", str(output)]
    assert main(["summarize", *flags, "--adapter", "support", "--no-progress"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "this model serves no adapters" in error[0]
    assert not output.exists()


class _Crashing(InferenceBackend):
    """Loads anything; its summaries fail inside its own code."""

    name = "crashing"

    def load(self, model_dir: Any, options: Any) -> Predictor:
        class Broken(Predictor):
            manifest = ModelManifest()

            def summarize(self, dialogues: list[str], options: Any) -> list[str]:
                raise RuntimeError("deep inside the backend")

        return Broken()


def test_a_backend_failure_offers_its_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = get_plugin_manager()
    manager.register(
        SimpleNamespace(register_backends=hookimpl(lambda register: register(_Crashing()))),
        name="crashing",
    )
    flags = ["summarize", "--model", "anything", "--backend", "crashing"]
    flags += ["--input", str(write_input(tmp_path / "in.jsonl"))]
    try:
        assert main(flags) == 2
        error = capsys.readouterr().err
        assert "The 'crashing' backend (in-process plugin 'crashing') failed: RuntimeError" in error
        assert "set DIALOGSUM_TRACEBACK=1 to see where it failed" in error
        assert "Traceback" not in error
        monkeypatch.setenv("DIALOGSUM_TRACEBACK", "1")
        assert main(flags) == 2
        error = capsys.readouterr().err
        assert "Traceback (most recent call last)" in error and "deep inside the backend" in error
    finally:
        manager.unregister(name="crashing")
